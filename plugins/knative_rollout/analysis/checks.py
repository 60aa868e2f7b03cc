"""Turn a canary's (and its baseline's) metric windows into one analysis result with a verdict.

Pure: no I/O. Two kinds of check, both optional, at least one required:

* **SLO checks** (:class:`SLO`): the canary alone against absolute limits over the whole window: p99
  latency (from the merged latency histogram, as ``histogram_quantile`` would) and 5xx error rate. Fewer
  than ``min_requests`` answers in the window is "no data", whose verdict ``on_no_data`` chooses
  (inconclusive by default; never a silent pass).
* **The judge** (:mod:`knative_rollout.analysis.judge`): canary vs baseline per metric, on the samples
  :class:`Samples` names. ``requests`` (the default): every request in the window, so 60 s at 10/s is
  600 values a side, not 6: a latency metric compares the request latencies read back from the whole
  window's histogram (:func:`~knative_rollout.analysis.series.request_latencies`; the whole
  distribution, so ``latency_p50`` and ``latency_p99`` judge the same thing), ``error_rate`` the pooled
  5xx and request counts (:func:`~knative_rollout.analysis.judge.classify_counts`). ``intervals``
  (Kayenta's way): one sample per interval and revision, ``latency_pNN`` that interval's quantile
  (seconds) and ``error_rate`` its rate; intervals in which a revision answered nothing give no sample.

The result's verdict is FAIL when any check failed, else INCONCLUSIVE when any check had no data or the
judge was marginal, else PASS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from knative_rollout.analysis.judge import (
    Direction,
    Judgement,
    MetricResult,
    MetricSpec,
    ScoreThresholds,
    classify_counts,
    classify_metric,
    judge_results,
)
from knative_rollout.analysis.series import Interval, RevisionWindow, request_latencies
from knative_rollout.policy import Verdict

LATENCY_METRICS: Mapping[str, float] = {
    "latency_p50": 0.5,
    "latency_p90": 0.9,
    "latency_p95": 0.95,
    "latency_p99": 0.99,
}
ERROR_RATE = "error_rate"
METRIC_NAMES = (*LATENCY_METRICS, ERROR_RATE)
REQUEST_SAMPLES = 50_000
"""The most request latencies judged a side (a larger window is scaled down to this): about 2 s of work,
and enough to resolve a shift of about 2 %."""

DEFAULT_METRICS: tuple[MetricSpec, ...] = (
    # A p99 within 10% of the baseline's is noise of the bucketed histogram, not a regression.
    MetricSpec("latency_p99", Direction.INCREASE, group="latency", allowed_increase=1.1),
    # Under 0.2 points more errors is no rollback, however many requests make it significant.
    MetricSpec(ERROR_RATE, Direction.INCREASE, group="errors", critical=True, allowed_difference=0.002),
)
"""The built-in comparison: p99 latency and error rate, where only an increase is bad; errors critical."""


class Samples(StrEnum):
    """What the judge compares per metric (see the module docstring)."""

    REQUESTS = "requests"
    INTERVALS = "intervals"


DEFAULT_SAMPLES = Samples.REQUESTS


def parse_verdict(value: Verdict | str, *, what: str) -> Verdict:
    """Read a verdict given as text (templated parameters arrive as strings).

    :raises ValueError: naming ``what`` and the choices.
    """
    if isinstance(value, Verdict):
        return value
    try:
        return Verdict(str(value).strip().lower())
    except ValueError:
        raise ValueError(
            f"{what}={value!r} is not a verdict; pass one of {', '.join(v.value for v in Verdict)}"
        ) from None


@dataclass(frozen=True)
class SLO:
    """Absolute limits on the canary over the analysis window.

    :param max_p99_latency: the highest allowed p99 latency, in seconds (None: not checked).
    :param max_error_rate: the highest allowed share of 5xx answers, 0..1 (None: not checked).
    :param min_requests: fewer answers than this in the window is "no data".
    :param on_no_data: the verdict of a check with no data: ``inconclusive`` (default), ``fail`` or ``pass``.
    """

    max_p99_latency: float | None = None
    max_error_rate: float | None = None
    min_requests: int = 20
    on_no_data: Verdict = Verdict.INCONCLUSIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_no_data", parse_verdict(self.on_no_data, what="on_no_data"))
        if self.max_p99_latency is not None and not self.max_p99_latency > 0:
            raise ValueError(f"max_p99_latency={self.max_p99_latency}; pass seconds above 0")
        if self.max_error_rate is not None and not 0 <= self.max_error_rate <= 1:
            raise ValueError(f"max_error_rate={self.max_error_rate}; pass a fraction in 0..1")
        if self.min_requests < 1:
            raise ValueError(f"min_requests={self.min_requests}; pass 1 or more")


@dataclass(frozen=True)
class SLOCheckResult:
    """One absolute check of the canary."""

    name: str
    threshold: float
    observed: float | None
    requests: float
    verdict: Verdict
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able summary."""
        return {
            "check": self.name,
            "threshold": self.threshold,
            "observed": self.observed,
            "requests": self.requests,
            "verdict": self.verdict.value,
            "reason": self.reason,
        }


