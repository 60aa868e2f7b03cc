"""AnalysisConfig reads the ``analysis`` mapping strictly: durations, SLOs, sources and on_no_data."""

from __future__ import annotations

from typing import Any

import pytest

from knative_rollout.analysis import AnalysisConfig, Samples, parse_seconds
from knative_rollout.policy import Verdict

PROM = {"prometheus_url": "http://prometheus:9090"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), ("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), (" 1.5 ", 1.5), ("0", 0.0)],
)
def test_parse_seconds(text: object, seconds: float) -> None:
    assert parse_seconds(text, "window") == seconds


@pytest.mark.parametrize("text", ["", "abc", "-1s", True, None, "1d", float("inf")])
def test_parse_seconds_refuses(text: object) -> None:
    with pytest.raises(ValueError, match="window="):
        parse_seconds(text, "window")


def test_defaults() -> None:
    config = AnalysisConfig.of(PROM)
    assert (config.window, config.interval, config.settle, config.compare) == (60.0, 10.0, 15.0, True)
    assert config.reads_prometheus and config.slo is None and config.on_no_data is Verdict.INCONCLUSIVE
    assert config.samples is Samples.REQUESTS
    assert AnalysisConfig.of({**PROM, "samples": " Intervals "}).samples is Samples.INTERVALS


def test_slo_and_on_no_data() -> None:
    config = AnalysisConfig.of(
        {**PROM, "slo": {"max_p99_latency": "300ms", "max_error_rate": "0.01"}, "on_no_data": "fail"}
    )
    assert config.slo is not None
    assert (config.slo.max_p99_latency, config.slo.max_error_rate) == (0.3, 0.01)
    assert config.slo.on_no_data is Verdict.FAIL
    assert all(spec.must_have_data for spec in config.metrics), "no data fails the judge's metrics too"


def test_scrape_and_custom_metrics() -> None:
    config = AnalysisConfig.of(
        {
            "scrape_urls": ["http://a/metrics"],
            "metrics": [{"name": "latency_p95", "direction": "INCREASE", "critical": True}],
            "compare": "true",
        }
    )
    assert not config.reads_prometheus and config.scrape_urls == ("http://a/metrics",)
    assert [(s.name, s.direction.value, s.critical) for s in config.metrics] == [
        ("latency_p95", "increase", True)
    ]
    assert config.without_baseline().compare is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "nowhere to read metrics from"),
        ({**PROM, "windw": 5}, "unknown keys \\['windw'\\]"),
        ({**PROM, "scrape_urls": ["http://a"]}, "not both"),
        ({"scrape_urls": "http://a"}, "list of /metrics URLs"),
        ({**PROM, "window": "5s", "interval": "10s"}, "longer than window"),
        ({**PROM, "compare": False}, "checks nothing"),
        ({**PROM, "compare": "maybe"}, "true or false"),
        ({**PROM, "slo": {"p99": 1}}, "slo has unknown keys"),
        ({**PROM, "slo": {}}, "slo is empty"),
        ({**PROM, "slo": {"max_error_rate": 2}}, "max_error_rate=2"),
        ({**PROM, "on_no_data": "maybe"}, "on_no_data='maybe'"),
        ({**PROM, "metrics": [{"name": "cpu"}]}, "unknown metric 'cpu'"),
        ({**PROM, "metrics": [{"name": "error_rate", "direction": "up"}]}, "direction must be one of"),
        ({**PROM, "schema": "prom"}, "schema='prom' is not known"),
        ({**PROM, "samples": "pods"}, "samples='pods' is not known"),
        ({**PROM, "metrics": [{"name": "error_rate", "allowed_difference": -1}]}, "allowed_difference=-1"),
        ("prometheus", "must be a mapping"),
        ({**PROM, "load": {"rate": 0}}, "load rate=0"),
        ({**PROM, "load": {"rate": 5, "duration": "1m"}}, "load has unknown keys"),
        ({**PROM, "load": {"rate": 5, "path": "v1"}}, "must start with /"),
        ({**PROM, "load": {"rate": 5, "bodies": "{}"}}, "list of request bodies"),
    ],
)
def test_refused(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnalysisConfig.of(raw)


def test_synthetic_load() -> None:
    config = AnalysisConfig.of(
        {**PROM, "load": {"rate": "20", "path": "/v1/models/m:predict", "bodies": ["{}"]}}
    )
    assert config.load is not None
    assert (config.load.rate, config.load.path, config.load.bodies, config.load.timeout) == (
        20.0,
        "/v1/models/m:predict",
        ("{}",),
        10.0,
    )
