"""Small inline SVG bar charts of a report's numbers, for the Rollouts page.

Drawn from the numbers the XComs hold, not from the PNG a load test writes next to its report: that
file lives in the worker's storage (a local path, a bucket), which the API server may not reach. Pure
string building with every text escaped, so the page needs no plotting library and no script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

LABEL_WIDTH = 140
BAR_WIDTH = 240
VALUE_WIDTH = 90
ROW_HEIGHT = 18
TOP = 22
COLOURS = {"bar": "#3e7bfa", "baseline": "#9aa5b1", "over": "#d64545", "limit": "#b00020"}
LATENCY_ROWS = ("p50", "p90", "p95", "p99", "p999", "max")


@dataclass(frozen=True)
class Bar:
    """One row: a label, a value (``None``: not measured) and its kind (``bar``, ``baseline``, ``over``)."""

    label: str
    value: float | None
    kind: str = "bar"


@dataclass(frozen=True)
class Limit:
    """A threshold drawn as a dashed line across the bars, e.g. ``p99<=100ms``."""

    label: str
    value: float


def _number(value: float, unit: str) -> str:
    return f"{value:.2%}" if unit == "%" else f"{value:.4g} {unit}".rstrip()


def bar_chart(title: str, bars: Sequence[Bar], *, unit: str = "", limits: Sequence[Limit] = ()) -> str:
    """Return an SVG of horizontal bars, one per row, with dashed lines at the limits.

    :param unit: shown after each value; ``%`` shows fractions as percentages.
    """
    top = max([bar.value or 0.0 for bar in bars] + [limit.value for limit in limits] + [0.0])
    scale = BAR_WIDTH / (top * 1.05) if top > 0 else 0.0
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    height = TOP + ROW_HEIGHT * len(bars) + (14 if limits else 4)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="13" font-weight="bold">{escape(title)}</text>',
    ]
    for index, bar in enumerate(bars):
        y = TOP + index * ROW_HEIGHT
        parts.append(f'<text x="0" y="{y + 12}">{escape(bar.label)}</text>')
        if bar.value is None:
            parts.append(f'<text x="{LABEL_WIDTH}" y="{y + 12}" fill="#52606d">no data</text>')
            continue
        length = max(bar.value * scale, 1.0)
        shown = escape(_number(bar.value, unit))
        parts.append(
            f'<rect class="{escape(bar.kind)}" x="{LABEL_WIDTH}" y="{y + 2}" width="{length:.1f}" '
            f'height="{ROW_HEIGHT - 5}" fill="{COLOURS.get(bar.kind, COLOURS["bar"])}">'
            f"<title>{escape(bar.label)}: {shown}</title></rect>"
        )
        parts.append(f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + 12}">{shown}</text>')
    bottom = TOP + ROW_HEIGHT * len(bars)
    for limit in limits:
        x = LABEL_WIDTH + limit.value * scale
        parts.append(
            f'<line class="limit" x1="{x:.1f}" y1="{TOP - 2}" x2="{x:.1f}" y2="{bottom}" '
            f'stroke="{COLOURS["limit"]}" stroke-dasharray="4 3"><title>{escape(limit.label)}</title></line>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 11}" fill="{COLOURS["limit"]}" font-size="10" '
            f'text-anchor="middle">{escape(limit.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def latency_chart(
    latency_ms: Mapping[str, Any], checks: Sequence[Mapping[str, Any]] = (), error_rate: object = None
) -> str:
    """Return a load test's latency by percentile (all requests), the bars past an SLO limit in red.

    :param latency_ms: the gate's ``latency_ms`` (``p50`` ... ``max``).
    :param checks: its verdict's ``checks``; the latency thresholds are drawn as limits.
    :param error_rate: shown in the title.
    """
    limited = [check for check in checks if check.get("metric") in LATENCY_ROWS and check.get("unit") == "ms"]
    failed = {check["metric"] for check in limited if not check.get("passed")}
    bars = [
        Bar(name, _float(latency_ms.get(name)), "over" if name in failed else "bar")
        for name in LATENCY_ROWS
        if name in latency_ms
    ]
    limits = [Limit(str(check.get("threshold")), float(check["limit"])) for check in limited]
    rate = _float(error_rate)
    errors = f", error rate {rate:.2%}" if rate is not None else ""
    return bar_chart(f"latency by percentile (ms){errors}", bars, unit="ms", limits=limits)


def analysis_charts(steps: Sequence[Mapping[str, Any]], slo: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Return the analysis' p99 latency and error rate per step, candidate beside baseline.

    :param steps: ``{"label", "canary", "baseline", "totals": {revision: {"p99_latency", "error_rate"}}}``
        per analysed step; a step without totals is left out.
    :param slo: the report's SLO checks (``check``, ``threshold``), drawn as limits.
    """
    rows = [step for step in steps if step.get("totals")]
    if not rows:
        return []
    charts = []
    for metric, title, unit, factor in (
        ("p99_latency", "p99 latency per step (ms)", "ms", 1000.0),
        ("error_rate", "error rate per step", "%", 1.0),
    ):
        bars = []
        for step in rows:
            for side, kind in (("canary", "bar"), ("baseline", "baseline")):
                revision = step.get(side)
                if not revision:
                    continue
                value = _float((step["totals"].get(revision) or {}).get(metric))
                label = f"{step.get('label') or ''} {'candidate' if side == 'canary' else 'baseline'}".strip()
                bars.append(Bar(label, None if value is None else value * factor, kind))
        thresholds = [_float(check.get("threshold")) for check in slo if check.get("check") == metric]
        limits = [
            Limit(f"SLO {_number(value * factor, unit)}", value * factor)
            for value in thresholds
            if value is not None
        ]
        charts.append(bar_chart(title, bars, unit=unit, limits=limits))
    return charts


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
