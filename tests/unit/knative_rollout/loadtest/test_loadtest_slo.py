"""SLO parsing and verdicts: exactly the violated thresholds fail, each with its measured value and excess."""

from __future__ import annotations

import pytest

from knative_rollout.loadtest.slo import Finding, Slo, SloSyntaxError, Threshold, Verdict
from knative_rollout.policy import Verdict as Outcome

MEASURED: dict[str, float | None] = {
    "p50": 12.0,
    "p90": 40.0,
    "p95": 80.0,
    "p99": 250.0,
    "p999": 900.0,
    "max": 1500.0,
    "mean": 20.0,
    "error_rate": 0.02,
    "ok_p50": 10.0,
    "ok_p99": 150.0,
    "ok_max": None,
    "achieved_rate": 97.0,
    "offered_rate": 100.0,
    "throughput": 96.5,
}


@pytest.mark.parametrize(
    ("text", "threshold"),
    [
        ("p99<=200ms", Threshold("p99", "<=", 200.0)),
        ("p99 <= 0.2s", Threshold("p99", "<=", 200.0)),
        ("p50<1500us", Threshold("p50", "<", 1.5)),
        ("p99.9<=1s", Threshold("p999", "<=", 1000.0)),
        ("max<=300", Threshold("max", "<=", 300.0)),
        ("error_rate<=0.01", Threshold("error_rate", "<=", 0.01)),
        ("error_rate<=1%", Threshold("error_rate", "<=", 0.01)),
        ("achieved_rate>=95", Threshold("achieved_rate", ">=", 95.0)),
        ("rate>95/s", Threshold("achieved_rate", ">", 95.0)),
        ("THROUGHPUT>=90rps", Threshold("throughput", ">=", 90.0)),
        ("ok_p99<=150ms", Threshold("ok_p99", "<=", 150.0)),
        ("ok_p99.9<=1s", Threshold("ok_p999", "<=", 1000.0)),
        ("offered_rate>=99", Threshold("offered_rate", ">=", 99.0)),
    ],
)
def test_parse_threshold(text: str, threshold: Threshold) -> None:
    assert Threshold.parse(text) == threshold


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        ("p99=200ms", "METRIC OP VALUE"),
        ("p98<=200ms", "unknown SLO metric"),
        ("p99<=200min", "use us, ms or s"),
        ("error_rate<=2ms", "fraction"),
        ("achieved_rate>=9ms", "requests per second"),
    ],
)
def test_bad_thresholds_say_what_to_write(text: str, advice: str) -> None:
    with pytest.raises(SloSyntaxError, match=advice):
        Threshold.parse(text)


@pytest.mark.parametrize(
    ("spec", "failed"),
    [
        ("", []),
        ("p99<=300ms,error_rate<=0.05,achieved_rate>=95", []),
        ("p99<=200ms", ["p99"]),
        ("p99<=200ms,p50<=20ms,error_rate<=0.01", ["p99", "error_rate"]),
        ("p999<=1s,max<=1s,mean<21", ["max"]),
        ("mean<20", ["mean"]),
        ("achieved_rate>=98,throughput>=90", ["achieved_rate"]),
        ("p99<250ms", ["p99"]),
        ("p99<=250ms", []),
        ("p90<=39;p95<=79;error_rate<=1%", ["p90", "p95", "error_rate"]),
        # Successful requests alone would pass where all requests do not: pNN judge all requests.
        ("ok_p99<=200ms,p99<=200ms", ["p99"]),
        ("ok_max<=1s", ["ok_max"]),
    ],
)
def test_verdict_fails_exactly_the_violated_thresholds(spec: str, failed: list[str]) -> None:
    verdict = Slo.parse(spec).evaluate(MEASURED)
    assert [result.threshold.metric for result in verdict.failed] == failed
    assert verdict.passed is (not failed)
    assert len(verdict.results) == len(Slo.parse(spec).thresholds)


