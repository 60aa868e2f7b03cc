"""The model of a serving revision the benchmark's trials draw from, and its fit to measured latencies.

A revision answers requests whose latency is a mixture of two lognormals, a body and a heavy tail
(queueing, GC, a busy core), fitted to the latency histogram Knative's metrics recorded for the
example model server on a real local_knative (``calibrate.py``), and whose errors are independent
with a fixed probability. A trial
draws a Poisson number of requests per interval at the revision's share of the total rate, their
latencies and errors, and counts them into Knative's latency buckets: the same per-interval
:class:`knative_rollout.analysis.series.Interval` that the metric providers produce from a scrape.
Regressions and the cold-start effect are multipliers on the latency (every quantile scales with it,
so "+20 % p99" is a factor 1.2) and a different error probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from knative_rollout.analysis.series import Interval, MetricsSchema, RevisionWindow
from local_knative.metrics import LATENCY_BUCKETS_MS, OTEL_DURATION_BUCKETS_S

CALIBRATION = Path(__file__).resolve().parent / "calibration.json"
BUCKETS_S = {
    "opencensus": tuple(bound / 1000 for bound in LATENCY_BUCKETS_MS),
    "opentelemetry": OTEL_DURATION_BUCKETS_S,
}
"""Knative's latency bucket bounds per metrics schema, in seconds (what local_knative exposes too)."""


BODY_SIGMA = (0.1, 1.0)
TAIL_SIGMA = (0.3, 1.5)
TAIL_WEIGHT = (0.001, 0.3)


@dataclass(frozen=True)
class LatencyModel:
    """A two-lognormal mixture: with probability ``tail_weight`` a tail draw, else a body draw (seconds)."""

    body_median: float
    body_sigma: float
    tail_weight: float
    tail_median: float
    tail_sigma: float

    def cdf(self, seconds: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Return P(latency <= seconds), element by element."""
        body = stats.lognorm.cdf(seconds, self.body_sigma, scale=self.body_median)
        tail = stats.lognorm.cdf(seconds, self.tail_sigma, scale=self.tail_median)
        return np.asarray((1 - self.tail_weight) * body + self.tail_weight * tail, dtype=np.float64)

    def quantile(self, q: float) -> float:
        """Return the ``q`` quantile in seconds."""
        return float(optimize.brentq(lambda x: float(self.cdf(np.array([x]))[0]) - q, 1e-7, 1e4, xtol=1e-9))

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Return ``count`` latencies in seconds."""
        tail = rng.random(count) < self.tail_weight
        median = np.where(tail, self.tail_median, self.body_median)
        sigma = np.where(tail, self.tail_sigma, self.body_sigma)
        return np.asarray(median * np.exp(sigma * rng.standard_normal(count)), dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        """Return the parameters, medians in milliseconds."""
        return {
            "body_median_ms": self.body_median * 1000,
            "body_sigma": self.body_sigma,
            "tail_weight": self.tail_weight,
            "tail_median_ms": self.tail_median * 1000,
            "tail_sigma": self.tail_sigma,
        }

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> LatencyModel:
        """Read :meth:`to_dict`'s output."""
        return cls(
            data["body_median_ms"] / 1000,
            data["body_sigma"],
            data["tail_weight"],
            data["tail_median_ms"] / 1000,
            data["tail_sigma"],
        )


def fit_buckets(buckets: Sequence[tuple[float, float]]) -> LatencyModel:
    """Fit a :class:`LatencyModel` to a latency histogram by maximum likelihood on its bucket counts.

    The histogram is what Knative's metrics measured (the ingress's view, not a client's), cumulative as
    Prometheus has it: (upper bound in seconds, count), the last bound ``inf``. Buckets say nothing of
    the shape inside them, so the shape is kept smooth: each component's sigma and the tail's weight stay
    in the ranges below (without them the fit puts a spike just under a bound, which a 5 % slowdown would
    push over it all at once), and the tail's median above the body's.

    :param buckets: the cumulative histogram of a whole measurement.
    """
    bounds = np.array([bound for bound, _ in buckets[:-1]], dtype=np.float64)
    cumulative = np.array([count for _, count in buckets], dtype=np.float64)
    counts = np.diff(cumulative, prepend=0.0)
    shares = cumulative[:-1] / cumulative[-1]
    median = float(np.exp(np.interp(0.5, shares, np.log(bounds))))

    def within(value: float, low: float, high: float) -> float:
        return low + (high - low) * float(special.expit(value))

    def unpack(p: np.ndarray[Any, np.dtype[np.float64]]) -> LatencyModel:
        body = math.exp(p[0])
        return LatencyModel(
            body,
            within(p[1], *BODY_SIGMA),
            within(p[2], *TAIL_WEIGHT),
            body * (1 + math.exp(min(p[3], 20.0))),
            within(p[4], *TAIL_SIGMA),
        )

    def loss(p: np.ndarray[Any, np.dtype[np.float64]]) -> float:
        cdf = unpack(p).cdf(bounds)
        probabilities = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
        return float(-np.sum(counts * np.log(np.maximum(probabilities, 1e-12))))

    start = np.array([math.log(median), 0.0, -2.0, math.log(2.0), 0.0])
    best = optimize.minimize(loss, start, method="Nelder-Mead", options={"maxiter": 8000, "xatol": 1e-5})
    return unpack(best.x)


@dataclass(frozen=True)
class Revision:
    """One revision as a trial sees it: its share of the traffic, its latency factor and error rate."""

    name: str
    share: float
    latency_factor: float
    error_rate: float


def draw_window(
    rng: np.random.Generator,
    revision: Revision,
    latency: LatencyModel,
    *,
    total_rate: float,
    interval: float,
    intervals: int,
    buckets: tuple[float, ...],
) -> RevisionWindow:
    """Return ``intervals`` consecutive intervals of ``revision``'s answers in Knative's buckets."""
    bounds = np.asarray(buckets, dtype=np.float64)
    drawn = []
    for index in range(intervals):
        count = int(rng.poisson(total_rate * revision.share * interval))
        values = np.sort(latency.draw(rng, count) * revision.latency_factor)
        errors = int(rng.binomial(count, revision.error_rate)) if count else 0
        cumulative = np.searchsorted(values, bounds, side="right")  # Prometheus buckets: value <= le
        drawn.append(
            Interval(
                start=index * interval,
                end=(index + 1) * interval,
                requests=float(count),
                errors=float(errors),
                buckets=(*zip(buckets, map(float, cumulative), strict=True), (math.inf, float(count))),
            )
        )
    schema = MetricsSchema.OPENCENSUS if buckets == BUCKETS_S["opencensus"] else MetricsSchema.OPENTELEMETRY
    return RevisionWindow("bench", revision.name, schema, tuple(drawn))
