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


@pytest.mark.parametrize(
    ("steps", "plan"),
    [("20,100", (20, 100)), ("[10, 50]", (10, 50, 100)), (["20", 60], (20, 60, 100))],
)
def test_templated_steps_are_read_when_the_task_runs(steps: object, plan: tuple[int, ...]) -> None:
    operator = KnativeCanaryRolloutOperator(task_id="canary", **ARGS, steps=steps)  # type: ignore[arg-type]
    assert "steps" in operator.template_fields
    assert operator.plan().steps == plan


@pytest.mark.parametrize(
    ("steps", "message"),
    [("50,10", "strictly increasing"), ("ten", "steps must be an integer"), ("", "at least one")],
)
def test_bad_templated_steps_fail_the_task_naming_them(steps: str, message: str) -> None:
    from knative_rollout.exceptions import KnativeInputError

    operator = KnativeCanaryRolloutOperator(task_id="canary", **ARGS, steps=steps)
    with pytest.raises(KnativeInputError, match=f"steps {steps!r}: .*{message}"):
        operator.plan()
