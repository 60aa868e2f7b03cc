"""KnativeCanaryRolloutOperator checks its plan when the DAG is parsed and takes the rollout identity."""

from __future__ import annotations

import pytest

from knative_rollout.operators import KnativeCanaryRolloutOperator

ARGS = {
    "service_name": "iris",
    "image": "registry.example.com/m:v2",
    "analysis": {"prometheus_url": "http://p"},
}


def test_default_rollout_id_names_the_task() -> None:
    operator = KnativeCanaryRolloutOperator(task_id="canary", **ARGS)
    assert operator.rollout_id.startswith("{{ dag.dag_id }}/{{ run_id }}/canary")
    assert operator.steps == (10, 25, 50, 100) and operator.promote is True
    assert {"analysis", "max_inconclusive", "bake", "rollout_id"} <= set(operator.template_fields)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"steps": [50, 10]}, "strictly increasing"),
        ({"steps": []}, "at least one traffic step"),
        ({"steps": [0, 50]}, "out of range"),
        ({"traffic_percent": 10}, "sets traffic_percent itself"),
        ({"create_service": True}, "sets create_service itself"),
    ],
)
def test_bad_plans_are_import_errors(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KnativeCanaryRolloutOperator(task_id="canary", **{**ARGS, **extra})
