"""Table tests of the Rollouts page's inline SVG charts: bar lengths, limits, no data, escaping, reports."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from knative_rollout.resources.charts import (
    BAR_WIDTH,
    LABEL_WIDTH,
    Bar,
    Limit,
    analysis_charts,
    bar_chart,
    latency_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def rects(svg: str) -> list[tuple[str, float]]:
    """Return (class, width) of each bar, parsing the SVG as XML (so it must be well formed)."""
    root = ET.fromstring(svg)
    return [(rect.get("class", ""), float(rect.get("width", "0"))) for rect in root.iter(f"{SVG}rect")]


def limit_lines(svg: str) -> list[float]:
    return [float(line.get("x1", "0")) for line in ET.fromstring(svg).iter(f"{SVG}line")]


@pytest.mark.parametrize(
    ("bars", "limits", "widths", "lines"),
    [
        # The longest bar or limit takes BAR_WIDTH / 1.05 of the width, the rest in proportion.
        ([Bar("a", 10), Bar("b", 20)], [], [BAR_WIDTH / 2.1, BAR_WIDTH / 1.05], []),
        ([Bar("a", 10)], [Limit("a<=20", 20)], [BAR_WIDTH / 2.1], [LABEL_WIDTH + BAR_WIDTH / 1.05]),
        # Zero still shows a sliver, so "measured 0" differs from "no data".
        ([Bar("a", 0)], [], [1.0], []),
        ([Bar("a", None), Bar("b", 5)], [], [BAR_WIDTH / 1.05], []),
    ],
)
def test_bar_lengths_are_proportional_and_limits_are_lines(
    bars: list[Bar], limits: list[Limit], widths: list[float], lines: list[float]
) -> None:
    svg = bar_chart("t", bars, unit="ms", limits=limits)
    assert [width for _, width in rects(svg)] == pytest.approx(widths, abs=0.06)
    assert limit_lines(svg) == pytest.approx(lines, abs=0.06)


def test_a_row_without_a_value_says_no_data() -> None:
    svg = bar_chart("t", [Bar("p99", None)])
    assert rects(svg) == [] and ">no data<" in svg


def test_labels_and_titles_are_escaped() -> None:
    svg = bar_chart("<script>", [Bar('a"<b>', 1.0)], limits=[Limit("x<=1&y", 2.0)])
    ET.fromstring(svg)  # well-formed XML: nothing unescaped
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "x&lt;=1&amp;y" in svg


@pytest.mark.parametrize(("unit", "shown"), [("ms", "12.35 ms"), ("%", "1.23%"), ("", "12.35")])
def test_values_are_shown_in_their_unit(unit: str, shown: str) -> None:
    value = 0.01234 if unit == "%" else 12.345
    assert f">{shown}<" in bar_chart("t", [Bar("a", value)], unit=unit)


SUMMARY = {
    "error_rate": 0.025,
    "latency_ms": {"p50": 250.0, "p90": 260.0, "p95": 270.0, "p99": 300.0, "p999": 310.0, "max": 320.0},
    "verdict": {
        "checks": [
            {"metric": "p50", "unit": "ms", "limit": 100.0, "threshold": "p50<=100ms", "passed": False},
            {"metric": "p99", "unit": "ms", "limit": 400.0, "threshold": "p99<=400ms", "passed": True},
            {
                "metric": "error_rate",
                "unit": "",
                "limit": 0.01,
                "threshold": "error_rate<=0.01",
                "passed": False,
            },
        ]
    },
}


def test_latency_chart_marks_the_percentiles_past_their_limit() -> None:
    svg = latency_chart(SUMMARY["latency_ms"], SUMMARY["verdict"]["checks"], SUMMARY["error_rate"])
    assert [kind for kind, _ in rects(svg)] == ["over", "bar", "bar", "bar", "bar", "bar"]
    assert re.findall(r"<text[^>]*>(p\d+&lt;=\d+ms)</text>", svg) == ["p50&lt;=100ms", "p99&lt;=400ms"]
    assert "error rate 2.50%" in svg
    # Without a measurement (no request answered) every row says so.
    empty = latency_chart(dict.fromkeys(SUMMARY["latency_ms"]))
    assert rects(empty) == [] and empty.count(">no data<") == 6


def test_analysis_charts_show_candidate_and_baseline_per_step_with_the_slo() -> None:
    totals = {"c": {"p99_latency": 0.3, "error_rate": 0.0}, "b": {"p99_latency": 0.1, "error_rate": None}}
    steps = [
        {"label": "10%", "canary": "c", "baseline": "b", "totals": totals},
        {"label": "50%", "canary": "c", "baseline": "b", "totals": {}},  # no totals: left out
    ]
    latency, errors = analysis_charts(steps, [{"check": "p99_latency", "threshold": 0.2}])
    assert [kind for kind, _ in rects(latency)] == ["bar", "baseline"]
    assert ">10% candidate<" in latency and ">300 ms<" in latency and ">SLO 200 ms<" in latency
    assert [kind for kind, _ in rects(errors)] == ["bar"] and ">no data<" in errors
    assert analysis_charts([{"label": "10%", "canary": "c", "totals": {}}]) == []
    # A step without a label (the canary's single newest window) is just candidate and baseline.
    [unlabelled, _] = analysis_charts([{"label": "", "canary": "c", "baseline": "b", "totals": totals}])
    assert ">candidate<" in unlabelled and ">baseline<" in unlabelled
