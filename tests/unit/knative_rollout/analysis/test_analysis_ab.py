"""ab_outcome names the A/B winner from the judge's metric classifications, table by table."""

from __future__ import annotations

import pytest

from knative_rollout.analysis.ab import ab_outcome, labelled_between, labelled_counts, quality_result
from knative_rollout.analysis.series import parse_exposition


def metrics(**classes: str) -> list[dict[str, str]]:
    return [{"metric": name, "classification": value} for name, value in classes.items()]


@pytest.mark.parametrize(
    ("classes", "winner", "summary"),
    [
        (
            {"latency_p99": "Pass", "error_rate": "Pass"},
            "no significant difference",
            "no significant difference",
        ),
        ({"latency_p99": "High", "error_rate": "Pass"}, "a", "A wins on latency_p99"),
        ({"latency_p99": "Low", "error_rate": "Pass"}, "b", "B wins on latency_p99"),
        (
            {"latency_p99": "Low", "error_rate": "High"},
            "mixed",
            "mixed: A better on error_rate, B better on latency_p99",
        ),
        (
            {"latency_p99": "NoData", "error_rate": "Low"},
            "inconclusive",
            "inconclusive: no data for latency_p99",
        ),
        ({"latency_p99": "NoDataFailMetric"}, "inconclusive", "inconclusive"),
        ({}, "inconclusive", "inconclusive"),
    ],
)
def test_ab_outcome(classes: dict[str, str], winner: str, summary: str) -> None:
    outcome = ab_outcome(metrics(**classes))
    assert outcome.winner == winner
    assert outcome.describe("A", "B").startswith(summary)


@pytest.mark.parametrize(
    ("accuracy", "winner", "summary"),
    [
        ("High", "b", "B wins on accuracy"),  # higher is better: High for B is a point for B
        ("Low", "a", "A wins on accuracy"),
        ("Pass", "no significant difference", "no significant difference"),
        ("NoData", "inconclusive", "inconclusive: no data for accuracy"),
    ],
)
def test_the_quality_metric_counts_the_other_way_round(accuracy: str, winner: str, summary: str) -> None:
    outcome = ab_outcome(metrics(latency_p99="Pass"), metrics(accuracy=accuracy))
    assert outcome.winner == winner
    assert outcome.describe("A", "B").startswith(summary)


def test_labelled_counts_read_one_revisions_counters_per_process() -> None:
    text = "\n".join(
        [
            "# TYPE model_labelled_predictions_total counter",
            'model_labelled_predictions_total{revision_name="r1",server_id="p1",outcome="correct"} 9',
            'model_labelled_predictions_total{revision_name="r1",server_id="p1",outcome="incorrect"} 1',
            'model_labelled_predictions_total{revision_name="r2",server_id="p2",outcome="correct"} 5',
            'other_total{revision_name="r1",server_id="p1",outcome="correct"} 99',
        ]
    )
    samples = parse_exposition(text, time=0).samples
    assert labelled_counts(samples, "r1") == {"p1": [9.0, 10.0]}
    assert labelled_counts(samples, "r3") == {}


@pytest.mark.parametrize(
    ("before", "after", "between"),
    [
        ({"p1": [9, 10]}, {"p1": [27, 30]}, (18, 20)),
        ({}, {"p1": [27, 30]}, (0, 0)),  # no start read of that process: unknown, so no data
        ({"p1": [9, 10]}, {"p2": [3, 3]}, (0, 0)),  # another pod answered the end read
        ({"p1": [9, 10]}, {"p1": [2, 3]}, (0, 0)),  # the process restarted (a counter went back)
        ({"p1": [9, 10], "p2": [0, 0]}, {"p1": [10, 12], "p2": [4, 4]}, (5, 6)),
    ],
)
def test_labelled_between_counts_only_processes_read_both_times(
    before: dict[str, list[float]], after: dict[str, list[float]], between: tuple[float, float]
) -> None:
    assert labelled_between(before, after) == between


def test_quality_result_is_the_judges_count_test_with_b_as_the_canary() -> None:
    better = quality_result(a=(700, 1000), b=(930, 1000))
    assert (better["metric"], better["classification"]) == ("accuracy", "High")
    assert quality_result(a=(930, 1000), b=(930, 1000))["classification"] == "Pass"
    assert quality_result(a=(0, 0), b=(930, 1000))["classification"].startswith("NoData")
