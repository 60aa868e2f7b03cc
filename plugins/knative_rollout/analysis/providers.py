"""Metric providers: where the analysis reads Knative's request metrics (the I/O half of the analysis).

Both implement :class:`MetricsProvider`: ``await provider.windows(namespace=..., revisions=[...],
window=..., step=..., schema="auto")`` returns a :class:`RevisionWindow` per revision, one interval per
``step`` seconds. Parsing and arithmetic are pure, in :mod:`knative_rollout.analysis.series`; this module
only sends HTTP requests (aiohttp, so a trigger can await it without blocking its event loop).

* :class:`PrometheusProvider` reads the **last** ``window`` seconds from the Prometheus HTTP API:
  ``/api/v1/query`` to detect the schema the cluster has (``schema="auto"``), ``/api/v1/query_range``
  for the raw latency buckets of the revisions at every step (Google Managed Service for Prometheus
  serves the same API). Authentication: a bearer token or basic auth, or any headers.
* :class:`ScrapeProvider` reads ``/metrics`` itself, for clusters without Prometheus: once now and once
  every ``step`` until ``window`` seconds have passed, so the call **takes** the window. Give it every
  endpoint that counts the revisions' requests (each pod's queue-proxy on Knative, ``:9091/metrics``;
  the ingress's ``/metrics`` on local_knative); the series of each endpoint are kept apart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from knative_rollout.analysis.series import (
    MetricsSchema,
    RevisionWindow,
    Sample,
    Scrape,
    detect_schema,
    detect_schema_from_counts,
    parse_exposition,
    parse_query,
    parse_query_range,
    revision_windows,
    schema_query,
    window_query,
)

if TYPE_CHECKING:
    from knative_rollout.analysis.config import AnalysisConfig

AUTO = "auto"
MAX_POINTS = 11_000  # Prometheus refuses a range query of more points per series


class MetricsUnavailable(RuntimeError):
    """The metrics source could not be read (down, refused, bad answer); worth retrying later."""


class MetricsProvider(Protocol):
    """Where per-revision request metrics come from."""

    async def windows(
        self,
        *,
        namespace: str,
        revisions: Sequence[str],
        window: float,
        step: float,
        schema: MetricsSchema | str = AUTO,
    ) -> dict[str, RevisionWindow]:
        """Return each revision's intervals over ``window`` seconds, one per ``step`` seconds."""
        ...


def parse_schema(schema: MetricsSchema | str) -> MetricsSchema | None:
    """Return the schema named (None for ``auto``).

    :raises ValueError: for an unknown name, with the choices.
    """
    if isinstance(schema, MetricsSchema):
        return schema
    text = str(schema).strip().lower()
    if text == AUTO:
        return None
    try:
        return MetricsSchema(text)
    except ValueError:
        choices = ", ".join([AUTO, *(s.value for s in MetricsSchema)])
        raise ValueError(f"metrics_schema={schema!r} is not known; pass one of {choices}") from None


def _check_window(window: float, step: float) -> None:
    if not (step > 0 and window >= step):
        raise ValueError(
            f"window={window}, step={step}; pass a step above 0 and a window of at least one step"
        )


class _Http:
    def __init__(self, headers: Mapping[str, str] | None, timeout: float) -> None:
        self.headers = dict(headers or {})
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def get(
        self, session: aiohttp.ClientSession, url: str, params: Mapping[str, str] | None = None
    ) -> str:
        try:
            async with session.get(url, params=params, headers=self.headers) as response:
                text = await response.text()
                if response.status >= 500 or response.status in (401, 403, 404, 429):
                    raise MetricsUnavailable(f"GET {url} answered HTTP {response.status}: {text[:300]}")
                return text
        except (aiohttp.ClientError, TimeoutError) as error:
            raise MetricsUnavailable(f"GET {url} failed: {error!r}; is it running and reachable?") from error


