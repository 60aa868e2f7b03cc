"""Build the JSON report of a load test and draw its latency plot (PNG)."""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, replace
from typing import Any

from knative_rollout.loadtest.engine import LoadTestConfig, LoadTestResult
from knative_rollout.loadtest.slo import Finding, Slo, Verdict


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
            "warmup_s": config.warmup_s,
            "method": config.method,
            "payloads": len(config.bodies),
        },
        "timeline": [asdict(point) for point in result.timeline],
        "histograms": {"ok": result.ok.to_dict(), "failed": result.failed.to_dict()},
    }


def _count_errors(result: LoadTestResult) -> str:
    """Return the failures by kind, e.g. ``60 timed out after 1s, 3 http_503``."""
    parts = []
    for kind, count in sorted(result.errors.items(), key=lambda item: (-item[1], item[0])):
        parts.append(
            f"{count} timed out after {result.timeout_s:g}s" if kind == "timeout" else f"{count} {kind}"
        )
    return ", ".join(parts) or "no errors"


def findings(result: LoadTestResult) -> tuple[Finding | None, tuple[Finding, ...]]:
    """Return what makes ``result`` inconclusive (nothing answered) and what fails it beyond any SLO.

    No answer at all is no evidence about the revision, so the outcome is ``inconclusive``. Answers that
    are all failures are evidence: the gate fails whatever the SLO says, since an SLO on latency alone
    would otherwise pass a revision that answers nothing but fast 500s.
    """
    if result.requests == 0:
        message = "no request was sent: the schedule is empty (raise the rate or the duration)"
        return Finding("answered", 0, message), ()
    if result.completed == 0:
        message = f"no request of {result.requests} was answered ({_count_errors(result)})"
        return Finding("answered", 0, message), ()
    if result.succeeded == 0:
        message = f"no request of {result.requests} succeeded ({_count_errors(result)})"
        return None, (Finding("succeeded", 0, message),)
    return None, ()


def _notes(result: LoadTestResult) -> dict[str, str]:
    """Return what some latency values mean: from successful requests only, or a lower bound (timeouts)."""
    notes: dict[str, str] = {}
    everything, ok = result.latency_ms(), result.latency_ms_ok()
    for name, value in everything.items():
        successful = ok[name]
        if value is not None and successful is not None and successful > value:
            notes[name] = f"of successful requests; of all requests {value:g}ms, pulled down by fast errors"
    if result.timeouts:
        note = (
            f"at or above the {result.timeout_s:g}s timeout: {result.timeouts} of {result.requests}"
            " requests timed out, their true latency is longer"
        )
        notes.update({name: note for name in result.above_timeout(everything)})
    return notes


def judge(
    config: LoadTestConfig, result: LoadTestResult, slo: Slo, *, fail_on_inconclusive: bool = True
) -> tuple[Verdict, dict[str, Any]]:
    """Evaluate ``slo`` against ``result`` and return the verdict with the full report.

    :param fail_on_inconclusive: whether a measurement with no answered request fails the gate.
    """
    inconclusive, problems = findings(result)
    verdict = replace(
        slo.evaluate(result.metrics(), _notes(result)),
        inconclusive=inconclusive,
        problems=problems,
        fail_on_inconclusive=fail_on_inconclusive,
    )
    return verdict, build_report(config, result, slo, verdict)


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    """Return the small part of a report that belongs in an XCom (no timeline, no histogram)."""
    return {key: value for key, value in report.items() if key not in ("timeline", "histograms", "config")}


def report_json(report: dict[str, Any]) -> str:
    """Return ``report`` as indented JSON."""
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def render_plot(result: LoadTestResult, title: str) -> bytes:
    """Return a PNG: latency by percentile, all and successful requests (left), and over time (right).

    A dashed line marks the timeout: whatever lies on it timed out, and took at least that long.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), dpi=100)
    curve_axes, time_axes = figure.subplots(1, 2)
    everything = result.all_requests()
    widest = 1.0
    for label, histogram in (("all requests", everything), ("successful", result.ok)):
        curve = histogram.curve()
        if not curve:
            continue
        # Plot against 1/(1 - p) so the tail (99%, 99.9%) gets as much room as the median.
        # The 100% point would be at infinity: put it half a sample past the last finite one.
        floor = 0.5 / histogram.count
        xs = [1 / max(1 - percent / 100, floor) for percent, _ in curve]
        widest = max(widest, xs[-1])
        curve_axes.step(xs, [value / 1000 for _, value in curve], where="post", label=label)
    if everything.count:
        curve_axes.axhline(result.timeout_s * 1000, linestyle="--", color="grey", label="timeout")
        curve_axes.set_xscale("log")
        labelled = [(1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%")]
        shown = [(tick, label) for tick, label in labelled if tick <= widest]
        curve_axes.set_xticks([tick for tick, _ in shown], [label for _, label in shown])
        curve_axes.legend(loc="upper left")
    curve_axes.set_xlabel("percentile")
    curve_axes.set_ylabel("latency (ms)")
    curve_axes.set_title("latency by percentile")
    curve_axes.grid(True, which="both", alpha=0.3)

    points = result.timeline
    if points:
        times = [point.elapsed_s for point in points]

        def series(values: list[float | None]) -> list[float]:
            return [math.nan if value is None else value for value in values]  # a gap: no data

        time_axes.plot(times, series([point.p50_ms for point in points]), label="p50")
        time_axes.plot(times, series([point.p99_ms for point in points]), label="p99")
        time_axes.plot(times, series([point.max_ms for point in points]), label="max", alpha=0.6)
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
