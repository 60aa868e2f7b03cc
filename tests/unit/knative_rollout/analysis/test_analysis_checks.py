"""SLO checks on the canary, the built-in judge metrics on windows, and the combined analysis verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from knative_rollout.analysis.checks import SLO, Samples, evaluate, judge_windows, metric_samples
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


def bucketed(
    revision: str, latencies: list[float], errors: tuple[int, ...] = (0, 3, 0, 0, 0, 0)
) -> RevisionWindow:
    """A window of ``latencies`` (seconds) in Knative's buckets, one interval per count of ``errors``."""
    intervals = len(errors)
    bounds = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1)
    parts = [latencies[index::intervals] for index in range(intervals)]
    return RevisionWindow(
        "ns",
        revision,
        MetricsSchema.OPENCENSUS,
        tuple(
            Interval(
                start=10.0 * index,
                end=10.0 * (index + 1),
                requests=float(len(part)),
                errors=float(errors[index]),
                buckets=(*((b, float(sum(v <= b for v in part))) for b in bounds), (INF, float(len(part)))),
            )
            for index, part in enumerate(parts)
        ),
    )


def latencies(seed: int, size: int, factor: float = 1.0) -> list[float]:
    """Request latencies like the example model's (median 5 ms, a long tail), reproducible."""
    return list(np.random.default_rng(seed).lognormal(math.log(0.005), 0.75, size) * factor)


# 60 s at 10 requests/s a side: 6 intervals of 100 requests; the regressions of the canary benchmark.
SAME_600 = bucketed("base", latencies(1, 600))
BURSTS = (0, 9, 0, 0, 9, 0)  # 3 % errors, in bursts as a failing dependency makes them
SAMPLES_CASES = [
    # (id, canary, samples, verdict)
    (
        "an identical canary passes on requests",
        bucketed("c", latencies(2, 600)),
        Samples.REQUESTS,
        Verdict.PASS,
    ),
    ("... and on intervals", bucketed("c", latencies(2, 600)), Samples.INTERVALS, Verdict.PASS),
    (
        "30% slower fails on requests",
        bucketed("c", latencies(3, 600, 1.3)),
        Samples.REQUESTS,
        Verdict.FAIL,
    ),
    (
        "... but not on 6 interval p99s",
        bucketed("c", latencies(3, 600, 1.3)),
        Samples.INTERVALS,
        Verdict.PASS,
    ),
    (
        "3% errors vs 0.5% fail on pooled counts",
        bucketed("c", latencies(4, 600), BURSTS),
        Samples.REQUESTS,
        Verdict.FAIL,
    ),
    (
        "... but not on 6 interval rates",
        bucketed("c", latencies(4, 600), BURSTS),
        Samples.INTERVALS,
        Verdict.PASS,
    ),
]


@pytest.mark.parametrize(
    ("canary", "samples", "verdict"),
    [case[1:] for case in SAMPLES_CASES],
    ids=[case[0] for case in SAMPLES_CASES],
)
def test_the_judge_on_requests_sees_what_intervals_miss(canary, samples, verdict):
    result = evaluate(canary, SAME_600, samples=samples)
    assert result.verdict is verdict, result.reason


def test_request_samples_count_every_request():
    judgement = judge_windows(bucketed("c", latencies(2, 600)), SAME_600)
    latency, errors = (metric.to_dict() for metric in judgement.metrics)
    assert latency["canary"]["count"] == latency["baseline"]["count"] == 600
    assert errors["canary"] == {"count": 600, "mean": 0.005, "median": None, "minimum": None, "maximum": None}
    silent = judge_windows(SILENT, HEALTHY, samples=Samples.REQUESTS)
    assert {metric.classification.value for metric in silent.metrics} == {"NoData"}
