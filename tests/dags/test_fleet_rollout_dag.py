"""dags/fleet_rollout.py imports cleanly: three mapped waves of a whole rollout, gates, a summary."""

from __future__ import annotations

import gc
import warnings

from tests.conftest import REPO_ROOT


def test_fleet_rollout_imports_cleanly_with_mapped_waves() -> None:
    from airflow.dag_processing.dagbag import DagBag

    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        dagbag = DagBag(dag_folder=REPO_ROOT / "dags" / "fleet_rollout.py")
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    dag = dagbag.dags["fleet_rollout"]
    steps = [
        "bootstrap",
        *(f"rollout.{s}" for s in ("lock", "deploy_candidate", "traffic_50", "traffic_100")),
    ]
    steps += ["rollout.promote", "rollout.rollback", "rollout.outcome"]
    for wave in ("first", "second", "rest"):
        group = dag.task_group_dict[wave]
        # A mapped group: every Service of the wave is one map index of the whole rollout.
        assert type(group).__name__ == "MappedTaskGroup", type(group)
        assert [f"{wave}.{step}" for step in steps] == [
            task.task_id for task in dag.topological_sort() if task.task_id.startswith(f"{wave}.")
        ]
    # Waves run one after the other behind a stop-the-fleet gate; the summary is the only leaf.
    assert dag.task_dict["gate_second"].upstream_task_ids == {"first.rollout.outcome"}
    assert dag.task_dict["second.bootstrap"].upstream_task_ids == {"gate_second", "plan_second"}
    assert dag.task_dict["rest.bootstrap"].upstream_task_ids == {"gate_rest", "plan_rest"}
    assert [task.task_id for task in dag.leaves] == ["summary"]
