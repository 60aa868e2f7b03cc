"""Run a load test: open model (requests start on a fixed schedule) or closed model (N workers in a loop).

In the open model every request has a scheduled start time and its latency is measured from that time,
not from when it was written to the socket. If the server stalls, or every connection is busy, requests
keep coming due and wait, and that wait is in their latency, as it would be for users arriving
independently. Closed-loop tools (hey, wrk, Locust) instead wait for each answer before sending the next
request, so a stall delays only a handful of requests and hides from their percentiles ("coordinated
omission"). The closed model is offered for comparison and for finding maximum throughput; its latency
runs from the actual send time.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from knative_rollout.loadtest.histogram import LatencyHistogram
from knative_rollout.loadtest.http import ConnectionPool, Endpoint, PendingRequest, build_request
from knative_rollout.loadtest.schedule import Schedule, Stage

PERCENTILES: dict[str, float] = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9}
USER_AGENT = "knative-rollout-loadtest/0.1"


class LoadTestConfigError(ValueError):
    """A load test was configured wrongly; the message says what to change."""


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
        as ``timeout``.
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
        if self.concurrency < 1:
            raise LoadTestConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.connect_to is not None:
            host, _, port = self.connect_to.rpartition(":")
            if not host or not port.isdigit():
                raise LoadTestConfigError(f"connect_to must be HOST:PORT, got {self.connect_to!r}")
        for name, value in self.headers:
            if not name or any(c in name + value for c in "\r\n") or ":" in name:
                raise LoadTestConfigError(f"invalid header {name!r}: {value!r}")

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


@dataclass
class IntervalStats:
    """What happened in one progress interval: a point of the latency-over-time plot."""

    elapsed_s: float
    sent: int
    completed: int
    errors: int
    in_flight: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def line(self) -> str:
        """Return a one-line progress message."""
        return (
            f"[{self.elapsed_s:7.1f}s] sent {self.sent:>7} completed {self.completed:>7}"
            f" errors {self.errors:>5}"
            f" in-flight {self.in_flight:>5}  interval p50 {self.p50_ms:8.2f}ms p99 {self.p99_ms:8.2f}ms"
            f" max {self.max_ms:8.2f}ms"
        )


@dataclass
class LoadTestResult:
    """Counts and latencies of a finished load test; several results (workers) merge into one."""

    requests: int = 0
    sent: int = 0
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    status_codes: Counter[int] = field(default_factory=Counter)
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    send_window_s: float = 0.0
    elapsed_s: float = 0.0
    timeline: list[IntervalStats] = field(default_factory=list)
    connections_opened: int = 0
    model: str = "open"
    requested_rate: float | None = None

    @property
    def error_count(self) -> int:
        """Return how many requests failed, of every kind."""
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        """Return the failed fraction of the requests started (0 when none started)."""
        return self.error_count / self.requests if self.requests else 0.0

    @property
    def achieved_rate(self) -> float:
        """Return requests actually sent per second over the sending window (the load the server got)."""
        return self.sent / self.send_window_s if self.send_window_s else 0.0

    @property
    def throughput(self) -> float:
        """Return responses per second from the first scheduled start to the last response."""
        return self.completed / self.elapsed_s if self.elapsed_s else 0.0

    def latency_ms(self) -> dict[str, float]:
        """Return the percentiles, max and mean of response latency in milliseconds."""
        histogram = self.histogram
        values = {name: histogram.percentile(percent) / 1000 for name, percent in PERCENTILES.items()}
        values["max"] = histogram.max / 1000
        values["mean"] = histogram.mean / 1000
        return {name: round(value, 3) for name, value in values.items()}

    def metrics(self) -> dict[str, float]:
        """Return every value an SLO threshold can name."""
        return {
            **self.latency_ms(),
            "error_rate": self.error_rate,
            "achieved_rate": self.achieved_rate,
            "throughput": self.throughput,
        }

    def merge(self, other: LoadTestResult) -> None:
        """Add another worker's result, run over the same window, to this one."""
        self.requests += other.requests
        self.sent += other.sent
        self.completed += other.completed
        self.errors.update(other.errors)
        self.status_codes.update(other.status_codes)
        self.histogram.merge(other.histogram)
        self.send_window_s = max(self.send_window_s, other.send_window_s)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.connections_opened += other.connections_opened
        if other.requested_rate is not None:
            self.requested_rate = (self.requested_rate or 0.0) + other.requested_rate

    def summary(self) -> dict[str, Any]:
        """Return the report's headline numbers (the report adds the verdict)."""
        return {
            "model": self.model,
            "requested_rate": self.requested_rate,
            "requests": self.requests,
            "sent": self.sent,
            "completed": self.completed,
            "achieved_rate": round(self.achieved_rate, 3),
            "throughput": round(self.throughput, 3),
            "error_rate": round(self.error_rate, 6),
            "errors": dict(sorted(self.errors.items())),
            "status_codes": {str(code): n for code, n in sorted(self.status_codes.items())},
            "latency_ms": self.latency_ms(),
            "duration_s": round(self.send_window_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "connections_opened": self.connections_opened,
        }


ProgressCallback = Callable[[IntervalStats], None]


class _Run:
    """State of one running load test; the pool calls :meth:`outcome` once per request."""

    def __init__(self, config: LoadTestConfig, on_progress: ProgressCallback | None) -> None:
        self.config = config
        self.on_progress = on_progress
        self.loop = asyncio.get_running_loop()
        self.result = LoadTestResult(model=config.model, requested_rate=config.rate)
        self.interval = LatencyHistogram()
        self.wire = config.wire_requests()
        self.acceptable = frozenset(config.expect_status)
        self.sending = True
        self.drained = asyncio.Event()
        self.next_payload = 0
        self.start = 0.0
        self.pool = ConnectionPool(
            config.endpoint(),
            self.wire,
            max_connections=config.concurrency,
            connect_timeout=config.timeout_s,
            on_outcome=self.outcome,
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
            latency_us = int((now - request.scheduled) * 1_000_000)
            # Only the interval histogram on the hot path; it is merged into the total once per interval.
            self.interval.record(latency_us)
            if (status not in self.acceptable) if self.acceptable else status >= 400:
                error = f"http_{status}"
            elif body is not None and not self._body_has_field(body):
                error = "check_failed"
        if error is not None:
            result.errors[error] += 1
        if request.worker >= 0 and self.sending:
            self._next_for_worker(request, now)
        elif not self.sending and not self.pool.in_flight:
            self.drained.set()

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
        interval = self.interval
        stats = IntervalStats(
            elapsed_s=round(self.loop.time() - self.start, 3),
            sent=self.pool.sent,
            completed=self.result.completed,
            errors=self.result.error_count,
            in_flight=self.pool.in_flight,
            p50_ms=interval.percentile(50) / 1000,
            p99_ms=interval.percentile(99) / 1000,
            max_ms=interval.max / 1000,
        )
        self.result.timeline.append(stats)
        self.result.histogram.merge(interval)
        self.interval = LatencyHistogram()
        if self.on_progress is not None:
            self.on_progress(stats)

    async def run(self) -> LoadTestResult:
        config = self.config
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
    config: LoadTestConfig, *, on_progress: ProgressCallback | None = None
) -> LoadTestResult:
    """Run ``config`` on the running event loop and return its result; cancel the task to stop early."""
    return await _Run(config, on_progress).run()
