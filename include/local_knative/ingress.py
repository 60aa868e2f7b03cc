"""Route requests by Host header to revision pods, as Knative's ingress and activator do.

* ``{route}.{namespace}.{domain}`` splits across the Route's ``status.traffic`` by percent (a weighted
  random pick per request); ``{tag}-{route}.{namespace}.{domain}`` reaches the tagged revision; the header
  ``Knative-Serving-Tag: {tag}`` on the main host does too (tag-header-based routing). An unknown tag in the
  header falls back to the split.
* The routing table is rebuilt from each Route event the store publishes, so a traffic change applies to
  the next request; a request in flight keeps the revision it was given.
* A revision with no ready pod holds the request while the runtime starts one (the activator), up to the
  revision's ``timeoutSeconds``; a failed revision answers 503 with the reason.
* Any other Host gets 404, except ``GET /metrics`` (Prometheus text, :mod:`local_knative.metrics`).
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from local_knative import kinds
from local_knative.metrics import CONTENT_TYPE, RequestMetrics
from local_knative.runtime import RevisionUnavailable

if TYPE_CHECKING:
    from local_knative.runtime import RevisionRuntime, RevisionState
    from local_knative.store import Store

TAG_HEADER = "Knative-Serving-Tag"
# Headers that describe one hop, not the message (RFC 9110 section 7.6.1); the length is recomputed.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass
class TrafficSplit:
    """Where one host's requests go: revisions with cumulative percents, and tags for the tag header."""

    namespace: str
    route: str
    revisions: list[str] = field(default_factory=list)
    cumulative: list[float] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def pick(self, tag: str | None) -> str | None:
        """Return the revision for one request, or None when the route has no traffic."""
        if tag:
            tagged = self.tags.get(tag)
            if tagged:
                return tagged
        if len(self.revisions) < 2:
            return self.revisions[0] if self.revisions else None
        point = random.random() * self.cumulative[-1]
        return self.revisions[bisect.bisect_right(self.cumulative, point)]


def route_hosts(route: dict[str, Any], domain: str) -> dict[str, TrafficSplit]:
    """Return host -> split for a Route: its main host and one host per tag.

    :param route: a ``serving.knative.dev/v1`` Route.
    :param domain: the cluster domain (``--domain``).
    """
    metadata = route["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    status = route.get("status") or {}
    main = TrafficSplit(namespace, name)
    hosts: dict[str, TrafficSplit] = {}
    total = 0.0
    for target in status.get("traffic") or []:
        revision = target.get("revisionName")
        if not revision:
            continue
        percent = float(target.get("percent") or 0)
        if percent > 0:
            total += percent
            main.revisions.append(revision)
            main.cumulative.append(total)
        tag = target.get("tag")
        if tag:
            main.tags[tag] = revision
            tagged = TrafficSplit(namespace, name, [revision], [100.0])
            hosts[f"{tag}-{name}.{namespace}.{domain}"] = tagged
            if target.get("url"):
                hosts[_host_of(target["url"])] = tagged
    hosts[f"{name}.{namespace}.{domain}"] = main
    if status.get("url"):
        hosts[_host_of(status["url"])] = main
    return hosts


def _host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0].lower()


