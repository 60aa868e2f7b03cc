"""Canary analysis: read a canary's and a baseline's request metrics, judge them, return one verdict.

The call an operator or trigger makes (async, so a trigger awaits it without blocking)::

    from knative_rollout.analysis import SLO, PrometheusProvider, analyse

    result = await analyse(
        PrometheusProvider("http://prometheus:9090"),   # or ScrapeProvider([".../metrics", ...])
        namespace="models",
        canary="iris-classifier-00002",
        baseline="iris-classifier-00001",                # the baseline or the stable; None: SLO only
        window=300, step=30,                             # seconds; the window in intervals of step
        slo=SLO(max_p99_latency=0.5, max_error_rate=0.01),
        schema="auto",                                   # or "opencensus" / "opentelemetry"
        samples="requests",                              # or "intervals": one sample per step (Kayenta)
    )
    result.verdict      # knative_rollout.policy.Verdict: PASS / FAIL / INCONCLUSIVE
    result.to_dict()    # JSON-able report: per-metric classifications, score, SLO checks, totals

``result.verdict`` feeds :func:`knative_rollout.policy` decisions as a load-test verdict does:
INCONCLUSIVE (no data, too little data, a marginal score) means "measure again", never a pass.

Modules: :mod:`.judge` (pure: Kayenta-style Mann-Whitney judge, Fisher's test of pooled counts),
:mod:`.series` (pure: both Knative metric schemas, Prometheus text and JSON, per-revision windows),
:mod:`.checks` (pure: SLO checks, the built-in metrics, :class:`AnalysisResult`), :mod:`.providers`
(HTTP: Prometheus API, direct scrape).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from knative_rollout.analysis.checks import (
    DEFAULT_METRICS,
    DEFAULT_SAMPLES,
    SLO,
    AnalysisResult,
    Samples,
    SLOCheckResult,
    evaluate,
)
from knative_rollout.analysis.config import AnalysisConfig, parse_seconds
from knative_rollout.analysis.judge import (
    Classification,
    Direction,
    Judgement,
    JudgementClass,
    MetricSpec,
    ScoreThresholds,
    judge,
)
from knative_rollout.analysis.providers import (
    MetricsProvider,
    MetricsUnavailable,
    PrometheusProvider,
    ScrapeProvider,
    provider_for,
)
from knative_rollout.analysis.series import MetricsSchema, RevisionWindow

__all__ = [
    "DEFAULT_METRICS",
    "SLO",
    "AnalysisConfig",
    "AnalysisResult",
    "Classification",
    "Direction",
    "Judgement",
    "JudgementClass",
    "MetricSpec",
    "MetricsProvider",
    "MetricsSchema",
    "MetricsUnavailable",
    "PrometheusProvider",
    "RevisionWindow",
    "SLOCheckResult",
    "Samples",
    "ScoreThresholds",
    "ScrapeProvider",
    "analyse",
    "analyse_configured",
    "evaluate",
    "judge",
    "parse_seconds",
    "provider_for",
]


async def analyse(
    provider: MetricsProvider,
    *,
    namespace: str,
    canary: str,
    baseline: str | None = None,
    window: float,
    step: float,
    slo: SLO | None = None,
    metrics: Sequence[MetricSpec] = DEFAULT_METRICS,
    thresholds: ScoreThresholds | None = None,
    schema: MetricsSchema | str = "auto",
    end: float | None = None,
    samples: Samples | str = DEFAULT_SAMPLES,
) -> AnalysisResult:
    """Read one analysis window of the canary (and baseline) from ``provider`` and judge it.

    :param provider: where the metrics come from.
    :param namespace: the revisions' namespace.
    :param canary: the revision under test.
    :param baseline: the revision to compare with (a fresh baseline, or the stable); None: SLO only.
    :param window: seconds of metrics to judge (a scrape provider observes them now, so it takes that long).
    :param step: seconds per interval (with ``samples="intervals"`` the judge compares one sample per
        interval and revision).
    :param slo: absolute limits on the canary.
    :param metrics: the judge's metrics (default: p99 latency, critical error rate).
    :param thresholds: the judge's score thresholds.
    :param schema: ``auto``, ``opencensus`` or ``opentelemetry``.
    :param end: for a provider that reads stored metrics (:class:`PrometheusProvider`), when the window
        ends (epoch seconds; default now). A scrape provider always observes the window from now on.
    :param samples: ``requests`` (every request of the window) or ``intervals`` (one sample per step).
    :raises ValueError: for bad input (nothing to check, a bad window or schema, a refused query).
    :raises MetricsUnavailable: when the metrics source cannot be read (retry later).
    """
    if baseline is None and slo is None:
        raise ValueError("nothing to check: pass a baseline revision to compare with, an SLO, or both")
    try:
        samples = Samples(str(samples).strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in Samples)
        raise ValueError(f"samples={samples!r} is not known; pass one of {choices}") from None
    if baseline == canary:
        raise ValueError(f"canary and baseline are both {canary!r}; compare two different revisions")
    revisions = [canary] + ([baseline] if baseline is not None else [])
    extra: dict[str, float] = {}
    if end is not None:
        if not isinstance(provider, PrometheusProvider):
            raise ValueError("end= is for a provider of stored metrics (Prometheus); a scrape observes now")
        extra["end"] = end
    windows = await provider.windows(
        namespace=namespace, revisions=revisions, window=window, step=step, schema=schema, **extra
    )
    # In a thread: judging tens of thousands of requests a side takes a second or two, and a trigger's
    # event loop must not stop for that.
    return await asyncio.to_thread(
        evaluate,
        windows[canary],
        windows[baseline] if baseline is not None else None,
        slo=slo,
        metrics=metrics,
        thresholds=thresholds,
        samples=samples,
    )


async def analyse_configured(
    config: AnalysisConfig,
    *,
    namespace: str,
    canary: str,
    baseline: str | None,
    end: float | None = None,
    prometheus_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> AnalysisResult:
    """Run :func:`analyse` as an ``analysis`` mapping says (what the operators' trigger does).

    :param config: the checked mapping (:meth:`AnalysisConfig.of`).
    :param namespace: the revisions' namespace.
    :param canary: the revision under test.
    :param baseline: the revision to compare with; ignored when the config does not compare.
    :param end: when the window ends, for Prometheus (default now).
    :param prometheus_url: the Prometheus URL resolved from the config's connection.
    :param headers: credentials resolved from that connection.
    """
    return await analyse(
        provider_for(config, prometheus_url=prometheus_url, headers=headers),
        namespace=namespace,
        canary=canary,
        baseline=baseline if config.compare else None,
        window=config.window,
        step=config.interval,
        slo=config.slo,
        metrics=config.metrics,
        thresholds=config.thresholds,
        schema=config.schema,
        end=end if config.reads_prometheus else None,
        samples=config.samples,
    )
