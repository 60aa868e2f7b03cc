"""Build the JSON report of a load test and draw its latency plot (PNG)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from typing import Any

from knative_rollout.loadtest.engine import LoadTestConfig, LoadTestResult
from knative_rollout.loadtest.slo import Slo, Verdict


def build_report(
    config: LoadTestConfig, result: LoadTestResult, slo: Slo, verdict: Verdict
) -> dict[str, Any]:
    """Return the full report: headline numbers, ``verdict``, the test's settings, timeline and histogram."""
    return {
        **result.summary(),
        "verdict": verdict.to_dict(),
        "slo": str(slo),
        "config": {
            "url": config.url,
            "host": config.host,
            "connect_to": config.connect_to,
            "model": config.model,
            "rate": config.rate,
            "stages": [asdict(stage) for stage in config.stages],
            "duration_s": config.schedule_duration_s,
            "concurrency": config.concurrency,
            "timeout_s": config.timeout_s,
            "method": config.method,
            "payloads": len(config.bodies),
        },
        "timeline": [asdict(point) for point in result.timeline],
        "histogram": result.histogram.to_dict(),
    }


def judge(config: LoadTestConfig, result: LoadTestResult, slo: Slo) -> tuple[Verdict, dict[str, Any]]:
    """Evaluate ``slo`` against ``result`` and return the verdict with the full report."""
    verdict = slo.evaluate(result.metrics())
    return verdict, build_report(config, result, slo, verdict)


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    """Return the small part of a report that belongs in an XCom (no timeline, no histogram)."""
    return {key: value for key, value in report.items() if key not in ("timeline", "histogram", "config")}


def report_json(report: dict[str, Any]) -> str:
    """Return ``report`` as indented JSON."""
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def render_plot(result: LoadTestResult, title: str) -> bytes:
    """Return a PNG: the latency percentile curve (left) and latency over time per interval (right)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), dpi=100)
    curve_axes, time_axes = figure.subplots(1, 2)
    curve = result.histogram.curve()
    if curve:
        # Plot against 1/(1 - p) so the tail (99%, 99.9%) gets as much room as the median.
        # The 100% point would be at infinity: put it half a sample past the last finite one.
        floor = 0.5 / result.histogram.count
        xs = [1 / max(1 - percent / 100, floor) for percent, _ in curve]
        curve_axes.step(xs, [value / 1000 for _, value in curve], where="post")
        curve_axes.set_xscale("log")
        labelled = [(1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%")]
        shown = [(tick, label) for tick, label in labelled if tick <= xs[-1]]
        curve_axes.set_xticks([tick for tick, _ in shown], [label for _, label in shown])
    curve_axes.set_xlabel("percentile")
    curve_axes.set_ylabel("latency (ms)")
    curve_axes.set_title("latency by percentile")
    curve_axes.grid(True, which="both", alpha=0.3)

    points = result.timeline
    if points:
        times = [point.elapsed_s for point in points]
        time_axes.plot(times, [point.p50_ms for point in points], label="p50")
        time_axes.plot(times, [point.p99_ms for point in points], label="p99")
        time_axes.plot(times, [point.max_ms for point in points], label="max", alpha=0.6)
        time_axes.legend(loc="upper left")
    time_axes.set_xlabel("time (s)")
    time_axes.set_ylabel("latency (ms)")
    time_axes.set_title("latency over time (per interval)")
    time_axes.grid(True, alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
