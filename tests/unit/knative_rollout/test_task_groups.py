"""The progressive_rollout TaskGroup builder: the tasks it chains, and plans refused at parse time."""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG

from knative_rollout.task_groups import progressive_rollout


def _dag(**kwargs):
    with DAG("tg", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        progressive_rollout(
            group_id="rollout", service_name="iris", image="registry.example.com/a/b:v2", **kwargs
        )
    return dag


def test_group_chains_deploy_shifts_and_promote() -> None:
    dag = _dag(steps=[5, 25], kubernetes_conn_id="prod", cluster_name="ml", location="europe-west1")
    assert [task.task_id for task in dag.topological_sort()] == [
        "rollout.deploy_candidate",
        "rollout.traffic_5",
        "rollout.traffic_25",
        "rollout.traffic_100",
        "rollout.promote",
    ]
    shift = dag.task_dict["rollout.traffic_25"]
    assert shift.traffic == {"@stable": 75, "@candidate": 25}
    assert (shift.kubernetes_conn_id, shift.cluster_name, shift.location) == ("prod", "ml", "europe-west1")
    assert dag.task_dict["rollout.deploy_candidate"].traffic_percent == 0


@pytest.mark.parametrize("steps", [[50, 10], [0, 100], []])
def test_bad_plans_fail_when_the_dag_is_parsed(steps: list[int]) -> None:
    with pytest.raises(ValueError, match="step"):
        _dag(steps=steps)
