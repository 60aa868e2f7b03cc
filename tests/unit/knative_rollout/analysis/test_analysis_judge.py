"""The Kayenta-style judge: per-metric Mann-Whitney and pooled-count classification, scoring, no data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from knative_rollout.analysis.judge import (
    Classification,
    Direction,
    JudgementClass,
    MetricSpec,
    ScoreThresholds,
    classify_counts,
    classify_metric,
    judge,
    judge_results,
    pairwise_difference_rank,
    shift_interval,
)
from knative_rollout.policy import Verdict


def lognormal(seed: int, size: int, scale: float = 1.0) -> list[float]:
    """Latency-like values (median ``scale``), reproducible."""
    return list(np.random.default_rng(seed).lognormal(0.0, 0.3, size) * scale)


LATENCY = MetricSpec("latency_p99", Direction.INCREASE)
SAME = lognormal(1, 60)

CLASSIFY_CASES = [
    # (id, spec, canary, baseline, classification)
    ("identical values pass", LATENCY, SAME, list(SAME), Classification.PASS),
    ("identical values in another order pass", LATENCY, SAME[::-1], SAME, Classification.PASS),
    ("one single value on both sides passes", LATENCY, [3.0] * 10, [3.0] * 8, Classification.PASS),
    ("two draws of one distribution pass", LATENCY, lognormal(2, 60), lognormal(3, 60), Classification.PASS),
    ("canary 50% slower is high", LATENCY, lognormal(2, 60, 1.5), lognormal(3, 60), Classification.HIGH),
    (
        "canary 1% slower in noise passes",
        LATENCY,
        lognormal(2, 60, 1.01),
        lognormal(3, 60),
        Classification.PASS,
    ),
    (
        "a significant 2% shift under allowed_increase 1.1 passes",
        MetricSpec("latency_p99", Direction.INCREASE, allowed_increase=1.1),
        lognormal(4, 20_000, 1.02),
        lognormal(5, 20_000),
        Classification.PASS,
    ),
    (
        "the same 2% shift with Kayenta's default effect gate (1.0) is high",
        LATENCY,
        lognormal(4, 20_000, 1.02),
        lognormal(5, 20_000),
        Classification.HIGH,
    ),
    (
        "a 30% rise is beyond allowed_increase 1.1",
        MetricSpec("latency_p99", Direction.INCREASE, allowed_increase=1.1),
        lognormal(2, 200, 1.3),
        lognormal(3, 200),
        Classification.HIGH,
    ),
    (
        "canary faster is no failure when only increases count",
        LATENCY,
        lognormal(2, 60, 0.5),
        lognormal(3, 60),
        Classification.PASS,
    ),
    (
        "canary faster is low when either direction counts",
        MetricSpec("x", Direction.EITHER),
        lognormal(2, 60, 0.5),
        lognormal(3, 60),
        Classification.LOW,
    ),
    (
        "a drop counts for a decrease metric",
        MetricSpec("accuracy", Direction.DECREASE),
        lognormal(2, 60, 0.5),
        lognormal(3, 60),
        Classification.LOW,
    ),
    (
        "a rise is fine for a decrease metric",
        MetricSpec("accuracy", Direction.DECREASE),
        lognormal(2, 60, 1.5),
        lognormal(3, 60),
        Classification.PASS,
    ),
    ("no canary values is no data", LATENCY, [], SAME, Classification.NODATA),
    ("no baseline values is no data", LATENCY, SAME, [], Classification.NODATA),
    ("only NaNs is no data, not zero", LATENCY, [math.nan] * 10, SAME, Classification.NODATA),
    (
        "four values a side cannot reach 98%",
        LATENCY,
        [9.0, 9.1, 9.2, 9.3],
        [1.0, 1.1, 1.2, 1.3],
        Classification.NODATA,
    ),
    (
        "five values a side fully apart can",
        LATENCY,
        [9.0, 9.1, 9.2, 9.3, 9.4],
        [1.0, 1.1, 1.2, 1.3, 1.4],
        Classification.HIGH,
    ),
    (
        "must_have_data turns no data into a failure",
        MetricSpec("x", must_have_data=True),
        [],
        SAME,
        Classification.NODATA_FAIL,
    ),
    (
        "errors from a zero baseline are high (ratio undefined)",
        MetricSpec("error_rate", Direction.INCREASE),
        [0.05, 0.04, 0.06, 0.05, 0.07, 0.05, 0.04, 0.06],
        [0.0] * 8,
        Classification.HIGH,
    ),
    (
        "no errors on either side pass",
        MetricSpec("error_rate", Direction.INCREASE),
        [0.0] * 8,
        [0.0] * 8,
        Classification.PASS,
    ),
]


@pytest.mark.parametrize(
    ("spec", "canary", "baseline", "expected"),
    [case[1:] for case in CLASSIFY_CASES],
    ids=[case[0] for case in CLASSIFY_CASES],
)
def test_classify_metric(spec, canary, baseline, expected):
    result = classify_metric(spec, canary, baseline)
    assert result.classification is expected, result.reason


def test_high_reports_its_numbers():
    result = classify_metric(LATENCY, lognormal(2, 60, 1.5), lognormal(3, 60))
    assert result.ratio == pytest.approx(1.5, rel=0.15)
    assert 0 < result.lower <= result.estimate <= result.upper
    assert result.p_value < 0.02
    assert result.to_dict()["classification"] == "High"
    assert result.canary.count == result.baseline.count == 60


def test_too_few_values_says_so():
    result = classify_metric(LATENCY, [9.0, 9.1], [1.0, 1.1])
    assert "too few" in result.reason and result.estimate is None


def metrics_in_groups(critical_result: Classification, *, critical: bool = True, **spec):
    """Four passing metrics and a fifth (possibly critical) that is high or passes."""
    same = lognormal(7, 40)
    rows = [(MetricSpec(f"m{i}", Direction.INCREASE), same, list(same)) for i in range(4)]
    fifth = lognormal(8, 40, 2.0) if critical_result is Classification.HIGH else list(same)
    rows.append((MetricSpec("errors", Direction.INCREASE, critical=critical, **spec), fifth, same))
    return rows


JUDGE_CASES = [
    # (id, metrics, thresholds, classification, score)
    ("all metrics pass", metrics_in_groups(Classification.PASS), None, JudgementClass.PASS, 100.0),
    (
        "a critical metric fails the whole judgement",
        metrics_in_groups(Classification.HIGH),
        None,
        JudgementClass.FAIL,
        0.0,
    ),
    (
        "the same failure, not critical, is marginal",
        metrics_in_groups(Classification.HIGH, critical=False),
        None,
        JudgementClass.MARGINAL,
        80.0,
    ),
    (
        "a critical high under critical_increase is no critical failure",
        metrics_in_groups(Classification.HIGH, critical_increase=5.0),
        None,
        JudgementClass.MARGINAL,
        80.0,
    ),
    (
        "a lower pass threshold passes 80",
        metrics_in_groups(Classification.HIGH, critical=False),
        ScoreThresholds(pass_threshold=80),
        JudgementClass.PASS,
        80.0,
    ),
    (
        "under the marginal threshold fails",
        metrics_in_groups(Classification.HIGH, critical=False),
        ScoreThresholds(marginal_threshold=90),
        JudgementClass.FAIL,
        80.0,
    ),
    (
        "group weights decide the score",
        metrics_in_groups(Classification.HIGH, critical=False),
        ScoreThresholds(group_weights={"errors": 60}),
        JudgementClass.FAIL,
        40.0,
    ),
    ("no metrics have data", [(LATENCY, [], [])], None, JudgementClass.NODATA, None),
    (
        "half the metrics without data is no data",
        [(LATENCY, SAME, SAME), (MetricSpec("error_rate"), [], SAME)],
        None,
        JudgementClass.NODATA,
        100.0,
    ),
    (
        "a critical metric without data is no data",
        [
            (LATENCY, SAME, SAME),
            (MetricSpec("a"), SAME, SAME),
            (MetricSpec("e", critical=True), [], []),
        ],
        None,
        JudgementClass.NODATA,
        100.0,
    ),
    (
        "must_have_data without data counts as a failure",
        [(LATENCY, SAME, SAME), (MetricSpec("e", must_have_data=True), [], SAME)],
        None,
        JudgementClass.FAIL,
        50.0,
    ),
    ("no metrics at all is no data", [], None, JudgementClass.NODATA, None),
]


@pytest.mark.parametrize(
    ("metrics", "thresholds", "expected", "score"),
    [case[1:] for case in JUDGE_CASES],
    ids=[case[0] for case in JUDGE_CASES],
)
def test_judge(metrics, thresholds, expected, score):
    judgement = judge(metrics, thresholds)
    assert judgement.classification is expected, judgement.reason
    assert judgement.score == (pytest.approx(score) if score is not None else None)


@pytest.mark.parametrize(
    ("classification", "verdict"),
    [
        (JudgementClass.PASS, Verdict.PASS),
        (JudgementClass.FAIL, Verdict.FAIL),
        (JudgementClass.MARGINAL, Verdict.INCONCLUSIVE),
        (JudgementClass.NODATA, Verdict.INCONCLUSIVE),
    ],
)
def test_judgement_maps_onto_the_policy_verdict(classification, verdict):
    assert classification.verdict is verdict


def test_judgement_is_json_able():
    import json

    judgement = judge(metrics_in_groups(Classification.HIGH))
    summary = json.loads(json.dumps(judgement.to_dict()))
    assert summary["verdict"] == "fail" and summary["score"] == 0.0
    assert [m["classification"] for m in summary["metrics"]] == ["Pass"] * 4 + ["High"]
    assert "critical metric failed: errors" in summary["reason"]


def test_repeated_metric_names_are_refused():
    with pytest.raises(ValueError, match="repeat"):
        judge([(LATENCY, SAME, SAME), (LATENCY, SAME, SAME)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.0},
        {"confidence": 0.3},
        {"tolerance": -0.1},
        {"allowed_increase": 0.9},
        {"allowed_decrease": 1.2},
    ],
)
def test_bad_metric_specs_are_refused(kwargs):
    with pytest.raises(ValueError, match="metric 'x'"):
        MetricSpec("x", **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pass_threshold": 50, "marginal_threshold": 60},
        {"max_nodata_fraction": 0},
        {"group_weights": {"a": 101}},
    ],
)
def test_bad_thresholds_are_refused(kwargs):
    with pytest.raises(ValueError):
        ScoreThresholds(**kwargs)


@pytest.mark.parametrize(("m", "n"), [(1, 1), (5, 5), (7, 13), (40, 30)])
@pytest.mark.parametrize("exact_pairs", [0, 10**9], ids=["bisection", "listed"])
def test_pairwise_difference_ranks_match_the_sorted_list(m, n, exact_pairs):
    rng = np.random.default_rng(m * 100 + n)
    x = np.sort(np.round(rng.normal(size=m), 2))  # rounding makes ties
    y = np.sort(np.concatenate([np.round(rng.normal(size=n - 1), 2), x[:1]]))
    listed = np.sort(np.subtract.outer(x, y).ravel())
    for rank in range(1, m * n + 1):
        assert pairwise_difference_rank(x, y, rank, exact_pairs=exact_pairs) == pytest.approx(
            listed[rank - 1], abs=1e-12
        )


def test_shift_is_the_hodges_lehmann_estimate():
    x, y = lognormal(11, 31, 1.2), lognormal(12, 20)
    estimate, lower, upper = shift_interval(x, y)
    assert estimate == pytest.approx(float(np.median(np.subtract.outer(x, y))))
    assert lower < estimate < upper


def test_a_wider_confidence_gives_a_wider_interval():
    x, y = lognormal(11, 50, 1.2), lognormal(12, 50)
    _, low_90, high_90 = shift_interval(x, y, 0.90)
    _, low_99, high_99 = shift_interval(x, y, 0.99)
    assert low_99 < low_90 < high_90 < high_99


ERRORS = MetricSpec("error_rate", Direction.INCREASE, critical=True)
FLOORED = MetricSpec("error_rate", Direction.INCREASE, allowed_difference=0.002)

COUNTS_CASES = [
    # (id, spec, canary (errors, requests), baseline (errors, requests), classification)
    ("the same rate passes", ERRORS, (15, 3000), (15, 3000), Classification.PASS),
    ("no errors on either side pass", ERRORS, (0, 600), (0, 600), Classification.PASS),
    ("1.5% vs 0.5% over 3000 requests is high", ERRORS, (45, 3000), (15, 3000), Classification.HIGH),
    ("a handful of errors is not significant", ERRORS, (2, 60), (0, 60), Classification.PASS),
    (
        "0.6% vs 0.5% over 100,000 is significant, so high",
        ERRORS,
        (600, 100_000),
        (500, 100_000),
        Classification.HIGH,
    ),
    (
        "... but under a 0.2-point floor it passes",
        FLOORED,
        (600, 100_000),
        (500, 100_000),
        Classification.PASS,
    ),
    ("a 1-point rise is beyond the floor", FLOORED, (45, 3000), (15, 3000), Classification.HIGH),
    ("errors against an error-free baseline", FLOORED, (12, 600), (0, 600), Classification.HIGH),
    (
        "a significant rise under allowed_increase passes",
        MetricSpec("error_rate", Direction.INCREASE, allowed_increase=4.0),
        (45, 3000),
        (15, 3000),
        Classification.PASS,
    ),
    (
        "fewer errors are no failure when only increases count",
        ERRORS,
        (15, 3000),
        (45, 3000),
        Classification.PASS,
    ),
    (
        "fewer errors are low when either counts",
        MetricSpec("x", Direction.EITHER),
        (15, 3000),
        (45, 3000),
        Classification.LOW,
    ),
    ("unequal traffic compares rates, not counts", ERRORS, (15, 3000), (135, 27_000), Classification.PASS),
    ("a silent canary is no data", ERRORS, (0, 0), (15, 3000), Classification.NODATA),
    (
        "no data fails a metric that must have it",
        MetricSpec("error_rate", Direction.INCREASE, must_have_data=True),
        (15, 3000),
        (0, 0),
        Classification.NODATA_FAIL,
    ),
]


@pytest.mark.parametrize(
    ("spec", "canary", "baseline", "expected"),
    [case[1:] for case in COUNTS_CASES],
    ids=[case[0] for case in COUNTS_CASES],
)
def test_classify_counts(spec, canary, baseline, expected):
    result = classify_counts(spec, canary, baseline)
    assert result.classification is expected, result.reason


def test_counts_report_their_numbers_and_score_like_samples():
    result = classify_counts(ERRORS, (45, 3000), (15, 3000))
    assert (result.ratio, result.estimate) == (pytest.approx(3.0), pytest.approx(0.01))
    assert result.p_value < 0.01 and "one-sided Fisher" in result.reason
    assert (result.canary.count, result.canary.mean) == (3000, pytest.approx(0.015))
    judgement = judge_results([result, classify_metric(LATENCY, SAME, list(SAME))])
    assert judgement.classification is JudgementClass.FAIL and judgement.score == 0.0
    assert "critical metric failed: error_rate" in judgement.reason


@pytest.mark.parametrize(
    ("canary", "baseline", "message"),
    [((5, 3), (0, 10), "canary's counts 5 events of 3"), ((0, 10), (-1, 10), "baseline's counts -1")],
)
def test_impossible_counts_are_refused_naming_the_side(canary, baseline, message):
    with pytest.raises(ValueError, match=message):
        classify_counts(ERRORS, canary, baseline)


def test_a_negative_allowed_difference_is_refused():
    with pytest.raises(ValueError, match=r"allowed_difference=-0\.1"):
        MetricSpec("x", allowed_difference=-0.1)


def test_allowed_difference_gates_the_interval_test_too():
    slower = lognormal(2, 60, 1.5), lognormal(3, 60)
    assert classify_metric(LATENCY, *slower).classification is Classification.HIGH
    floored = MetricSpec("latency_p99", Direction.INCREASE, allowed_difference=10.0)
    result = classify_metric(floored, *slower)
    assert result.classification is Classification.PASS and "allowed difference 10" in result.reason
