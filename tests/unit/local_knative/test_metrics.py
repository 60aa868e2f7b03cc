"""Prometheus text of the queue-proxy metrics: names, labels, counters and millisecond histograms."""

from __future__ import annotations

import pytest

from local_knative.metrics import RequestMetrics, RevisionLabels, schema_from_env

REV = RevisionLabels("ns", "svc", "svc", "svc-00001")
LABELS = (
    'namespace_name="ns",service_name="svc",configuration_name="svc",revision_name="svc-00001",'
    'response_code="200",response_code_class="2xx"'
)


def _samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_counts_and_histogram_buckets():
    metrics = RequestMetrics()
    for latency in (3.0, 7.0, 7.5, 1200.0):
        metrics.record(REV, 200, latency + 1, latency)
    metrics.record(REV, 503, 2.0, None)
    samples = _samples(metrics.render())
    assert samples[f"revision_app_request_count{{{LABELS}}}"] == 4
    assert samples[f'revision_app_request_latencies_bucket{{{LABELS},le="5"}}'] == 1
    assert samples[f'revision_app_request_latencies_bucket{{{LABELS},le="10"}}'] == 3
    assert samples[f'revision_app_request_latencies_bucket{{{LABELS},le="1000"}}'] == 3
    assert samples[f'revision_app_request_latencies_bucket{{{LABELS},le="+Inf"}}'] == 4
    assert samples[f"revision_app_request_latencies_sum{{{LABELS}}}"] == 1217.5
    assert samples[f"revision_app_request_latencies_count{{{LABELS}}}"] == 4
    unavailable = LABELS.replace('"200"', '"503"').replace('"2xx"', '"5xx"')
    assert samples[f"revision_request_count{{{unavailable}}}"] == 1
    assert f"revision_app_request_count{{{unavailable}}}" not in samples, "no app answered the 503"


def test_type_lines_and_pod_gauges():
    text = RequestMetrics().render([(REV, 3, 2)])
    assert "# TYPE revision_app_request_count counter" in text
    assert "# TYPE revision_app_request_latencies histogram" in text
    samples = _samples(text)
    gauge_labels = 'namespace_name="ns",configuration_name="svc",revision_name="svc-00001"'
    assert samples[f"autoscaler_desired_pods{{{gauge_labels}}}"] == 3
    assert samples[f"autoscaler_actual_pods{{{gauge_labels}}}"] == 2


def test_label_values_are_escaped():
    metrics = RequestMetrics()
    metrics.record(RevisionLabels('n"s', "s\\v", "c", "r\n"), 200, 1.0, 1.0)
    assert 'namespace_name="n\\"s",service_name="s\\\\v"' in metrics.render()
    assert 'revision_name="r\\n"' in metrics.render()


def test_opentelemetry_schema_is_one_histogram_in_seconds():
    metrics = RequestMetrics(schema="opentelemetry")
    for latency_ms in (3.0, 7.0, 30.0, 20000.0):
        metrics.record(REV, 200, latency_ms, latency_ms - 1)
    metrics.record(REV, 503, 2.0, None)
    text = metrics.render([(REV, 1, 1)])
    assert "# TYPE http_server_request_duration_seconds histogram" in text
    assert "revision_request" not in text and "revision_app_request" not in text
    samples = _samples(text)
    ok = (
        'http_response_status_code="200",k8s_namespace_name="ns",kn_configuration_name="svc",'
        'kn_revision_name="svc-00001",kn_service_name="svc",network_protocol_name="http",url_scheme="http"'
    )
    name = "http_server_request_duration_seconds"
    assert samples[f'{name}_bucket{{{ok},le="0.005"}}'] == 1
    assert samples[f'{name}_bucket{{{ok},le="0.01"}}'] == 2
    assert samples[f'{name}_bucket{{{ok},le="0.05"}}'] == 3
    assert samples[f'{name}_bucket{{{ok},le="10"}}'] == 3, "20 s is past the last finite bucket"
    assert samples[f'{name}_bucket{{{ok},le="+Inf"}}'] == 4
    assert samples[f"{name}_sum{{{ok}}}"] == pytest.approx(20.04)
    unavailable = ok.replace('"200"', '"503"')
    assert samples[f"{name}_count{{{unavailable}}}"] == 1
    assert (
        samples[
            'autoscaler_actual_pods{namespace_name="ns",configuration_name="svc",revision_name="svc-00001"}'
        ]
        == 1
    )


@pytest.mark.parametrize(
    ("env", "schema"),
    [
        ({}, "opencensus"),
        ({"LOCAL_KNATIVE_METRICS_SCHEMA": ""}, "opencensus"),
        ({"LOCAL_KNATIVE_METRICS_SCHEMA": "OpenTelemetry"}, "opentelemetry"),
        ({"LOCAL_KNATIVE_METRICS_SCHEMA": "opencensus"}, "opencensus"),
    ],
)
def test_schema_comes_from_the_environment(env, schema):
    assert schema_from_env(env) == schema


def test_unknown_schema_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("LOCAL_KNATIVE_METRICS_SCHEMA", "prometheus")
    with pytest.raises(
        ValueError, match=r"LOCAL_KNATIVE_METRICS_SCHEMA='prometheus'.*opencensus, opentelemetry"
    ):
        RequestMetrics()