class PrometheusProvider:
    """Read revision metrics from a Prometheus HTTP API.

    :param url: the API's base URL, e.g. ``http://prometheus:9090`` (``/api/v1/...`` is appended).
    :param token: a bearer token (e.g. for Google Managed Service for Prometheus).
    :param username: basic auth user (with ``password``).
    :param password: basic auth password.
    :param headers: more request headers.
    :param timeout: seconds per request.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        elif username:
            credentials = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            all_headers["Authorization"] = f"Basic {credentials}"
        self._http = _Http(all_headers, timeout)

    async def query(self, promql: str, *, at: float | None = None) -> list[Sample]:
        """Run an instant query and return its vector."""
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        return parse_query(await self._json("/api/v1/query", params))

    async def query_range(self, promql: str, *, start: float, end: float, step: float) -> list[Scrape]:
        """Run a range query of raw series and return one snapshot per step."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return parse_query_range(await self._json("/api/v1/query_range", params))

    async def detect_schema(self) -> MetricsSchema | None:
        """Return the schema whose latency histogram the cluster's Prometheus has, or None."""
        return detect_schema_from_counts(await self.query(schema_query()))

    async def windows(
        self,
        *,
        namespace: str,
        revisions: Sequence[str],
        window: float,
        step: float,
        schema: MetricsSchema | str = AUTO,
        end: float | None = None,
    ) -> dict[str, RevisionWindow]:
        """Return each revision's intervals over the ``window`` seconds before ``end`` (default now)."""
        _check_window(window, step)
        if window / step > MAX_POINTS:
            raise ValueError(
                f"window={window}, step={step} asks for over {MAX_POINTS} points; pass a longer step"
            )
        chosen = parse_schema(schema) or await self.detect_schema()
        if chosen is None:
            return revision_windows([], namespace=namespace, revisions=revisions, schema=None)
        end = time.time() if end is None else end
        scrapes = await self.query_range(
            window_query(chosen, namespace, revisions), start=end - window, end=end, step=step
        )
        # A step before the first sample has no snapshot; start the first interval at the window's start.
        if not scrapes or scrapes[0].time > end - window:
            scrapes.insert(0, Scrape(end - window, ()))
        return revision_windows(scrapes, namespace=namespace, revisions=revisions, schema=chosen)

    async def _json(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        # A refused query (400/422) still answers JSON with status "error"; the parsers raise
        # MetricsParseError on it, a permanent error, unlike MetricsUnavailable.
        async with aiohttp.ClientSession(timeout=self._http.timeout) as session:
            text = await self._http.get(session, self.url + path, params)
        try:
            body: dict[str, Any] = json.loads(text)
        except ValueError as error:
            raise MetricsUnavailable(f"{self.url}{path} did not answer JSON: {text[:300]!r}") from error
        return body


class ScrapeProvider:
    """Read revision metrics by scraping Prometheus text endpoints directly.

    :param urls: the ``/metrics`` URLs that count the revisions' requests.
    :param headers: request headers.
    :param timeout: seconds per scrape.
    """

    def __init__(
        self, urls: Sequence[str], *, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ):
        if not urls:
            raise ValueError("ScrapeProvider needs at least one /metrics URL")
        self.urls = list(urls)
        self._http = _Http(headers, timeout)

    async def scrape(self, session: aiohttp.ClientSession | None = None) -> Scrape:
        """Read every endpoint once; each sample gets an ``instance`` label naming its URL."""
        if session is None:
            async with aiohttp.ClientSession(timeout=self._http.timeout) as own:
                return await self.scrape(own)
        moment = time.time()
        texts = await asyncio.gather(*(self._http.get(session, url) for url in self.urls))
        samples: list[Sample] = []
        for url, text in zip(self.urls, texts, strict=True):
            for sample in parse_exposition(text, time=moment).samples:
                labels = tuple(sorted({**dict(sample.labels), "instance": url}.items()))
                samples.append(Sample(sample.name, labels, sample.value))
        return Scrape(moment, tuple(samples))

    async def windows(
        self,
        *,
        namespace: str,
        revisions: Sequence[str],
        window: float,
        step: float,
        schema: MetricsSchema | str = AUTO,
    ) -> dict[str, RevisionWindow]:
        """Scrape now and every ``step`` seconds for ``window`` seconds; return the intervals between."""
        _check_window(window, step)
        chosen = parse_schema(schema)
        steps = max(1, round(window / step))
        scrapes: list[Scrape] = []
        async with aiohttp.ClientSession(timeout=self._http.timeout) as session:
            started = time.monotonic()
            for index in range(steps + 1):
                delay = started + index * step - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                scrapes.append(await self.scrape(session))
        chosen = chosen or detect_schema(scrapes)
        return revision_windows(scrapes, namespace=namespace, revisions=revisions, schema=chosen)


def provider_for(
    config: AnalysisConfig, *, prometheus_url: str | None = None, headers: Mapping[str, str] | None = None
) -> MetricsProvider:
    """Return the provider an analysis configuration reads from.

    :param config: the checked ``analysis`` mapping.
    :param prometheus_url: the Prometheus URL resolved from ``metrics_conn_id`` (overrides the config's).
    :param headers: more headers (credentials resolved from a connection).
    """
    all_headers = {**config.headers, **(headers or {})}
    if config.scrape_urls:
        return ScrapeProvider(config.scrape_urls, headers=all_headers, timeout=config.timeout)
    url = prometheus_url or config.prometheus_url
    if not url:
        raise ValueError(
            "no Prometheus URL: give prometheus_url, or a metrics_conn_id whose host is the Prometheus API"
        )
    return PrometheusProvider(url, headers=all_headers, timeout=config.timeout)
