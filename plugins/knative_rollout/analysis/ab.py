"""Name the winner of an A/B comparison from the judge's per-metric results.

Pure: no I/O. An A/B test sends B a fixed share of the traffic (or only the requests with its tag header)
for a window and compares the two revisions with the same judge as a canary analysis, but both ways
(direction ``either``): for the built-in metrics (latency, error rate) lower is better, so a metric
classified ``Low`` for B is a point for B and ``High`` a point for A. The winner is the revision that
is better on at least one metric and worse on none; ``no significant difference`` when every metric
passed; ``mixed`` when each is better somewhere; ``inconclusive`` when any metric had no data (too
little data never names a winner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knative_rollout.analysis.judge import Direction, MetricSpec

AB_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "latency_p99", Direction.EITHER, group="latency", allowed_increase=1.1, allowed_decrease=1 / 1.1
    ),
    MetricSpec("error_rate", Direction.EITHER, group="errors"),
)
"""The default A/B comparison: p99 latency (10% either way is bucket noise) and error rate, both ways."""

A_WINS = "a"
B_WINS = "b"
NO_DIFFERENCE = "no significant difference"
MIXED = "mixed"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class ABOutcome:
    """Who won an A/B comparison, and on which metrics."""

    winner: str
    better_a: tuple[str, ...]
    better_b: tuple[str, ...]
    no_data: tuple[str, ...]

    def describe(self, a: str, b: str) -> str:
        """Return one line for logs and reports."""
        names = {A_WINS: a, B_WINS: b}
        if self.winner in names:
            on = self.better_a if self.winner == A_WINS else self.better_b
            return f"{names[self.winner]} wins on {', '.join(on)}"
        if self.winner == MIXED:
            return (
                f"mixed: {a} better on {', '.join(self.better_a)}, {b} better on {', '.join(self.better_b)}"
            )
        if self.winner == INCONCLUSIVE:
            return f"inconclusive: no data for {', '.join(self.no_data)}"
        return f"no significant difference between {a} and {b}"


def ab_outcome(metrics: Sequence[Mapping[str, Any]]) -> ABOutcome:
    """Return the A/B outcome from the judge's metric results (``Judgement.to_dict()["metrics"]``).

    B is the judge's canary, A its baseline.
    """
    better_a = tuple(str(m["metric"]) for m in metrics if m["classification"] == "High")
    better_b = tuple(str(m["metric"]) for m in metrics if m["classification"] == "Low")
    no_data = tuple(str(m["metric"]) for m in metrics if str(m["classification"]).startswith("NoData"))
    if no_data or not metrics:
        winner = INCONCLUSIVE
    elif better_a and better_b:
        winner = MIXED
    elif better_a:
        winner = A_WINS
    elif better_b:
        winner = B_WINS
    else:
        winner = NO_DIFFERENCE
    return ABOutcome(winner=winner, better_a=better_a, better_b=better_b, no_data=no_data)
