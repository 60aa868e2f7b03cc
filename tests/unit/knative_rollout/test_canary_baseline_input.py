"""KnativeCanaryRolloutOperator(baseline=...) refuses input it cannot use before any API call, naming it."""

from __future__ import annotations

import pytest

from knative_rollout.exceptions import KnativeInputError
from knative_rollout.operators import KnativeCanaryRolloutOperator

ARGS = {
    "service_name": "iris",
    "image": "registry.example.com/m:v2",
    "analysis": {"prometheus_url": "http://p"},
    "rollout_id": "dag/run/canary",
}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"baseline": "maybe"}, "baseline"),
        ({"baseline": True, "tag": "baseline"}, "tag 'baseline' is the baseline revision's"),
        (
            {
                "baseline": "True",
                "analysis": {"prometheus_url": "http://p", "compare": False, "slo": {"max_error_rate": 0.1}},
            },
            "baseline=True needs compare",
        ),
    ],
)
def test_unusable_baseline_input_fails_the_task_before_any_call(
    extra: dict[str, object], message: str
) -> None:
    operator = KnativeCanaryRolloutOperator(task_id="canary", **{**ARGS, **extra})  # type: ignore[arg-type]
    # No cluster and no connection here: the check comes first, or this would fail otherwise.
    with pytest.raises(KnativeInputError, match=message):
        operator.execute({})  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "on"), [(False, False), ("false", False), ("True", True), (True, True)])
def test_baseline_is_templated_and_parsed(value: object, on: bool) -> None:
    operator = KnativeCanaryRolloutOperator(task_id="canary", **ARGS, baseline=value)  # type: ignore[arg-type]
    assert "baseline" in operator.template_fields
    assert operator._baseline_on() is on
