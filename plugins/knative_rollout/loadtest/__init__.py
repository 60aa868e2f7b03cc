"""Open-model HTTP load generator with honest (coordinated-omission-free) percentiles and SLO verdicts.

Honest also about failures: timeouts enter the latency distribution at no less than the timeout, errors at
the time they failed, and a measurement with no answer at all is ``inconclusive``, not a pass.

Pure asyncio: imports neither Airflow nor Kubernetes, so the same engine runs from an Airflow worker
(:class:`knative_rollout.operators.LoadTestGateOperator`), from the command line
(``python -m knative_rollout.loadtest``), or in a pod inside the cluster.
"""

from __future__ import annotations

from knative_rollout.loadtest.engine import (
    DEFAULT_WARMUP_S,
    IntervalStats,
    LoadTestConfig,
    LoadTestConfigError,
    LoadTestResult,
    Warmup,
    run_load_test,
)
from knative_rollout.loadtest.latency import LatencyHistogram
from knative_rollout.loadtest.report import (
    build_report,
    findings,
    judge,
    render_plot,
    report_json,
    summary_of,
)
from knative_rollout.loadtest.schedule import Schedule, Stage, parse_duration
from knative_rollout.loadtest.slo import Finding, Slo, SloSyntaxError, Threshold, Verdict

__all__ = [
    "DEFAULT_WARMUP_S",
    "Finding",
    "IntervalStats",
    "LatencyHistogram",
    "LoadTestConfig",
    "LoadTestConfigError",
    "LoadTestResult",
    "Schedule",
    "Slo",
    "SloSyntaxError",
    "Stage",
    "Threshold",
    "Verdict",
    "Warmup",
    "build_report",
    "findings",
    "judge",
    "parse_duration",
    "render_plot",
    "report_json",
    "run_load_test",
    "summary_of",
]
