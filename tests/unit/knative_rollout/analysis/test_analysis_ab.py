"""ab_outcome names the A/B winner from the judge's metric classifications, table by table."""

from __future__ import annotations

import pytest

from knative_rollout.analysis.ab import ab_outcome


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
