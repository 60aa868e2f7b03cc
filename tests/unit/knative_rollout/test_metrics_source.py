"""metrics_source: the analysis keys of the metrics URL a DAG takes as a Param (or the ingress' /metrics)."""

from __future__ import annotations

import json

import pytest

from knative_rollout.operators.analysis import metrics_source


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"ingress_address": "http://127.0.0.1:8081/"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes", "extra": extra})
    )


@pytest.mark.usefixtures("connection")
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://prometheus:9090", {"prometheus_url": "http://prometheus:9090"}),
        ("http://pod:9091/metrics", {"scrape_urls": ["http://pod:9091/metrics"]}),
        ("http://pod:9091/metrics/", {"scrape_urls": ["http://pod:9091/metrics/"]}),
        # No URL: the Knative ingress' /metrics, where local_knative serves its revisions' metrics.
        ("", {"scrape_urls": ["http://127.0.0.1:8081/metrics"]}),
        (None, {"scrape_urls": ["http://127.0.0.1:8081/metrics"]}),
    ],
)
def test_a_url_is_scraped_or_queried_and_none_falls_back_to_the_ingress(
    url: str | None, expected: dict[str, object]
) -> None:
    assert metrics_source(url) == expected


def test_without_a_url_or_an_ingress_there_is_no_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes"}))
    assert metrics_source("") is None