class Ingress:
    """Serve every Knative route on one port.

    :param store: the object store (Routes are read from it and followed).
    :param runtime: the revision runtime that lends pods.
    :param domain: the cluster domain of route hosts.
    """

    def __init__(self, store: Store, runtime: RevisionRuntime, *, domain: str) -> None:
        self.store = store
        self.runtime = runtime
        self.domain = domain.lower()
        self.metrics = RequestMetrics()
        self._hosts: dict[str, TrafficSplit] = {}
        self._route_hosts: dict[tuple[str, str], list[str]] = {}
        self._session: aiohttp.ClientSession | None = None
        store.subscribe(self._on_event)
        routes, _ = store.list(kinds.ROUTE)
        for route in routes:
            self._update_route(route)

    def app(self) -> web.Application:
        """Return the aiohttp application served on the ingress port."""
        application = web.Application(client_max_size=1 << 30)
        application.router.add_route("*", "/{tail:.*}", self._handle)
        application.on_startup.append(self._open_session)
        application.on_cleanup.append(self._close_session)
        return application

    async def _open_session(self, _app: web.Application) -> None:
        # One pool of keep-alive connections to every pod; no limit, the revisions' own limits apply.
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, enable_cleanup_closed=False)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def _close_session(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _on_event(self, event_type: str, kind: kinds.Kind, obj: dict[str, Any]) -> None:
        if kind != kinds.ROUTE:
            return
        if event_type == "DELETED":
            for host in self._route_hosts.pop((obj["metadata"]["namespace"], obj["metadata"]["name"]), []):
                self._hosts.pop(host, None)
        else:
            self._update_route(obj)

    def _update_route(self, route: dict[str, Any]) -> None:
        key = (route["metadata"]["namespace"], route["metadata"]["name"])
        hosts = route_hosts(route, self.domain)
        for host in self._route_hosts.get(key, []):
            if host not in hosts:
                self._hosts.pop(host, None)
        self._hosts.update(hosts)
        self._route_hosts[key] = list(hosts)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        host = _strip_port(request.host)
        split = self._hosts.get(host)
        if split is None:
            if request.path == "/metrics":
                return self._metrics()
            return web.Response(
                status=404,
                text=f"no Knative route serves host {host!r}: use {{route}}.{{namespace}}."
                f"{self.domain} or {{tag}}-{{route}}.{{namespace}}.{self.domain} (see `kubectl get ksvc`)\n",
            )
        revision_name = split.pick(request.headers.get(TAG_HEADER))
        if revision_name is None:
            return web.Response(
                status=503,
                text=f"route {split.namespace}/{split.route} has no Ready revision to send traffic "
                "to yet; see `kubectl get ksvc,revisions` for the reason\n",
            )
        state = self.runtime.revision(split.namespace, revision_name)
        if state is None:
            return web.Response(
                status=503,
                text=f"revision {split.namespace}/{revision_name} is not running (missing, or it "
                "failed before the server restarted); see `kubectl get revisions`\n",
            )
        try:
            pod = await state.acquire()
        except RevisionUnavailable as unavailable:
            self.metrics.record(
                state.labels, unavailable.status, (time.perf_counter() - arrived) * 1000, None
            )
            return web.Response(status=unavailable.status, text=unavailable.message + "\n")
        try:
            return await self._forward(request, state, pod.port, arrived)
        finally:
            state.release(pod)

    async def _forward(
        self, request: web.Request, state: RevisionState, port: int, arrived: float
    ) -> web.Response:
        assert self._session is not None, "the ingress app was not started"
        headers = {key: value for key, value in request.headers.items() if key.lower() not in _HOP_BY_HOP}
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
        body = await request.read() if request.body_exists else None
        url = f"http://127.0.0.1:{port}{request.raw_path}"
        app_started = time.perf_counter()
        for attempt in itertools.count():
            try:
                async with self._session.request(
                    request.method, url, headers=headers, data=body, allow_redirects=False
                ) as upstream:
                    payload = await upstream.read()
                    status = upstream.status
                    reply_headers = [
                        (key, value)
                        for key, value in upstream.headers.items()
                        if key.lower() not in _HOP_BY_HOP
                    ]
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectorError) as error:
                # A refused connection never reached the app; a pooled connection the pod closed just as it
                # was reused is retried only for idempotent methods, as browsers do.
                retry = isinstance(error, aiohttp.ClientConnectorError) or request.method in _IDEMPOTENT
                if attempt == 0 and retry:
                    continue
                return self._bad_gateway(state, arrived, app_started, error)
            except aiohttp.ClientError as error:
                return self._bad_gateway(state, arrived, app_started, error)
        now = time.perf_counter()
        self.metrics.record(state.labels, status, (now - arrived) * 1000, (now - app_started) * 1000)
        response = web.Response(status=status, body=payload)
        response.headers.extend(reply_headers)
        return response

    def _bad_gateway(
        self, state: RevisionState, arrived: float, app_started: float, error: Exception
    ) -> web.Response:
        now = time.perf_counter()
        self.metrics.record(state.labels, 502, (now - arrived) * 1000, (now - app_started) * 1000)
        return web.Response(
            status=502,
            text=f"revision {state.namespace}/{state.name} did not answer: {error!r}; "
            "see its pod logs (`kubectl logs`)\n",
        )

    def _metrics(self) -> web.Response:
        counts = [(state.labels, desired, ready) for state, desired, ready in self.runtime.pod_counts()]
        return web.Response(body=self.metrics.render(counts).encode(), headers={"Content-Type": CONTENT_TYPE})
