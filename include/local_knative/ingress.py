"""Route requests by Host header to revision pods, as Knative's ingress and activator do.

* ``{route}.{namespace}.{domain}`` splits across the Route's ``status.traffic`` by percent (a weighted
  random pick per request); ``{tag}-{route}.{namespace}.{domain}`` reaches the tagged revision; the header
  ``Knative-Serving-Tag: {tag}`` on the main host does too (tag-header-based routing). An unknown tag in the
  header falls back to the split.
* The routing table is rebuilt from each Route event the store publishes, so a traffic change applies to
  the next request; a request in flight keeps the revision it was given.
* A revision with no ready pod holds the request while the runtime starts one (the activator), up to the
  revision's ``timeoutSeconds``; a failed revision answers 503 with the reason.
* Istio's ``RequestAuthentication`` and ``AuthorizationPolicy`` apply to the revision a request is given
  (:mod:`local_knative.istio_auth`): 401 for a bad JWT, 403 when a policy denies, as Istio's sidecar answers.
* Any other Host gets 404, except ``GET /metrics`` (Prometheus text, :mod:`local_knative.metrics`).
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from local_knative import kinds
from local_knative.faults.rules import FAULT_HEADER
from local_knative.istio_auth import AccessControl
from local_knative.metrics import CONTENT_TYPE, RequestMetrics
from local_knative.runtime import RevisionUnavailable

if TYPE_CHECKING:
    from local_knative.faults.rules import FaultInjector, FaultRule
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
_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in _HOP_BY_HOP)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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


class UpstreamError(Exception):
    """A pod did not answer: refused, closed the connection, or sent something that is not HTTP/1.1.

    :param retryable: True when the request surely never reached the application.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class _UpstreamProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to a pod, parsing one response at a time.

    Hand-written instead of aiohttp's client because the client's per-request machinery cost four times
    the rest of the proxy (see ``benchmarks/results/ingress.md``); pods speak plain HTTP/1.1 on loopback.
    """

    def __init__(self, pool: UpstreamPool, port: int) -> None:
        self.pool = pool
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, list[tuple[str, str]], bytes]] | None = None
        self._head: tuple[int, list[tuple[str, str]], bool] | None = None
        self._body_length: int | None = None  # None: chunked or until close
        self._chunked = False
        self._no_body = False
        self.deadline = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._head is not None and self._body_length is None and not self._chunked:
            status, headers, _ = self._head
            waiter.set_result((status, headers, bytes(self._buffer)))  # body delimited by the close
        else:
            waiter.set_exception(
                UpstreamError(
                    f"the pod on port {self.port} closed the connection: {exc or 'EOF'}",
                    retryable=self.used and self._head is None and not self._buffer,
                )
            )

    def request(
        self, head: bytes, body: bytes, *, no_body: bool
    ) -> asyncio.Future[tuple[int, list[tuple[str, str]], bytes]]:
        """Send one request and return a future of (status, headers, body)."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._head = None
        self._no_body = no_body
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            self._parse()
        except (ValueError, IndexError) as error:
            self._waiter.set_exception(
                UpstreamError(
                    f"the pod on port {self.port} sent a malformed response: {error}", retryable=False
                )
            )
            self.abort()

    def _parse(self) -> None:
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            status = int(lines[0].split(" ", 2)[1])
            headers: list[tuple[str, str]] = []
            keep_alive = lines[0].startswith("HTTP/1.1")
            self._body_length = None
            self._chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                value = value.strip()
                lower = name.lower()
                if lower == "content-length":
                    self._body_length = int(value)
                elif lower == "transfer-encoding":
                    self._chunked = "chunked" in value.lower()
                elif lower == "connection":
                    keep_alive = "close" not in value.lower() and (
                        keep_alive or "keep-alive" in value.lower()
                    )
                if lower not in _HOP_BY_HOP:
                    headers.append((name, value))
            if self._no_body or status in (204, 304) or 100 <= status < 200:
                self._body_length = 0
                self._chunked = False
            self._head = (status, headers, keep_alive)
        if self._chunked:
            body = _dechunk(buffer)
            if body is not None:
                self._finish(body)
        elif self._body_length is not None and len(buffer) >= self._body_length:
            self._finish(bytes(buffer[: self._body_length]))

    def _finish(self, body: bytes) -> None:
        assert self._head is not None and self._waiter is not None
        status, headers, keep_alive = self._head
        self._waiter.set_result((status, headers, body))
        self._head = None
        self._buffer.clear()
        if keep_alive:
            self.used = True
        else:
            self.abort()
        self.pool.finished(self, reusable=keep_alive)

    def expire(self) -> None:
        """Fail the request in flight with TimeoutError and drop the connection."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError("no complete response before the request's timeout"))
        self.abort()

    def abort(self) -> None:
        """Close the connection at once."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _dechunk(buffer: bytearray) -> bytes | None:
    """Return the body of a complete chunked message in ``buffer``, or None while it is incomplete."""
    body = bytearray()
    position = 0
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        start = line_end + 2
        if size == 0:
            # The last chunk; trailers, if any, are ignored up to the empty line that ends the message.
            rest = buffer[start:]
            return bytes(body) if rest.startswith(b"\r\n") or b"\r\n\r\n" in rest else None
        if len(buffer) < start + size + 2:
            return None
        body += buffer[start : start + size]
        position = start + size + 2