def test_failed_threshold_reports_measured_value_and_excess() -> None:
    verdict = Slo.parse("p99<=200ms,achieved_rate>=100").evaluate(MEASURED)
    p99, rate = verdict.to_dict()["failed"]
    assert p99 | {"message": None, "note": None} == {
        "threshold": "p99<=200ms",
        "metric": "p99",
        "comparator": "<=",
        "limit": 200.0,
        "unit": "ms",
        "measured": 250.0,
        "passed": False,
        "by": 50.0,
        "note": None,
        "message": None,
    }
    assert p99["message"] == "p99 250ms violates p99<=200ms by 50ms (25.0%)"
    assert rate["by"] == 3.0 and rate["unit"] == "/s"
    assert verdict.explain().startswith("SLO failed: p99 250ms violates")


def test_mapping_form() -> None:
    slo = Slo.parse({"p99": "<=200ms", "error_rate": 0.01})
    assert slo.thresholds == (Threshold("p99", "<=", 200.0), Threshold("error_rate", "<=", 0.01))
    assert str(slo) == "p99<=200ms,error_rate<=0.01"


def test_a_value_that_was_not_measured_never_holds() -> None:
    result = Threshold.parse("ok_max<=1s").check(None, "no request succeeded")
    assert not result.passed
    assert result.message == "ok_max cannot be judged against ok_max<=1000ms: no request succeeded"
    assert result.to_dict()["measured"] is None


def test_a_note_says_the_value_is_only_a_lower_bound() -> None:
    note = "at or above the 1s timeout: 3 of 60 requests timed out"
    verdict = Slo.parse("p99<=200ms").evaluate({"p99": 1000.5}, {"p99": note})
    assert verdict.failed[0].message == f"p99 1000.5ms ({note}) violates p99<=200ms by 800.5ms (400.3%)"


NO_ANSWER = Finding("answered", 0, "no request of 60 was answered (60 timed out after 1s)")
NO_SUCCESS = Finding("succeeded", 0, "no request of 60 succeeded (60 http_500)")


@pytest.mark.parametrize(
    ("spec", "inconclusive", "problems", "fail_on_inconclusive", "outcome", "passed", "failed"),
    [
        ("p99<=300ms", None, (), True, Outcome.PASS, True, []),
        ("p99<=200ms", None, (), True, Outcome.FAIL, False, ["p99"]),
        ("p99<=300ms", None, (NO_SUCCESS,), True, Outcome.FAIL, False, ["succeeded"]),
        ("p99<=200ms", None, (NO_SUCCESS,), True, Outcome.FAIL, False, ["succeeded", "p99"]),
        # No answer at all: inconclusive whatever the thresholds say; fails the gate unless asked not to.
        ("p99<=300ms", NO_ANSWER, (), True, Outcome.INCONCLUSIVE, False, ["answered"]),
        ("p99<=200ms", NO_ANSWER, (), True, Outcome.INCONCLUSIVE, False, ["answered", "p99"]),
        ("p99<=200ms", NO_ANSWER, (), False, Outcome.INCONCLUSIVE, True, []),
        ("", NO_ANSWER, (), True, Outcome.INCONCLUSIVE, False, ["answered"]),
    ],
)
def test_outcome_and_whether_the_gate_passes(
    spec: str,
    inconclusive: Finding | None,
    problems: tuple[Finding, ...],
    fail_on_inconclusive: bool,
    outcome: Outcome,
    passed: bool,
    failed: list[str],
) -> None:
    base = Slo.parse(spec).evaluate(MEASURED)
    verdict = Verdict(base.results, inconclusive, problems, fail_on_inconclusive)
    as_dict = verdict.to_dict()
    assert verdict.outcome is outcome and as_dict["outcome"] == outcome.value
    assert verdict.passed is passed and as_dict["passed"] is passed
    # task_groups reads verdict["failed"][*]["message"]: every reason the gate failed, findings first.
    assert [item["metric"] for item in as_dict["failed"]] == failed
    assert all(item["message"] for item in as_dict["failed"])
    explanation = verdict.explain()
    if inconclusive is not None:
        assert explanation.startswith("gate inconclusive") and inconclusive.message in explanation
    elif not passed:
        assert explanation.startswith("SLO failed: ") and as_dict["failed"][0]["message"] in explanation
