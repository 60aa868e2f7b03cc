"""The DAGs in dags/ import without errors or warnings; rollout_example has the documented shape."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag


def _dagbag(path: Path) -> DagBag:
    """Parse DAGs with warnings captured, after finalising what earlier tests left for the garbage collector.

    Otherwise another test's unclosed socket can raise a ResourceWarning while the DagBag records warnings.
    """
    from airflow.dag_processing.dagbag import DagBag

    gc.collect()
    return DagBag(dag_folder=path)


def test_rollout_example_imports_cleanly() -> None:

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        dagbag = _dagbag(REPO_ROOT / "dags" / "rollout_example.py")
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    dag = dagbag.dags["rollout_example"]
    assert [task.task_id for task in dag.topological_sort()] == [
        "deploy_v1",
        "rollout.lock",
        "rollout.deploy_candidate",
        "rollout.load_test",
        "rollout.traffic_10",
        "rollout.traffic_50",
        "rollout.traffic_100",
        "rollout.promote",
        "rollout.rollback",
        "rollout.outcome",
        "stable_ready",
        "teardown",
    ]
    assert dag.task_dict["rollout.deploy_candidate"].traffic_percent == 0
    assert dag.task_dict["rollout.traffic_50"].traffic == {"@stable": 50, "@candidate": 50}
    gate = dag.task_dict["rollout.load_test"]
    assert (gate.tag, gate.slo, gate.expect_json_field) == ("candidate", "{{ params.slo }}", "predictions")
    # The tasks after the rollout wait for its outcome, so they never run after a rollback.
    assert dag.task_dict["stable_ready"].upstream_task_ids == {"rollout.outcome"}


def test_every_dag_in_the_folder_imports_cleanly() -> None:
    dagbag = _dagbag(REPO_ROOT / "dags")
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    assert "rollout_example" in dagbag.dags
