"""Name the winner of an A/B comparison from the judge's per-metric results.

Pure: no I/O. An A/B test sends B a fixed share of the traffic (or only the requests with its tag header)
for a window and compares the two revisions with the same judge as a canary analysis, but both ways
(direction ``either``): for the built-in metrics (latency, error rate) lower is better, so a metric
classified ``Low`` for B is a point for B and ``High`` a point for A. The winner is the revision that
is better on at least one metric and worse on none; ``no significant difference`` when every metric
passed; ``mixed`` when each is better somewhere; ``inconclusive`` when any metric had no data (too
little data never names a winner).

The model-quality metric (:data:`ACCURACY`) has its own direction, higher is better: accuracy on the
requests that carried their true labels, which the example model counts in
``model_labelled_predictions_total`` (:data:`QUALITY_SERIES`). Its counters are read from each
revision's ``/metrics`` at the window's start and end (:func:`labelled_between`), and the two pooled
proportions compared with the judge's count test (:func:`~knative_rollout.analysis.judge.classify_counts`,
a Fisher exact test), so ``High`` for B is a point for B here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knative_rollout.analysis.judge import Direction, MetricSpec, classify_counts
from knative_rollout.analysis.series import Sample

AB_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "latency_p99", Direction.EITHER, group="latency", allowed_increase=1.1, allowed_decrease=1 / 1.1
    ),
    MetricSpec("error_rate", Direction.EITHER, group="errors"),
)
"""The default A/B comparison: p99 latency (10% either way is bucket noise) and error rate, both ways."""

ACCURACY = MetricSpec("accuracy", Direction.EITHER, group="quality")
"""The model-quality comparison: accuracy on labelled requests, both ways; higher is better."""
QUALITY_SERIES = "model_labelled_predictions_total"
"""The example model's counter of labelled predictions (labels ``revision_name``, ``server_id``,
``outcome``)."""

Counts = dict[str, list[float]]
"""(correct, labelled) per server process (``server_id``) of one revision, in one read."""

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


def labelled_counts(samples: Iterable[Sample], revision: str) -> Counts:
    """Return ``revision``'s labelled predictions per server process from one read of its ``/metrics``."""
    counts: Counts = {}
    for sample in samples:
        if sample.name != QUALITY_SERIES or sample.label("revision_name") != revision:
            continue
        pair = counts.setdefault(sample.label("server_id"), [0.0, 0.0])
        if sample.label("outcome") == "correct":
            pair[0] += sample.value
        pair[1] += sample.value
    return counts


def labelled_between(
    before: Mapping[str, Sequence[float]], after: Mapping[str, Sequence[float]]
) -> tuple[float, float]:
    """Return (correct, labelled) answered between two reads, from the processes seen in both.

    A process seen in one read only (another pod answered, or it restarted) adds nothing: what it
    answered in the window is unknown. No process in both reads gives (0, 0): no data, never accuracy 0.
    """
    correct = labelled = 0.0
    for server, (correct_after, labelled_after) in after.items():
        if server in before:
            correct_before, labelled_before = before[server]
            if correct_after >= correct_before and labelled_after >= labelled_before:
                correct += correct_after - correct_before
                labelled += labelled_after - labelled_before
    return correct, labelled


def quality_result(a: tuple[float, float], b: tuple[float, float]) -> dict[str, Any]:
    """Return the judge's classification of B's accuracy against A's (``High``: B is more accurate).

    :param a: A's (correct, labelled) in the window.
    :param b: B's (correct, labelled) in the window.
    """
    return classify_counts(ACCURACY, canary=b, baseline=a).to_dict()


def ab_outcome(metrics: Sequence[Mapping[str, Any]], quality: Sequence[Mapping[str, Any]] = ()) -> ABOutcome:
    """Return the A/B outcome from the judge's metric results (``Judgement.to_dict()["metrics"]``).

    B is the judge's canary, A its baseline.

    :param quality: results of metrics where higher is better (:func:`quality_result`).
    """
    better_a = tuple(str(m["metric"]) for m in metrics if m["classification"] == "High") + tuple(
        str(m["metric"]) for m in quality if m["classification"] == "Low"
    )
    better_b = tuple(str(m["metric"]) for m in metrics if m["classification"] == "Low") + tuple(
        str(m["metric"]) for m in quality if m["classification"] == "High"
    )
    no_data = tuple(
        str(m["metric"]) for m in (*metrics, *quality) if str(m["classification"]).startswith("NoData")
    )
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
