"""dags/fleet_rollout.py imports cleanly: three mapped waves of a one-task rollout, gates, a summary."""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

DAG_FILE = REPO_ROOT / "dags" / "fleet_rollout.py"


def _dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        return DagBag(dag_folder=DAG_FILE)


def test_fleet_rollout_imports_cleanly_with_mapped_waves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE", "3")
    dagbag = _dagbag()
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    dag = dagbag.dags["fleet_rollout"]
    for wave in ("first", "second", "rest"):
        group = dag.task_group_dict[wave]
        # A mapped group: every Service of the wave is one map index, its whole rollout one task.
        assert type(group).__name__ == "MappedTaskGroup", type(group)
        assert [f"{wave}.bootstrap", f"{wave}.rollout"] == [
            task.task_id for task in dag.topological_sort() if task.task_id.startswith(f"{wave}.")
        ]
        rollout = dag.task_dict[f"{wave}.rollout"]
        assert type(rollout).__name__ == "FleetServiceRollout"
        # The limit on Services rolling out at once: Airflow counts the deferred task instances too.
        assert rollout.max_active_tis_per_dagrun == 3
        assert rollout.steps == (50, 100)
        # The identity names the wave: two waves' first Services are two rollouts.
        assert f"/{wave}.rollout" in str(rollout.rollout_id)
    # Waves run one after the other behind a stop-the-fleet gate; the summary is the only leaf; the
    # analysis is checked before any Service is touched, bootstraps included.
    assert dag.task_dict["gate_second"].upstream_task_ids == {"first.rollout"}
    assert dag.task_dict["first.bootstrap"].upstream_task_ids == {"analysis", "plan_first"}
    assert dag.task_dict["second.bootstrap"].upstream_task_ids == {"analysis", "gate_second", "plan_second"}
    assert dag.task_dict["rest.bootstrap"].upstream_task_ids == {"analysis", "gate_rest", "plan_rest"}
    assert [task.task_id for task in dag.leaves] == ["summary"]


@pytest.mark.parametrize("value", ["0", "many", "-2", "1.5"])
def test_a_bad_limit_is_an_import_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE", value)
    errors = _dagbag().import_errors
    assert len(errors) == 1, errors
    message = next(iter(errors.values()))
    assert "KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE must be a whole number of at least 1" in message, message
    assert repr(value) in message, message