def check_slo(window: RevisionWindow, slo: SLO) -> tuple[SLOCheckResult, ...]:
    """Check the canary's whole window against ``slo``."""
    total = window.total
    checks: list[SLOCheckResult] = []
    limits: list[tuple[str, float, float | None, str]] = []
    if slo.max_p99_latency is not None:
        limits.append(("p99_latency", slo.max_p99_latency, total.latency_quantile(0.99), "s"))
    if slo.max_error_rate is not None:
        limits.append(("error_rate", slo.max_error_rate, total.error_rate, ""))
    for name, threshold, observed, unit in limits:
        if total.requests < slo.min_requests or observed is None:
            checks.append(
                SLOCheckResult(
                    name,
                    threshold,
                    None,
                    total.requests,
                    slo.on_no_data,
                    f"no data: {total.requests:g} answers in the window, {slo.min_requests} needed",
                )
            )
            continue
        passed = observed <= threshold
        checks.append(
            SLOCheckResult(
                name,
                threshold,
                observed,
                total.requests,
                Verdict.PASS if passed else Verdict.FAIL,
                f"{name} {observed:.6g}{unit} {'<=' if passed else '>'} {threshold:g}{unit} "
                f"over {total.requests:g} answers",
            )
        )
    return tuple(checks)


def metric_samples(window: RevisionWindow, name: str) -> list[float]:
    """Return a revision's per-interval samples of a built-in metric (NaN where it answered nothing).

    :raises ValueError: for an unknown metric name.
    """
    if name in LATENCY_METRICS:
        return window.latency_quantiles(LATENCY_METRICS[name])
    if name == ERROR_RATE:
        return window.error_rates()
    raise ValueError(f"unknown metric {name!r}; the built-in metrics are {', '.join(METRIC_NAMES)}")


def classify_window(
    spec: MetricSpec, canary: RevisionWindow, baseline: RevisionWindow, samples: Samples = DEFAULT_SAMPLES
) -> MetricResult:
    """Classify one built-in metric of the canary's window against the baseline's.

    :raises ValueError: for an unknown metric name.
    """
    if samples is Samples.INTERVALS or spec.name not in METRIC_NAMES:  # metric_samples refuses unknown names
        return classify_metric(spec, metric_samples(canary, spec.name), metric_samples(baseline, spec.name))
    x, y = canary.total, baseline.total
    if spec.name == ERROR_RATE:
        return classify_counts(spec, (x.errors, x.requests), (y.errors, y.requests))
    return classify_metric(
        spec,
        request_latencies(x.buckets, at_most=REQUEST_SAMPLES),
        request_latencies(y.buckets, at_most=REQUEST_SAMPLES),
    )


def judge_windows(
    canary: RevisionWindow,
    baseline: RevisionWindow,
    metrics: Sequence[MetricSpec] = DEFAULT_METRICS,
    thresholds: ScoreThresholds | None = None,
    samples: Samples = DEFAULT_SAMPLES,
) -> Judgement:
    """Compare the canary's window with the baseline's, metric by metric, on ``samples``."""
    return judge_results([classify_window(spec, canary, baseline, samples) for spec in metrics], thresholds)


