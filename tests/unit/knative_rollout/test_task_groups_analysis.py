"""progressive_rollout with analysis: an analysis task after every step; bad mappings refused when parsed."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, task

from knative_rollout.notifiers import KnativeRolloutWebhookNotifier
from knative_rollout.operators.baseline import KnativeBaselineTrafficOperator, KnativeRolloutBaselineOperator
from knative_rollout.policy import RolloutPlan
from knative_rollout.task_groups import KnativeStepAnalysisOperator, progressive_rollout

ANALYSIS = {"scrape_urls": ["http://metrics/metrics"], "window": "30s", "slo": {"max_error_rate": 0.01}}


def _dag(**kwargs: Any) -> DAG:
    with DAG("tg", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        progressive_rollout(
            group_id="rollout", service_name="iris", image="registry.example.com/a/b:v2", **kwargs
        )
    return dag


def test_every_step_is_followed_by_its_analysis_with_the_plan_and_the_notifiers() -> None:
    alert = KnativeRolloutWebhookNotifier(url="http://alerts/hook")
    dag = _dag(
        steps=[10, 50],
        analysis=ANALYSIS,
        max_inconclusive=2,
        notifiers=[alert],
        kubernetes_conn_id="prod",
    )
    order = [task.task_id.removeprefix("rollout.") for task in dag.topological_sort()]
    assert order == [
        "lock",
        "deploy_candidate",
        "traffic_10",
        "analysis_10",
        "traffic_50",
        "analysis_50",
        "traffic_100",
        "analysis_100",
        "promote",
        "rollback",
        "outcome",
    ]
    step = dag.task_dict["rollout.analysis_50"]
    assert isinstance(step, KnativeStepAnalysisOperator)
    assert (step.percent, step.steps, step.max_inconclusive) == (50, (10, 50, 100), 2)
    assert step.plan() == RolloutPlan.of([10, 50], max_inconclusive=2)
    assert step.analysis == ANALYSIS and step.notifiers == (alert,)
    assert step.revision == dag.task_dict["rollout.traffic_50"].revision
    assert (step.rollout_id, step.kubernetes_conn_id) == (dag.task_dict["rollout.promote"].rollout_id, "prod")
    # A failed analysis rolls back like any failed step; the outcome names it and alerts.
    assert "rollout.analysis_50" in dag.task_dict["rollout.rollback"].upstream_task_ids
    outcome = dag.task_dict["rollout.outcome"]
    assert "rollout.analysis_100" in outcome.step_task_ids and outcome.notifiers == (alert,)


def test_an_analysis_from_a_task_is_checked_when_the_step_runs() -> None:
    with DAG("tg", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:

        @task
        def settings() -> dict[str, Any]:
            return {"window": "no"}

        progressive_rollout(
            group_id="rollout", service_name="iris", image="registry.example.com/a/b:v2", analysis=settings()
        )
    assert "settings" in dag.task_dict["rollout.analysis_10"].upstream_task_ids


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"analysis": {"window": "30s"}}, "analysis: analysis says nowhere to read metrics from"),
        ({"analysis": {**ANALYSIS, "sloo": {}}}, r"analysis: analysis has unknown keys \['sloo'\]"),
        ({"analysis": {**ANALYSIS, "window": "soon"}}, "analysis: window='soon' is not a duration"),
        ({"analysis": "scrape"}, "analysis: analysis must be a mapping"),
        ({"analysis": ANALYSIS, "max_inconclusive": -1}, "max_inconclusive must be 0 or more"),
        ({"baseline": True}, "baseline=True needs an analysis"),
        (
            {"analysis": ANALYSIS, "baseline": True, "tag": "baseline"},
            "a candidate tag other than 'baseline'",
        ),
        ({"analysis": {**ANALYSIS, "compare": False}, "baseline": True}, "baseline=True needs compare on"),
    ],
)
def test_bad_analyses_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _dag(**kwargs)


def test_a_baseline_is_deployed_before_the_first_step_routed_at_every_step_and_compared_with() -> None:
    dag = _dag(steps=[10, 50], analysis=ANALYSIS, baseline=True, env={"A": "1"}, wait_timeout=90)
    order = [task.task_id.removeprefix("rollout.") for task in dag.topological_sort()]
    assert order[:4] == ["lock", "deploy_candidate", "deploy_baseline", "traffic_10"]
    made = dag.task_dict["rollout.deploy_baseline"]
    assert isinstance(made, KnativeRolloutBaselineOperator)
    # The candidate's own spec, so the template goes back to exactly the revision the deploy made.
    deploy = dag.task_dict["rollout.deploy_candidate"]
    assert (made.image, made.env, made.percent) == (deploy.image, deploy.env, 10)
    assert made.revision == dag.task_dict["rollout.traffic_10"].revision
    assert made.wait_timeout == 90
    for percent in (10, 50, 100):
        step = dag.task_dict[f"rollout.traffic_{percent}"]
        assert isinstance(step, KnativeBaselineTrafficOperator) and step.percent == percent
        analysis = dag.task_dict[f"rollout.analysis_{percent}"]
        assert "rollout.deploy_baseline" in analysis.baseline
    assert not isinstance(
        _dag(analysis=ANALYSIS).task_dict["rollout.traffic_10"], KnativeBaselineTrafficOperator
    )
