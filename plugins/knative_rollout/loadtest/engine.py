"""Run a load test: open model (requests start on a fixed schedule) or closed model (N workers in a loop).

In the open model every request has a scheduled start time and its latency is measured from that time,
not from when it was written to the socket. If the server stalls, or every connection is busy, requests
keep coming due and wait, and that wait is in their latency, as it would be for users arriving
independently. Closed-loop tools (hey, wrk, Locust) instead wait for each answer before sending the next
request, so a stall delays only a handful of requests and hides from their percentiles ("coordinated
omission"). The closed model is offered for comparison and for finding maximum throughput; its latency
runs from the actual send time.

Every request is in the latency distribution, whatever became of it: a successful one in ``ok``, a failed
one in ``failed`` at the time it failed, and a timeout at the moment it was declared, which is never
before its timeout. So a revision whose slow requests time out cannot look faster than one that answers
them slowly, and a stall longer than the timeout still shows in the percentiles of all requests. The
percentiles of successful requests are reported beside them, so fast 5xx answers cannot pull latency down
unseen; an SLO's ``pNN`` judges the slower of the two (see :meth:`LoadTestResult.metrics`). An empty
distribution has no percentiles (None), never 0.

Before the measurement a warm-up sends the load's request one at a time until one succeeds (at most
``warmup_s``): a revision Knative scaled to zero answers only after a cold start, and a gate that measured
that would judge the autoscaler, not the revision. The warm-up is never in the measurement; when nothing
succeeds within its limit the measurement runs anyway and judges what it finds (fails, or is inconclusive).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from knative_rollout.loadtest.http import (
    ConnectionPool,
    Endpoint,
    OutcomeCallback,
    PendingRequest,
    build_request,
)
from knative_rollout.loadtest.latency import LatencyHistogram
from knative_rollout.loadtest.schedule import Schedule, Stage

PERCENTILES: dict[str, float] = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9}
LATENCY_FIELDS = (*PERCENTILES, "max", "mean")
USER_AGENT = "knative-rollout-loadtest/0.1"
# Pause after a warm-up request that failed before the next, so a fast error (connection refused, 503)
# does not become a busy loop against a revision that is starting.
WARMUP_RETRY_S = 0.1
DEFAULT_WARMUP_S = 30.0
"""The longest warm-up before a measurement unless told otherwise (config, CLI and gate operator)."""


class LoadTestConfigError(ValueError):
    """A load test was configured wrongly; the message says what to change."""


# RFC 9110 token characters: what a header field name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class LoadTestConfig:
    """Describe one load test.

    :param url: the URL to send every request to (``http://`` or ``https://``).
    :param rate: requests per second of a constant-rate profile (open model), or a cap on the total start
        rate of the closed model's workers (None: as fast as they can).
    :param duration_s: how long to send, in seconds.
    :param stages: a ramped profile instead of ``rate``/``duration_s`` (open model only).
    :param model: ``"open"`` (fixed schedule) or ``"closed"`` (``concurrency`` workers in a loop).
    :param concurrency: most connections open at once (open model), or the number of workers (closed).
    :param timeout_s: a request that has no complete response this long after its scheduled start fails
        as ``timeout`` and enters the latency distribution at no less than this.
    :param method: HTTP method; POST when bodies are given and no method is.
    :param host: the Host header (for example a Knative tag host when ``connect_to`` is an ingress).
    :param connect_to: ``host:port`` to connect to instead of the URL's host (Host header stays).
    :param headers: extra headers, e.g. ``Knative-Serving-Tag`` or ``Authorization``.
    :param bodies: request bodies, used in turn (a model's prediction requests).
    :param expect_status: statuses that count as success; empty means any status below 400.
    :param expect_json_field: a top-level field the JSON response must contain, or the request fails
        as ``check_failed``.
    :param progress_interval_s: how often progress is reported and a point of the latency-over-time plot
        is taken.
    :param warmup_s: before measuring, send the request one at a time until one succeeds (by
        ``expect_status``/``expect_json_field``), for at most this long; 0 turns the warm-up off.
    """

    url: str
    rate: float | None = None
    duration_s: float = 30.0
    stages: tuple[Stage, ...] = ()
    model: Literal["open", "closed"] = "open"
    concurrency: int = 100
    timeout_s: float = 10.0
    method: str | None = None
    host: str | None = None
    connect_to: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    bodies: tuple[bytes, ...] = ()
    expect_status: tuple[int, ...] = ()
    expect_json_field: str | None = None
    progress_interval_s: float = 1.0
    warmup_s: float = DEFAULT_WARMUP_S

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadTestConfigError(f"url {self.url!r} is not an http:// or https:// URL with a host")
        if self.model not in ("open", "closed"):
            raise LoadTestConfigError(f"model must be 'open' or 'closed', got {self.model!r}")
        if self.model == "open" and not self.stages and (self.rate is None or self.rate <= 0):
            raise LoadTestConfigError("the open model needs a positive rate (requests per second) or stages")
        if self.stages and (self.rate is not None or self.model == "closed"):
            raise LoadTestConfigError("give either stages (open model) or a constant rate, not both")
        if self.rate is not None and self.rate <= 0:
            raise LoadTestConfigError(f"rate must be positive, got {self.rate}")
        if self.duration_s <= 0 or self.timeout_s <= 0 or self.progress_interval_s <= 0:
            raise LoadTestConfigError("duration, timeout and progress interval must be positive")
        if self.warmup_s < 0:
            raise LoadTestConfigError(f"warmup must be 0 (off) or positive, got {self.warmup_s}")
        if self.concurrency < 1:
            raise LoadTestConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.connect_to is not None:
            host, _, port = self.connect_to.rpartition(":")
            if not host or not port.isdigit():
                raise LoadTestConfigError(f"connect_to must be HOST:PORT, got {self.connect_to!r}")
        for name, value in self.headers:
            if not _HEADER_NAME.fullmatch(name) or any(c in value for c in "\r\n\0"):
                raise LoadTestConfigError(
                    f"invalid header {name[:80]!r}: a name is an HTTP token (letters, digits, '-'...; no "
                    "spaces or ':') and a value holds no line breaks"
                )

    @property
    def schedule_duration_s(self) -> float:
        """Return how long requests are started for."""
        return sum(stage.duration_s for stage in self.stages) if self.stages else self.duration_s

    def endpoint(self) -> Endpoint:
        """Return where to connect."""
        parts = urlsplit(self.url)
        tls = parts.scheme == "https"
        assert parts.hostname is not None
        if self.connect_to is not None:
            host, _, port = self.connect_to.rpartition(":")
            return Endpoint(host.strip("[]"), int(port), tls, server_hostname=self.host or parts.hostname)
        return Endpoint(
            parts.hostname, parts.port or (443 if tls else 80), tls, server_hostname=parts.hostname
        )

    def wire_requests(self) -> list[bytes]:
        """Return the bytes of each distinct request (one per body, or one without a body)."""
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = self.host or parts.netloc.rpartition("@")[2]
        method = self.method or ("POST" if self.bodies else "GET")
        names = {name.lower() for name, _ in self.headers}
        headers = [("Host", host)]
        headers += [
            (n, v) for n, v in (("User-Agent", USER_AGENT), ("Accept", "*/*")) if n.lower() not in names
        ]
        if self.bodies and "content-type" not in names:
            headers.append(("Content-Type", "application/json"))
        headers += [(name, value) for name, value in self.headers if name.lower() != "host"]
        bodies: list[bytes | None] = list(self.bodies) or [None]
        return [build_request(method, target, headers, body) for body in bodies]


@dataclass(frozen=True)
class Warmup:
    """How the warm-up before the measurement went.

    :param elapsed_s: how long it took.
    :param requests: how many requests it sent.
    :param succeeded: whether one succeeded (False: it ran out and the measurement runs anyway).
    :param last_error: what the last failed request met (``timeout``, ``http_503``...), or None.
    """

    elapsed_s: float
    requests: int
    succeeded: bool
    last_error: str | None

    def line(self) -> str:
        """Return a one-line message saying how the warm-up ended."""
        if self.succeeded:
            return (
                f"warm-up: answered after {self.elapsed_s:.1f}s ({self.requests} request(s)); measuring now"
            )
        return (
            f"warm-up ran out: none of {self.requests} request(s) succeeded in {self.elapsed_s:.1f}s (last:"
            f" {self.last_error}); measuring anyway, the gate judges what it finds"
        )


@dataclass
class IntervalStats:
    """What happened in one progress interval: a point of the latency-over-time plot."""

    elapsed_s: float
    sent: int
    completed: int
    errors: int
    timeouts: int
    in_flight: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def line(self) -> str:
        """Return a one-line progress message (latencies of every request that ended in the interval)."""
        return (
            f"[{self.elapsed_s:7.1f}s] sent {self.sent:>7} completed {self.completed:>7}"
            f" errors {self.errors:>5} timeouts {self.timeouts:>5}"
            f" in-flight {self.in_flight:>5}  interval p50 {_ms(self.p50_ms)} p99 {_ms(self.p99_ms)}"
            f" max {_ms(self.max_ms)}"
        )


def _ms(value: float | None) -> str:
    return "       -  " if value is None else f"{value:8.2f}ms"


def _slower(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return second if first is None else first
    return max(first, second)


def _latency_ms(histogram: LatencyHistogram) -> dict[str, float | None]:
    """Return the percentiles, max and mean of ``histogram`` in milliseconds (all None when empty)."""
    values = dict(zip(PERCENTILES, histogram.percentiles(list(PERCENTILES.values())), strict=True))
    values["max"] = None if histogram.max is None else float(histogram.max)
    values["mean"] = histogram.mean
    return {name: None if value is None else round(value / 1000, 3) for name, value in values.items()}


@dataclass
class LoadTestResult:
    """Counts and latencies of a finished load test; several results (workers) merge into one.

    ``completed`` counts answered requests (an HTTP response of any status); ``ok`` holds the latency of
    every successful request, ``failed`` that of every other one (HTTP errors, failed checks, connection
    errors, and timeouts at no less than ``timeout_s``).
    """

    requests: int = 0
    sent: int = 0
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    status_codes: Counter[int] = field(default_factory=Counter)
    ok: LatencyHistogram = field(default_factory=LatencyHistogram)
    failed: LatencyHistogram = field(default_factory=LatencyHistogram)
    send_window_s: float = 0.0
    schedule_s: float = 0.0
    elapsed_s: float = 0.0
    timeout_s: float = 0.0
    timeline: list[IntervalStats] = field(default_factory=list)
    connections_opened: int = 0
    model: str = "open"
    requested_rate: float | None = None
    warmup_s: float = 0.0
    warmup_requests: int = 0

    @property
    def succeeded(self) -> int:
        """Return how many requests were answered with success."""
        return self.ok.count

    @property
    def timeouts(self) -> int:
        """Return how many requests timed out (waiting for a connection or for their response)."""
        return self.errors["timeout"]

    def all_requests(self) -> LatencyHistogram:
        """Return the latency of every request: successful and failed, timeouts included."""
        histogram = self.ok.copy()
        histogram.merge(self.failed)
        return histogram

    @property
    def error_count(self) -> int:
        """Return how many requests failed, of every kind."""
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        """Return the failed fraction of the requests started (0 when none started)."""
        return self.error_count / self.requests if self.requests else 0.0

    @property
    def offered_rate(self) -> float:
        """Return requests started per second over the schedule (the load the test asked for)."""
        return self.requests / self.schedule_s if self.schedule_s else 0.0

    @property
    def achieved_rate(self) -> float:
        """Return answered requests (any status) per second over the sending window."""
        return self.completed / self.send_window_s if self.send_window_s else 0.0

    @property
    def throughput(self) -> float:
        """Return responses per second from the first scheduled start to the last response."""
        return self.completed / self.elapsed_s if self.elapsed_s else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        """Return the percentiles, max and mean in milliseconds of every request (None when none)."""
        return _latency_ms(self.all_requests())

    def latency_ms_ok(self) -> dict[str, float | None]:
        """Return the percentiles, max and mean in milliseconds of successful requests (None when none)."""
        return _latency_ms(self.ok)

    def above_timeout(self, latency_ms: dict[str, float | None] | None = None) -> list[str]:
        """Return which of :meth:`latency_ms` are at or above the timeout: only lower bounds, not values.

        A timed-out request is recorded when it is declared; its true latency is unknown, only longer.
        """
        latency = self.latency_ms() if latency_ms is None else latency_ms
        limit = self.timeout_s * 1000
        return [name for name, value in latency.items() if value is not None and limit and value >= limit]

    def metrics(self) -> dict[str, float | None]:
        """Return every value an SLO threshold can name.

        ``pNN``, ``max`` and ``mean`` are the slower of all requests (where timeouts push it up) and
        successful requests (where fast errors cannot pull it down), so a gate on them holds only when it
        holds for both. ``ok_pNN`` are of successful requests alone.
        """
        everything, ok = self.latency_ms(), self.latency_ms_ok()
        return {
            **{name: _slower(value, ok[name]) for name, value in everything.items()},
            **{f"ok_{name}": value for name, value in ok.items()},
            "error_rate": self.error_rate,
            "achieved_rate": self.achieved_rate,
            "offered_rate": self.offered_rate,
            "throughput": self.throughput,
        }

    def merge(self, other: LoadTestResult) -> None:
        """Add another worker's result, run over the same window, to this one."""
        self.requests += other.requests
        self.sent += other.sent
        self.completed += other.completed
        self.errors.update(other.errors)
        self.status_codes.update(other.status_codes)
        self.ok.merge(other.ok)
        self.failed.merge(other.failed)
        self.send_window_s = max(self.send_window_s, other.send_window_s)
        self.schedule_s = max(self.schedule_s, other.schedule_s)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.timeout_s = max(self.timeout_s, other.timeout_s)
        self.connections_opened += other.connections_opened
        self.warmup_s = max(self.warmup_s, other.warmup_s)
        self.warmup_requests += other.warmup_requests
        if other.requested_rate is not None:
            self.requested_rate = (self.requested_rate or 0.0) + other.requested_rate

    def summary(self) -> dict[str, Any]:
        """Return the report's headline numbers (the report adds the verdict)."""
        latency = self.latency_ms()
        return {
            "model": self.model,
            "requested_rate": self.requested_rate,
            "offered_rate": round(self.offered_rate, 3),
            "requests": self.requests,
            "sent": self.sent,
            "completed": self.completed,
            "succeeded": self.succeeded,
            "timeouts": self.timeouts,
            "achieved_rate": round(self.achieved_rate, 3),
            "throughput": round(self.throughput, 3),
            "error_rate": round(self.error_rate, 6),
            "errors": dict(sorted(self.errors.items())),
            "status_codes": {str(code): n for code, n in sorted(self.status_codes.items())},
            "timeout_ms": round(self.timeout_s * 1000, 3),
            "latency_ms": latency,
            "latency_ms_ok": self.latency_ms_ok(),
            "above_timeout": self.above_timeout(latency),
            "duration_s": round(self.send_window_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "connections_opened": self.connections_opened,
            "warmup_s": round(self.warmup_s, 3),
            "warmup_requests": self.warmup_requests,
        }


ProgressCallback = Callable[[IntervalStats], None]
WarmupCallback = Callable[[Warmup], None]


class _Run:
    """State of one running load test; the pool calls :meth:`outcome` once per request."""

    def __init__(
        self, config: LoadTestConfig, on_progress: ProgressCallback | None, on_warmup: WarmupCallback | None
    ) -> None:
        self.config = config
        self.on_progress = on_progress
        self.on_warmup = on_warmup
        self.loop = asyncio.get_running_loop()
        self.result = LoadTestResult(
            model=config.model,
            requested_rate=config.rate,
            timeout_s=config.timeout_s,
            schedule_s=config.schedule_duration_s,
        )
        # Only the interval histograms on the hot path; they are merged into the totals once per interval.
        self.interval_ok = LatencyHistogram()
        self.interval_failed = LatencyHistogram()
        self.timeout_us = int(config.timeout_s * 1_000_000)
        self.wire = config.wire_requests()
        self.acceptable = frozenset(config.expect_status)
        self.sending = True
        self.drained = asyncio.Event()
        self.next_payload = 0
        self.start = 0.0
        self.pool = self._pool(config.concurrency, config.timeout_s, self.outcome)

    def _pool(self, connections: int, connect_timeout: float, on_outcome: OutcomeCallback) -> ConnectionPool:
        config = self.config
        return ConnectionPool(
            config.endpoint(),
            self.wire,
            max_connections=connections,
            connect_timeout=connect_timeout,
            on_outcome=on_outcome,
            keep_body=config.expect_json_field is not None,
            head_only=(config.method or "").upper() == "HEAD",
        )

    def new_request(self, scheduled: float, worker: int = -1) -> PendingRequest:
        payload = self.next_payload
        self.next_payload = (payload + 1) % len(self.wire)
        self.result.requests += 1
        return PendingRequest(scheduled, scheduled + self.config.timeout_s, payload, worker)

    def outcome(
        self, request: PendingRequest, status: int | None, error: str | None, body: bytes | None, now: float
    ) -> None:
        result = self.result
        if status is not None:
            result.completed += 1
            result.status_codes[status] += 1
            error = self.failure(status, body)
        latency_us = int((now - request.scheduled) * 1_000_000)
        if error is None:
            self.interval_ok.record(latency_us)
        else:
            result.errors[error] += 1
            if error == "timeout":
                # Declared at or after its deadline; never let rounding put it below the timeout.
                latency_us = max(latency_us, self.timeout_us)
            self.interval_failed.record(latency_us)
        if request.worker >= 0 and self.sending:
            self._next_for_worker(request, now)
        elif not self.sending and not self.pool.in_flight:
            self.drained.set()

    def failure(self, status: int, body: bytes | None) -> str | None:
        """Return why an answer with ``status`` (and ``body``, when kept) failed, or None if it succeeded."""
        if (status not in self.acceptable) if self.acceptable else status >= 400:
            return f"http_{status}"
        if body is not None and not self._body_has_field(body):
            return "check_failed"
        return None

    def _body_has_field(self, body: bytes) -> bool:
        try:
            document = json.loads(body)
        except ValueError:
            return False
        return isinstance(document, dict) and self.config.expect_json_field in document

    # ----- open model
    def start_open(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.index = 0
        self.next_offset = schedule.offset(0)
        self.tick()

    def tick(self) -> None:
        # Start every request that is due; a late wake-up sends the backlog at once, each keeping its own
        # scheduled time, so scheduling delay is counted in latency rather than silently dropped.
        now = self.loop.time()
        start, submit, schedule = self.start, self.pool.submit, self.schedule
        offset = self.next_offset
        index = self.index
        while offset is not None and start + offset <= now:
            submit(self.new_request(start + offset))
            index += 1
            offset = schedule.offset(index)
        self.index, self.next_offset = index, offset
        if offset is None:
            self.stop_sending()
        else:
            self.loop.call_at(start + offset, self.tick)

    # ----- closed model
    def start_closed(self) -> None:
        self.end = self.start + self.config.duration_s
        # With a rate cap each worker starts at most one request per concurrency/rate seconds (like hey -q).
        self.worker_gap = self.config.concurrency / self.config.rate if self.config.rate else 0.0
        self.worker_last = [self.start] * self.config.concurrency
        for worker in range(self.config.concurrency):
            self.pool.submit(self.new_request(self.start, worker))
        self.loop.call_at(self.end, self.stop_sending)

    def _next_for_worker(self, finished: PendingRequest, now: float) -> None:
        worker = finished.worker
        due = max(now, self.worker_last[worker] + self.worker_gap)
        if due >= self.end:
            return
        self.worker_last[worker] = due
        if due <= now:
            self.pool.submit(self.new_request(now, worker))
        else:
            self.loop.call_at(due, self._send_for_worker, worker)

    def _send_for_worker(self, worker: int) -> None:
        if self.sending:
            self.pool.submit(self.new_request(self.loop.time(), worker))

    # ----- both
    def stop_sending(self) -> None:
        if not self.sending:
            return
        self.sending = False
        if not self.pool.in_flight:
            self.drained.set()

    def report_progress(self) -> None:
        result, ok, failed = self.result, self.interval_ok, self.interval_failed
        self.interval_ok, self.interval_failed = LatencyHistogram(), LatencyHistogram()
        interval = ok.copy()
        interval.merge(failed)
        p50, p99 = interval.percentiles([50, 99])
        stats = IntervalStats(
            elapsed_s=round(self.loop.time() - self.start, 3),
            sent=self.pool.sent,
            completed=result.completed,
            errors=result.error_count,
            timeouts=result.timeouts,
            in_flight=self.pool.in_flight,
            p50_ms=None if p50 is None else p50 / 1000,
            p99_ms=None if p99 is None else p99 / 1000,
            max_ms=None if interval.max is None else interval.max / 1000,
        )
        result.timeline.append(stats)
        result.ok.merge(ok)
        result.failed.merge(failed)
        if self.on_progress is not None:
            self.on_progress(stats)

    async def warm_up(self) -> Warmup:
        """Send the first request one at a time until one succeeds or ``warmup_s`` runs out.

        Each request may take what is left of the limit: a cold start is one long wait (Knative's
        activator holds the request until a pod is ready), not a timeout to retry.
        """
        loop, limit_s = self.loop, self.config.warmup_s
        start = loop.time()
        deadline = start + limit_s
        answer: asyncio.Future[str | None] = loop.create_future()

        def outcome(
            request: PendingRequest, status: int | None, error: str | None, body: bytes | None, now: float
        ) -> None:
            if not answer.done():
                answer.set_result(error if status is None else self.failure(status, body))

        pool = self._pool(1, limit_s, outcome)
        requests, error = 0, None
        try:
            while (now := loop.time()) < deadline:
                answer = loop.create_future()
                requests += 1
                pool.submit(PendingRequest(now, deadline, 0))
                try:
                    error = await asyncio.wait_for(answer, deadline - now)
                except TimeoutError:
                    error = "timeout"
                    break
                if error is None:
                    return Warmup(loop.time() - start, requests, True, None)
                await asyncio.sleep(min(WARMUP_RETRY_S, max(0.0, deadline - loop.time())))
        finally:
            pool.close()
        return Warmup(loop.time() - start, requests, False, error)

    async def run(self) -> LoadTestResult:
        config = self.config
        if config.warmup_s:
            warmup = await self.warm_up()
            self.result.warmup_s, self.result.warmup_requests = warmup.elapsed_s, warmup.requests
            if self.on_warmup is not None:
                self.on_warmup(warmup)
        sweep_every = min(0.05, config.timeout_s / 4)
        self.start = self.loop.time() + 0.01
        sweeper = self._every(sweep_every, self.pool.sweep)
        progress = self._every(config.progress_interval_s, self.report_progress, first=self.start)
        try:
            if config.model == "open":
                stages = list(config.stages) or [
                    Stage(config.duration_s, config.rate or 0.0, config.rate or 0.0)
                ]
                self.loop.call_at(self.start, self.start_open, Schedule(stages))
            else:
                self.loop.call_at(self.start, self.start_closed)
            await self.drained.wait()
        finally:
            sweeper.cancel()
            progress.cancel()
            self.pool.close()
        result = self.result
        result.elapsed_s = self.loop.time() - self.start
        result.sent = self.pool.sent
        # Requests still queued when the schedule ended went out later: the load took that much longer.
        result.send_window_s = max(self.config.schedule_duration_s, self.pool.last_send - self.start)
        result.connections_opened = self.pool.connections_opened
        self.report_progress()
        return result

    def _every(
        self, seconds: float, callback: Callable[[], None], first: float | None = None
    ) -> asyncio.Task[None]:
        async def repeat() -> None:
            due = (first if first is not None else self.loop.time()) + seconds
            while True:
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                callback()
                due += seconds

        return self.loop.create_task(repeat())


async def run_load_test(
    config: LoadTestConfig,
    *,
    on_progress: ProgressCallback | None = None,
    on_warmup: WarmupCallback | None = None,
) -> LoadTestResult:
    """Run ``config`` on the running event loop and return its result; cancel the task to stop early.

    :param on_progress: called with each progress interval of the measurement.
    :param on_warmup: called once when the warm-up ends (not when ``warmup_s`` is 0).
    """
    return await _Run(config, on_progress, on_warmup).run()
