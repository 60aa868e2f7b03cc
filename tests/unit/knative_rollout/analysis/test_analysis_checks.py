"""SLO checks on the canary, the built-in judge metrics on windows, and the combined analysis verdict."""

from __future__ import annotations

import json
import math

import pytest

from knative_rollout.analysis.checks import SLO, evaluate, metric_samples
from knative_rollout.analysis.series import Interval, MetricsSchema, RevisionWindow
from knative_rollout.policy import Verdict

INF = math.inf


def window(revision: str, per_interval: list[tuple[int, int, float]]) -> RevisionWindow:
    """A window from (requests, 5xx, share of answers under 10 ms; the rest under 50 ms) per 10 s."""
    intervals = tuple(
        Interval(
            start=10.0 * index,
            end=10.0 * (index + 1),
            requests=float(requests),
            errors=float(errors),
            buckets=((0.01, requests * fast), (0.05, float(requests)), (INF, float(requests))),
        )
        for index, (requests, errors, fast) in enumerate(per_interval)
    )
    return RevisionWindow("ns", revision, MetricsSchema.OPENCENSUS, intervals)


HEALTHY = window("good", [(100, 0, 1.0)] * 12)
SLOW = window("slow", [(100, 0, 0.5)] * 12)
FAILING = window("failing", [(100, 5, 1.0)] * 12)
SILENT = window("silent", [(0, 0, 1.0)] * 12)
FEW = window("few", [(1, 0, 1.0)] * 12)

EVALUATE_CASES = [
    # (id, canary, baseline, slo, verdict)
    ("identical revisions pass", HEALTHY, window("base", [(100, 0, 1.0)] * 12), None, Verdict.PASS),
    ("a slower canary fails the judge", SLOW, HEALTHY, None, Verdict.FAIL),
    ("5% errors fail the judge (critical)", FAILING, HEALTHY, None, Verdict.FAIL),
    ("a silent canary is inconclusive, not a pass", SILENT, HEALTHY, None, Verdict.INCONCLUSIVE),
    (
        "a silent canary with an SLO is inconclusive",
        SILENT,
        None,
        SLO(max_error_rate=0.01),
        Verdict.INCONCLUSIVE,
    ),
    (
        "no data can be configured to fail",
        SILENT,
        None,
        SLO(max_error_rate=0.01, on_no_data="fail"),
        Verdict.FAIL,
    ),
    ("too few answers for the SLO is no data", FEW, None, SLO(max_error_rate=0.01), Verdict.INCONCLUSIVE),
    (
        "an SLO the canary meets passes",
        HEALTHY,
        None,
        SLO(max_p99_latency=0.05, max_error_rate=0.01),
        Verdict.PASS,
    ),
    ("p99 over the SLO fails", SLOW, None, SLO(max_p99_latency=0.02), Verdict.FAIL),
    ("errors over the SLO fail", FAILING, None, SLO(max_error_rate=0.01), Verdict.FAIL),
    ("SLO met but judge fails", SLOW, HEALTHY, SLO(max_p99_latency=1.0), Verdict.FAIL),
    (
        "judge passes but SLO fails",
        FAILING,
        window("b", [(100, 5, 1.0)] * 12),
        SLO(max_error_rate=0.01),
        Verdict.FAIL,
    ),
]


@pytest.mark.parametrize(
    ("canary", "baseline", "slo", "verdict"),
    [case[1:] for case in EVALUATE_CASES],
    ids=[case[0] for case in EVALUATE_CASES],
)
def test_evaluate(canary, baseline, slo, verdict):
    result = evaluate(canary, baseline, slo=slo)
    assert result.verdict is verdict, result.reason
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["verdict"] == verdict.value and summary["canary"] == canary.revision


def test_the_report_names_what_failed():
    result = evaluate(FAILING, HEALTHY, slo=SLO(max_error_rate=0.01, max_p99_latency=0.05)).to_dict()
    assert result["reason"].startswith("error_rate 0.05 > 0.01 over 1200 answers")
    assert "critical metric failed: error_rate" in result["reason"]
    assert [check["verdict"] for check in result["slo"]] == ["pass", "fail"]
    assert result["totals"]["failing"] == {
        "requests": 1200.0,
        "errors": 60.0,
        "error_rate": 0.05,
        "p99_latency": pytest.approx(0.0099),
    }
    assert result["schema"] == "opencensus" and result["window"] == {"start": 0.0, "end": 120.0}


def test_silent_intervals_are_no_samples():
    mixed = window("mixed", [(100, 1, 1.0), (0, 0, 1.0), (50, 0, 1.0)])
    assert metric_samples(mixed, "error_rate")[0] == 0.01
    assert math.isnan(metric_samples(mixed, "error_rate")[1])
    assert math.isnan(metric_samples(mixed, "latency_p99")[1])


def test_unknown_metric_and_nothing_to_check_are_refused():
    with pytest.raises(ValueError, match="unknown metric 'latency_p42'"):
        metric_samples(HEALTHY, "latency_p42")
    with pytest.raises(ValueError, match="nothing to check"):
        evaluate(HEALTHY)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_p99_latency": 0}, {"max_error_rate": 1.5}, {"min_requests": 0}, {"on_no_data": "maybe"}],
)
def test_bad_slos_are_refused(kwargs):
    with pytest.raises(ValueError):
        SLO(**kwargs)


def test_on_no_data_reads_text():
    assert SLO(on_no_data=" PASS ").on_no_data is Verdict.PASS
