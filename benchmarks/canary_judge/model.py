"""The model of a serving revision the benchmark's trials draw from, and its fit to measured latencies.

A revision answers requests whose latency is a mixture of two lognormals, a body and a heavy tail
(queueing, GC, a busy core), fitted to the example model server's quantiles measured once on a real
local_knative (``calibrate.py``), and whose errors are independent with a fixed probability. A trial
draws a Poisson number of requests per interval at the revision's share of the total rate, their
latencies and errors, and counts them into Knative's latency buckets: the same per-interval
:class:`knative_rollout.analysis.series.Interval` that the metric providers produce from a scrape.
Regressions and the cold-start effect are multipliers on the latency (every quantile scales with it,
so "+20 % p99" is a factor 1.2) and a different error probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

from knative_rollout.analysis.series import Interval, MetricsSchema, RevisionWindow
from local_knative.metrics import LATENCY_BUCKETS_MS, OTEL_DURATION_BUCKETS_S

CALIBRATION = Path(__file__).resolve().parent / "calibration.json"
QUANTILES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
BUCKETS_S = {
    "opencensus": tuple(bound / 1000 for bound in LATENCY_BUCKETS_MS),
    "opentelemetry": OTEL_DURATION_BUCKETS_S,
}
"""Knative's latency bucket bounds per metrics schema, in seconds (what local_knative exposes too)."""


@dataclass(frozen=True)
class LatencyModel:
    """A two-lognormal mixture: with probability ``tail_weight`` a tail draw, else a body draw (seconds)."""

    body_median: float
    body_sigma: float
    tail_weight: float
    tail_median: float
    tail_sigma: float

    def cdf(self, seconds: float) -> float:
        """Return P(latency <= seconds)."""
        body = stats.lognorm.cdf(seconds, self.body_sigma, scale=self.body_median)
        tail = stats.lognorm.cdf(seconds, self.tail_sigma, scale=self.tail_median)
        return float((1 - self.tail_weight) * body + self.tail_weight * tail)

    def quantile(self, q: float) -> float:
        """Return the ``q`` quantile in seconds."""
        return float(optimize.brentq(lambda x: self.cdf(x) - q, 1e-7, 1e4, xtol=1e-9))

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


def fit_mixture(quantiles: dict[float, float]) -> LatencyModel:
    """Fit a :class:`LatencyModel` to measured quantiles (seconds) by least squares on log latency.

    The body starts as the lognormal through the median and p90; the tail's weight is kept in
    0.1 % .. 20 % and its median above the body's, so the tail is a tail.
    """
    qs = sorted(quantiles)
    logs = np.log([quantiles[q] for q in qs])
    median = quantiles.get(0.5) or float(np.exp(np.interp(0.5, qs, logs)))
    p90 = quantiles.get(0.9) or float(np.exp(np.interp(0.9, qs, logs)))
    sigma = max(math.log(p90 / median) / stats.norm.ppf(0.9), 0.01)
    top = quantiles[qs[-1]]

    def unpack(p: np.ndarray[Any, np.dtype[np.float64]]) -> LatencyModel:
        weight = 0.001 + 0.199 / (1 + math.exp(-p[2]))
        return LatencyModel(
            math.exp(p[0]), math.exp(p[1]), weight, math.exp(p[0]) * (1 + math.exp(p[3])), math.exp(p[4])
        )

    def loss(p: np.ndarray[Any, np.dtype[np.float64]]) -> float:
        model = unpack(p)
        try:
            fitted = np.log([model.quantile(q) for q in qs])
        except ValueError:
            return 1e9
        return float(np.sum((fitted - logs) ** 2))

    start = np.array([math.log(median), math.log(sigma), -2.0, math.log(max(top / median - 1, 0.5)), -0.5])
    best = optimize.minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4})
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
