"""Input checks of the metric providers and of ``analyse`` that need no metrics source."""

from __future__ import annotations

import asyncio

import pytest

from knative_rollout.analysis import SLO, MetricsSchema, PrometheusProvider, ScrapeProvider, analyse
from knative_rollout.analysis.providers import parse_schema


@pytest.mark.parametrize(
    ("text", "schema"),
    [
        ("auto", None),
        (" AUTO ", None),
        ("opencensus", MetricsSchema.OPENCENSUS),
        ("OpenTelemetry", MetricsSchema.OPENTELEMETRY),
        (MetricsSchema.OPENCENSUS, MetricsSchema.OPENCENSUS),
    ],
)
def test_parse_schema(text, schema):
    assert parse_schema(text) is schema


def test_unknown_schema_names_the_choices():
    with pytest.raises(ValueError, match="auto, opencensus, opentelemetry"):
        parse_schema("statsd")


@pytest.mark.parametrize(("window", "step"), [(10, 0), (1, 2), (10, -1)])
def test_bad_windows_are_refused_before_any_request(window, step):
    # The URL is never contacted: the window is checked first.
    provider = PrometheusProvider("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="window="):
        asyncio.run(provider.windows(namespace="ns", revisions=["r"], window=window, step=step))


def test_too_many_points_are_refused():
    with pytest.raises(ValueError, match="11000 points"):
        asyncio.run(
            PrometheusProvider("http://127.0.0.1:9").windows(
                namespace="ns", revisions=["r"], window=86400, step=1
            )
        )


def test_auth_headers():
    assert PrometheusProvider("http://p", token="t")._http.headers == {"Authorization": "Bearer t"}
    assert PrometheusProvider("http://p/", username="u", password="p")._http.headers == {
        "Authorization": "Basic dTpw"
    }
    assert PrometheusProvider("http://p/").url == "http://p"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": None}, "nothing to check"),
        ({"baseline": "a", "slo": SLO()}, "both 'a'"),
        ({"baseline": "b", "samples": "pods"}, "samples='pods' is not known"),
    ],
)
def test_analyse_refuses_what_it_cannot_judge(kwargs, message):
    with pytest.raises(ValueError, match=message):
        asyncio.run(
            analyse(
                ScrapeProvider(["http://127.0.0.1:9/metrics"]),
                namespace="ns",
                canary="a",
                window=2,
                step=1,
                **kwargs,
            )
        )


def test_scrape_provider_needs_an_endpoint():
    with pytest.raises(ValueError, match="at least one"):
        ScrapeProvider([])
