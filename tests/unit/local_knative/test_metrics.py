"""Prometheus text of the queue-proxy metrics: names, labels, counters and millisecond histograms."""

from __future__ import annotations

from local_knative.metrics import RequestMetrics, RevisionLabels

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