class UpstreamPool:
    """Keep-alive connections to pods, by port, and one request/response exchange over them.

    Timeouts are enforced by one sweep a second over the busy connections rather than a timer per request,
    which cost a noticeable share of the hot path.
    """

    def __init__(self) -> None:
        self._idle: dict[int, list[_UpstreamProtocol]] = {}
        self._busy: set[_UpstreamProtocol] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def finished(self, connection: _UpstreamProtocol, *, reusable: bool) -> None:
        """Take back a connection whose response is complete; keep it for the next request if reusable."""
        self._busy.discard(connection)
        if reusable:
            self._idle.setdefault(connection.port, []).append(connection)

    def _idle_connection(self, port: int) -> _UpstreamProtocol | None:
        idle = self._idle.get(port)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, port: int) -> _UpstreamProtocol:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(
                lambda: _UpstreamProtocol(self, port), "127.0.0.1", port
            )
        except OSError as error:
            raise UpstreamError(
                f"cannot connect to the pod on port {port}: {error}", retryable=True
            ) from None
        return protocol

    async def exchange(
        self, port: int, head: bytes, body: bytes, *, method: str, timeout: float
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send a request (``head`` ends with the blank line) and return (status, headers, body).

        :raises UpstreamError: when the pod cannot be reached or closes the connection.
        :raises TimeoutError: after ``timeout`` seconds (to the next second) without a complete response.
        """
        connection = self._idle_connection(port) or await self._connect(port)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        connection.deadline = time.monotonic() + timeout
        self._busy.add(connection)
        try:
            return await connection.request(head, body, no_body=method == "HEAD")
        except BaseException:
            self._busy.discard(connection)
            raise

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for connection in [c for c in self._busy if c.deadline <= now]:
                connection.expire()

    def close(self) -> None:
        """Close every connection and stop the timeout sweep."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connections in self._idle.values():
            for connection in connections:
                connection.abort()
        for connection in self._busy:
            connection.abort()
        self._idle.clear()
        self._busy.clear()


class Ingress:
    """Serve every Knative route on one port.

    :param store: the object store (Routes are read from it and followed).
    :param runtime: the revision runtime that lends pods.
    :param domain: the cluster domain of route hosts.
    :param faults: consulted on every routed request; a rule that fires delays, fails or drops it.
    """

    def __init__(
        self, store: Store, runtime: RevisionRuntime, *, domain: str, faults: FaultInjector | None = None
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.faults = faults
        self.domain = domain.lower()
        self.metrics = RequestMetrics()
        self._hosts: dict[str, TrafficSplit] = {}
        self._route_hosts: dict[tuple[str, str], list[str]] = {}
        self._upstream = UpstreamPool()
        self.access = AccessControl(store)
        store.subscribe(self._on_event)
        routes, _ = store.list(kinds.ROUTE)
        for route in routes:
            self._update_route(route)

    def app(self) -> web.Application:
        """Return the aiohttp application served on the ingress port."""
        application = web.Application(client_max_size=1 << 30)
        application.router.add_route("*", "/{tail:.*}", self._handle)
        application.on_cleanup.append(self._close_upstream)
        return application

    async def _close_upstream(self, _app: web.Application) -> None:
        self._upstream.close()

    def _on_event(self, event_type: str, kind: kinds.Kind, obj: dict[str, Any]) -> None:
        if kind != kinds.ROUTE:
            self.access.on_event(event_type, kind, obj)
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
        if self.faults is not None and self.faults.active:
            rule = self.faults.for_ingress(split.namespace, split.route, revision_name, request.path)
            if rule is not None:
                injected = await self._inject(request, state, rule, arrived)
                if injected is not None:
                    return injected
        if self.access.applies(split.namespace):
            denial = await self.access.check(
                split.namespace,
                revision_name,
                method=request.method,
                path=request.path,
                host=host,
                headers=request.headers,
                query=request.query,
                remote_ip=request.remote or "",
            )
            if denial is not None:
                # Not counted: the sidecar answers before the request reaches the queue-proxy.
                return web.Response(status=denial.status, text=denial.text, headers=denial.headers)
        if state is None:
            return web.Response(
                status=503,
                text=f"revision {split.namespace}/{revision_name} is not running (missing, or it "
                "failed before the server restarted); see `kubectl get revisions`\n",
            )
        pod = state.acquire_nowait()
        try:
            if pod is None:
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

    async def _inject(
        self, request: web.Request, state: RevisionState | None, rule: FaultRule, arrived: float
    ) -> web.Response | None:
        """Apply an ingress fault: delay, then answer the error or drop the connection (None: go on)."""
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never sent: the connection is closed
        if rule.error is None:
            return None
        if state is not None:
            # Counted like the ingress's own answers: the app never saw the request.
            self.metrics.record(state.labels, rule.error, (time.perf_counter() - arrived) * 1000, None)
        headers = {FAULT_HEADER: rule.id}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        text = rule.message or f"fault {rule.id} injected by local_knative"
        return web.Response(status=rule.error, text=text + "\n", headers=headers)

    async def _forward(
        self, request: web.Request, state: RevisionState, port: int, arrived: float
    ) -> web.Response:
        body = await request.read() if request.body_exists else b""
        head = [f"{request.method} {request.raw_path} HTTP/1.1\r\n".encode("latin-1")]
        forwarded = b""
        for name, value in request.raw_headers:
            lower = name.lower()
            if lower == b"x-forwarded-for":
                forwarded = value + b", "
            elif lower not in _HOP_BY_HOP_BYTES:
                head.append(b"%s: %s\r\n" % (name, value))
        head.append(b"X-Forwarded-For: %s%s\r\n" % (forwarded, (request.remote or "").encode()))
        if body or request.method in _BODY_METHODS:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        request_head = b"".join(head)
        app_started = time.perf_counter()
        try:
            try:
                status, headers, payload = await self._upstream.exchange(
                    port, request_head, body, method=request.method, timeout=state.request_timeout
                )
            except UpstreamError as error:
                # A refused connection, or a pooled one the pod closed before reading the request, never
                # reached the application: one more try on a fresh connection is safe.
                if not error.retryable:
                    raise
                status, headers, payload = await self._upstream.exchange(
                    port, request_head, body, method=request.method, timeout=state.request_timeout
                )
        except UpstreamError as error:
            return self._failed_upstream(state, arrived, app_started, 502, f"did not answer: {error}")
        except TimeoutError:
            return self._failed_upstream(
                state,
                arrived,
                app_started,
                504,
                f"did not answer within timeoutSeconds={state.request_timeout:g}",
            )
        now = time.perf_counter()
        self.metrics.record(state.labels, status, (now - arrived) * 1000, (now - app_started) * 1000)
        return web.Response(status=status, body=payload, headers=headers)

    def _failed_upstream(
        self, state: RevisionState, arrived: float, app_started: float, status: int, problem: str
    ) -> web.Response:
        now = time.perf_counter()
        self.metrics.record(state.labels, status, (now - arrived) * 1000, (now - app_started) * 1000)
        return web.Response(
            status=status,
            text=f"revision {state.namespace}/{state.name} {problem}; see its pod logs (`kubectl logs`)\n",
        )

    def _metrics(self) -> web.Response:
        counts = [(state.labels, desired, ready) for state, desired, ready in self.runtime.pod_counts()]
        return web.Response(body=self.metrics.render(counts).encode(), headers={"Content-Type": CONTENT_TYPE})
