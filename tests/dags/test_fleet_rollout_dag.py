"""dags/fleet_rollout.py imports cleanly: mapped waves of a whole rollout in a slot, gates, a summary."""

from __future__ import annotations

import copy
import gc
import warnings
from types import SimpleNamespace

import pytest

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
        "slot",
        "bootstrap",
        *(f"rollout.{s}" for s in ("lock", "deploy_candidate", "traffic_50", "traffic_100")),
    ]
    steps += ["rollout.promote", "rollout.rollback", "rollout.outcome", "free_slot"]
    for wave in ("first", "second", "rest"):
        group = dag.task_group_dict[wave]
        # A mapped group: every Service of the wave is one map index of the whole rollout.
        assert type(group).__name__ == "MappedTaskGroup", type(group)
        assert [f"{wave}.{step}" for step in steps] == sorted(
            (task.task_id for task in dag.topological_sort() if task.task_id.startswith(f"{wave}.")),
            key=lambda task_id: task_id != f"{wave}.slot",  # slot and bootstrap run side by side
        )
        # A Service's rollout starts once it holds its slot; the slot is freed whatever the outcome.
        assert (
            dag.task_dict[f"{wave}.bootstrap"].upstream_task_ids
            == dag.task_dict[f"{wave}.slot"].upstream_task_ids
        )
        assert dag.task_dict[f"{wave}.rollout.lock"].upstream_task_ids == {
            f"{wave}.slot",
            f"{wave}.bootstrap",
            f"plan_{wave}",
        }
        free_slot = dag.task_dict[f"{wave}.free_slot"]
        assert free_slot.upstream_task_ids == {f"{wave}.rollout.outcome"}
        assert free_slot.trigger_rule == "all_done"
    # Waves run one after the other behind a stop-the-fleet gate; the summary is the only leaf.
    assert dag.task_dict["gate_second"].upstream_task_ids == {"first.free_slot"}
    assert dag.task_dict["second.slot"].upstream_task_ids == {"gate_second", "plan_second"}
    assert dag.task_dict["rest.slot"].upstream_task_ids == {"gate_rest", "plan_rest"}
    assert [task.task_id for task in dag.leaves] == ["summary"]


def test_fleet_rollout_slots_are_striped_and_max_rolling_out_is_checked_by_its_param() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import ParamValidationError

    dag = DagBag(dag_folder=REPO_ROOT / "dags" / "fleet_rollout.py").dags["fleet_rollout"]
    slot = dag.task_dict["rest.slot"]
    env = dag.get_template_env()
    # The Service at map index i takes slot i % max_rolling_out; its hold names its wave and index.
    rendered = [
        (
            env.from_string(slot.service_name).render(ti=ti, params={"max_rolling_out": 2}),
            env.from_string(slot.rollout_id).render(
                ti=ti, dag=SimpleNamespace(dag_id="fleet_rollout"), run_id="r1"
            ),
        )
        for ti in (SimpleNamespace(map_index=i, task_id="rest.slot") for i in range(3))
    ]
    assert rendered == [
        ("fleet-rollout-slot-0", "fleet_rollout/r1/rest/0"),
        ("fleet-rollout-slot-1", "fleet_rollout/r1/rest/1"),
        ("fleet-rollout-slot-0", "fleet_rollout/r1/rest/2"),
    ]
    assert dag.task_dict["rest.free_slot"].op_kwargs == {"slot": slot.service_name, "holder": slot.rollout_id}
    assert dag.params["max_rolling_out"] == 16
    # What Airflow does with a run's conf before any task runs: a bad value is refused, naming the Param.
    for value, valid in ((1, True), (0, False), (-1, False), ("2", False), (1.5, False), (None, False)):
        params = copy.deepcopy(dag.params)
        if valid:
            params.update({"max_rolling_out": value})
            assert params.validate()["max_rolling_out"] == value
            continue
        with pytest.raises(ParamValidationError, match="Invalid input for param max_rolling_out"):
            params.update({"max_rolling_out": value})
            params.validate()
