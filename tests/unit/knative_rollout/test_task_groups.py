"""The progressive_rollout TaskGroup builder: the tasks it wires, and plans and gates refused when parsed."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from knative_rollout.task_groups import default_rollout_id, progressive_rollout

GATE = {"rate": 20, "duration": "10s", "slo": "p99<=300ms", "path": "/v1/models/iris:predict"}


def _dag(**kwargs: Any) -> DAG:
    with DAG("tg", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        progressive_rollout(
            group_id="rollout", service_name="iris", image="registry.example.com/a/b:v2", **kwargs
        )
    return dag


def _upstream(dag: DAG, task_id: str) -> set[str]:
    return set(dag.task_dict[task_id].upstream_task_ids)


def test_group_chains_deploy_shifts_and_promote_then_rollback_and_outcome() -> None:
    dag = _dag(steps=[5, 25], kubernetes_conn_id="prod", cluster_name="ml", location="europe-west1")
    steps = [
        "rollout.lock",
        "rollout.deploy_candidate",
        "rollout.traffic_5",
        "rollout.traffic_25",
        "rollout.traffic_100",
        "rollout.promote",
    ]
    assert [task.task_id for task in dag.topological_sort()] == [
        *steps,
        "rollout.rollback",
        "rollout.outcome",
    ]
    shift = dag.task_dict["rollout.traffic_25"]
    assert shift.traffic == {"@stable": 75, "@candidate": 25}
    # Every step names the revision this rollout deployed and carries the rollout's identity.
    deployed = "{{ ti.xcom_pull(task_ids='rollout.deploy_candidate', map_indexes=ti.map_index)['revision'] }}"
    assert shift.revision == deployed and dag.task_dict["rollout.promote"].revision == deployed
    rollout_ids = {
        dag.task_dict[task_id].rollout_id for task_id in [*steps[:2], *steps[2:], "rollout.rollback"]
    }
    assert rollout_ids == {default_rollout_id("rollout")}
    assert default_rollout_id("rollout").startswith("{{ dag.dag_id }}/{{ run_id }}/rollout")
    assert (shift.kubernetes_conn_id, shift.cluster_name, shift.location) == ("prod", "ml", "europe-west1")
    deploy = dag.task_dict["rollout.deploy_candidate"]
    assert (deploy.traffic_percent, deploy.skip_if_unchanged, deploy.create_service) == (0, True, False)
    # A failure in any step triggers the rollback; the outcome runs either way and is the only leaf.
    rollback, outcome = dag.task_dict["rollout.rollback"], dag.task_dict["rollout.outcome"]
    assert _upstream(dag, "rollout.rollback") == set(steps)
    assert (rollback.trigger_rule, rollback.cluster_name) == ("one_failed", "ml")
    assert _upstream(dag, "rollout.outcome") == {"rollout.rollback"}
    assert (outcome.trigger_rule, outcome.step_task_ids) == ("all_done", tuple(steps))
    assert [task.task_id for task in dag.leaves] == ["rollout.outcome"]


def test_gate_loads_the_candidate_tag_before_any_traffic_moves() -> None:
    dag = _dag(tag="canary", load_test=GATE, kubernetes_conn_id="prod", cluster_name="ml")
    assert _upstream(dag, "rollout.load_test") == {"rollout.deploy_candidate"}
    assert _upstream(dag, "rollout.traffic_10") == {"rollout.load_test"}
    gate = dag.task_dict["rollout.load_test"]
    assert (gate.service_name, gate.namespace, gate.tag) == ("iris", "default", "canary")
    assert (gate.kubernetes_conn_id, gate.cluster_name) == ("prod", "ml")
    assert (gate.rate, gate.slo, gate.path) == (20, "p99<=300ms", "/v1/models/iris:predict")
    assert "rollout.load_test" in dag.task_dict["rollout.outcome"].step_task_ids


@pytest.mark.parametrize("steps", [[50, 10], [0, 100], []])
def test_bad_plans_fail_when_the_dag_is_parsed(steps: list[int]) -> None:
    with pytest.raises(ValueError, match="step"):
        _dag(steps=steps)


@pytest.mark.parametrize(
    ("load_test", "error", "match"),
    [
        ({"rate": 20}, ValueError, "no slo"),
        ({**GATE, "url": "http://elsewhere"}, ValueError, "sets url, which progressive_rollout sets"),
        ({**GATE, "tag": "stable", "kubernetes_conn_id": "x"}, ValueError, "sets kubernetes_conn_id, tag"),
        ("p99<=300ms", TypeError, "mapping of LoadTestGateOperator arguments"),
    ],
)
def test_bad_gates_fail_when_the_dag_is_parsed(load_test: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _dag(load_test=load_test)