@dataclass(frozen=True)
class AnalysisResult:
    """The outcome of one analysis window, for the rollout policy and the report."""

    verdict: Verdict
    reason: str
    namespace: str
    canary: str
    baseline: str | None
    schema: str | None
    start: float
    end: float
    judgement: Judgement | None
    slo_checks: tuple[SLOCheckResult, ...]
    totals: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able summary (small enough for XCom)."""
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "namespace": self.namespace,
            "canary": self.canary,
            "baseline": self.baseline,
            "schema": self.schema,
            "window": {"start": self.start, "end": self.end},
            "judgement": self.judgement.to_dict() if self.judgement is not None else None,
            "slo": [check.to_dict() for check in self.slo_checks],
            "totals": {revision: dict(values) for revision, values in self.totals.items()},
        }


def evaluate(
    canary: RevisionWindow,
    baseline: RevisionWindow | None = None,
    *,
    slo: SLO | None = None,
    metrics: Sequence[MetricSpec] = DEFAULT_METRICS,
    thresholds: ScoreThresholds | None = None,
    samples: Samples = DEFAULT_SAMPLES,
) -> AnalysisResult:
    """Run the SLO checks on the canary and, with a baseline, the judge; combine them into one verdict.

    :param canary: the canary's window.
    :param baseline: the baseline's (or stable's) window over the same time; None skips the judge.
    :param slo: absolute limits on the canary; None skips them.
    :param metrics: what the judge compares.
    :param thresholds: the judge's score thresholds.
    :param samples: what the judge compares: every request or one sample per interval.
    :raises ValueError: when neither a baseline nor an SLO is given (nothing to check).
    """
    if baseline is None and slo is None:
        raise ValueError("nothing to check: pass a baseline revision to compare with, an SLO, or both")
    slo_checks = check_slo(canary, slo) if slo is not None else ()
    judgement = (
        judge_windows(canary, baseline, metrics, thresholds, samples) if baseline is not None else None
    )
    verdicts = [check.verdict for check in slo_checks] + ([judgement.verdict] if judgement else [])
    failed = [check.reason for check in slo_checks if check.verdict is Verdict.FAIL]
    unsure = [check.reason for check in slo_checks if check.verdict is Verdict.INCONCLUSIVE]
    if judgement is not None and judgement.verdict is Verdict.FAIL:
        failed.append(f"judge: {judgement.reason}")
    elif judgement is not None and judgement.verdict is Verdict.INCONCLUSIVE:
        unsure.append(f"judge: {judgement.reason}")
    if Verdict.FAIL in verdicts:
        verdict, reason = Verdict.FAIL, "; ".join(failed)
    elif Verdict.INCONCLUSIVE in verdicts:
        verdict, reason = Verdict.INCONCLUSIVE, "; ".join(unsure)
    else:
        verdict = Verdict.PASS
        reason = "; ".join(
            [check.reason for check in slo_checks] + ([f"judge: {judgement.reason}"] if judgement else [])
        )
    windows = [canary] + ([baseline] if baseline is not None else [])
    return AnalysisResult(
        verdict=verdict,
        reason=reason,
        namespace=canary.namespace,
        canary=canary.revision,
        baseline=baseline.revision if baseline is not None else None,
        schema=canary.schema.value if canary.schema is not None else None,
        start=min((w.total.start for w in windows if w.intervals), default=0.0),
        end=max((w.total.end for w in windows if w.intervals), default=0.0),
        judgement=judgement,
        slo_checks=slo_checks,
        totals={w.revision: _totals(w.total) for w in windows},
    )


def _totals(total: Interval) -> dict[str, float | None]:
    p99 = total.latency_quantile(0.99)
    return {
        "requests": total.requests,
        "errors": total.errors,
        "error_rate": total.error_rate,
        "p99_latency": p99 if p99 is not None and math.isfinite(p99) else None,
    }
