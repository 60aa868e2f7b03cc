"""Send HTTP/1.1 requests over a bounded pool of keep-alive connections built on asyncio Protocols.

Why not aiohttp: a load generator's own overhead caps the rate it can drive and adds to the latency it
reports. Here a request is a few callbacks and no task or future: the pool writes prebuilt request bytes
on an idle connection, the connection parses the response as bytes arrive (Content-Length, chunked or
close-delimited bodies) and hands the outcome to one callback. Timeouts are enforced by a periodic sweep
instead of a timer per request, for the same reason.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_HEADER_BYTES = 64 * 1024

READ_BUFFER_BYTES = 64 * 1024

_READ_HEADERS = 0
_READ_BODY = 1
_READ_CHUNK_SIZE = 2
_READ_CHUNK_DATA = 3
_READ_TRAILERS = 4
_READ_UNTIL_CLOSE = 5


class PendingRequest:
    """One request on its way: when it was due, when it times out, which payload, which closed-loop worker."""

    __slots__ = ("attempts", "deadline", "payload", "scheduled", "worker")

    def __init__(self, scheduled: float, deadline: float, payload: int, worker: int = -1) -> None:
        self.scheduled = scheduled
        self.deadline = deadline
        self.payload = payload
        self.worker = worker
        self.attempts = 0


# (request, HTTP status or None, error kind or None, body (only when kept) or None, completion time)
OutcomeCallback = Callable[[PendingRequest, int | None, str | None, bytes | None, float], None]


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and whether to speak TLS; ``server_hostname`` is the TLS SNI name."""

    host: str
    port: int
    tls: bool = False
    server_hostname: str | None = None


def build_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes | None) -> bytes:
    """Return the wire bytes of one HTTP/1.1 request; ``headers`` must already include Host."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def _error_kind(exc: BaseException | None) -> str:
    if exc is None:
        return "connection_closed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection_reset"
    if isinstance(exc, socket.gaierror):
        return "dns_error"
    if isinstance(exc, TimeoutError):
        return "connect_timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls_error"
    return "connection_error"


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive connection that carries one request at a time and parses its response in place.

    A BufferedProtocol: the transport reads straight into our buffer (``recv_into``) instead of allocating
    a new bytes object per read; against nginx on one core that more than doubled requests per second. Parsing
    walks ``pos`` .. ``filled`` of that buffer without copying bodies out unless a check needs them.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.request: PendingRequest | None = None
        self.buffer = bytearray(READ_BUFFER_BYTES)
        self.pos = 0
        self.filled = 0
        self.body = bytearray()
        self.state = _READ_HEADERS
        self.status = 0
        self.remaining = 0
        self.keep_alive = True
        self.received = False
        self.used = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: PendingRequest, data: bytes) -> None:
        assert self.transport is not None
        self.request = request
        self.state = _READ_HEADERS
        self.status = 0
        self.received = False
        self.pos = self.filled = 0
        if self.body:
            self.body.clear()
        self.transport.write(data)
        pool = self.pool
        pool.sent += 1
        pool.last_send = pool.loop.time()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.filled == len(self.buffer):
            if self.pos:
                # Move the unparsed tail to the front (same length: allowed while a view is exported).
                tail = self.filled - self.pos
                self.buffer[:tail] = self.buffer[self.pos : self.filled]
                self.pos, self.filled = 0, tail
            else:
                self.buffer = self.buffer + bytearray(len(self.buffer))
        return memoryview(self.buffer)[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        if self.request is None:
            # Bytes nobody asked for: the connection's framing is lost, so it cannot be reused.
            self.abort()
            return
        self.received = True
        self.filled += nbytes
        self._parse()
        if self.pos == self.filled:
            self.pos = self.filled = 0

    def _parse(self) -> None:
        buffer = self.buffer
        keep = self.pool.keep_body
        while self.request is not None:
            state, pos, filled = self.state, self.pos, self.filled
            if state == _READ_HEADERS:
                end = buffer.find(b"\r\n\r\n", pos, filled)
                if end < 0:
                    if filled - pos > MAX_HEADER_BYTES:
                        self._fail("invalid_response")
                    return
                self.pos = end + 4
                if not self._on_headers(bytes(buffer[pos:end])):
                    return
            elif state == _READ_BODY:
                available = filled - pos
                if available < self.remaining:
                    if keep:
                        self.body += buffer[pos:filled]
                    self.remaining -= available
                    self.pos = filled
                    return
                if keep:
                    self.body += buffer[pos : pos + self.remaining]
                self.pos = pos + self.remaining
                self._finish()
                return
            elif state == _READ_CHUNK_SIZE:
                end = buffer.find(b"\r\n", pos, filled)
                if end < 0:
                    return
                size_text = bytes(buffer[pos:end]).split(b";", 1)[0].strip()
                try:
                    self.remaining = int(size_text, 16)
                except ValueError:
                    self._fail("invalid_response")
                    return
                self.pos = end + 2
                self.state = _READ_TRAILERS if self.remaining == 0 else _READ_CHUNK_DATA
            elif state == _READ_CHUNK_DATA:
                if self.remaining:
                    take = min(filled - pos, self.remaining)
                    if keep:
                        self.body += buffer[pos : pos + take]
                    self.pos = pos = pos + take
                    self.remaining -= take
                    if self.remaining:
                        return
                if filled - pos < 2:  # the CRLF that closes the chunk
                    return
                self.pos = pos + 2
                self.state = _READ_CHUNK_SIZE
            elif state == _READ_TRAILERS:
                end = buffer.find(b"\r\n", pos, filled)
                if end < 0:
                    return
                self.pos = end + 2
                if end == pos:
                    self._finish()
                    return
            else:  # _READ_UNTIL_CLOSE: the body ends when the server closes (see connection_lost)
                if keep:
                    self.body += buffer[pos:filled]
                self.pos = filled
                return

    def _on_headers(self, head: bytes) -> bool:
        """Parse a status line and headers; return False when the connection failed."""
        if not head.startswith(b"HTTP/1.") or len(head) < 12 or not head[9:12].isdigit():
            self._fail("invalid_response")
            return False
        status = int(head[9:12])
        if 100 <= status < 200:
            # An interim response (100 Continue): the final one follows on the same connection.
            return True
        lowered = head.lower()
        self.status = status
        connection_close = b"\r\nconnection: close" in lowered
        self.keep_alive = not connection_close and (
            head[7:8] == b"1" or b"\r\nconnection: keep-alive" in lowered
        )
        if b"\r\ntransfer-encoding:" in lowered and b"chunked" in lowered:
            self.state = _READ_CHUNK_SIZE
        elif (at := lowered.find(b"\r\ncontent-length:")) >= 0:
            end = lowered.find(b"\r\n", at + 2)
            value = lowered[at + 17 : end if end >= 0 else len(lowered)].strip()
            if not value.isdigit():
                self._fail("invalid_response")
                return False
            self.remaining = int(value)
            self.state = _READ_BODY
        elif status in (204, 304) or self.pool.head_only:
            self.remaining = 0
            self.state = _READ_BODY
        else:
            self.keep_alive = False
            self.state = _READ_UNTIL_CLOSE
        return True

    def _finish(self) -> None:
        request = self.request
        assert request is not None
        self.request = None
        self.used = True
        body = bytes(self.body) if self.pool.keep_body else None
        if self.pos != self.filled:
            # A response longer than its framing says: the connection cannot be trusted for the next one.
            self.keep_alive = False
        self.pool.finished(self, request, self.status, body)

    def _fail(self, kind: str) -> None:
        request = self.request
        self.request = None
        self.abort()
        if request is not None:
            self.pool.failed(self, request, kind)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        request = self.request
        self.request = None
        self.pool.lost(self)
        if request is None:
            return
        if self.state == _READ_UNTIL_CLOSE and exc is None:
            self.used = True
            self.pool.finished(self, request, self.status, bytes(self.body) if self.pool.keep_body else None)
        elif self.used and not self.received and request.attempts == 0:
            # The server closed an idle keep-alive connection just as we reused it; nothing was processed.
            request.attempts += 1
            self.pool.retry(request)
        else:
            self.pool.failed(self, request, _error_kind(exc))


class ConnectionPool:
    """Dispatch requests to at most ``max_connections`` keep-alive connections, queueing the rest in order.

    A queued request keeps its scheduled time, so time spent waiting for a free connection is part of its
    latency, as it would be for a user. Every outcome (response, timeout, connection error) goes to
    ``on_outcome`` exactly once per request.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        wire_requests: list[bytes],
        *,
        max_connections: int,
        connect_timeout: float,
        on_outcome: OutcomeCallback,
        keep_body: bool = False,
        head_only: bool = False,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.endpoint = endpoint
        self.wire_requests = wire_requests
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.on_outcome = on_outcome
        self.keep_body = keep_body
        self.head_only = head_only
        self.idle: list[_Connection] = []
        self.busy: set[_Connection] = set()
        self.opening = 0
        self.queue: deque[PendingRequest] = deque()
        self.sent = 0
        self.last_send = 0.0
        self.connections_opened = 0
        self.closed = False
        self._ssl_context: ssl.SSLContext | None = ssl.create_default_context() if endpoint.tls else None
        self._connect_tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Return how many requests are queued or waiting for their response."""
        return len(self.queue) + len(self.busy)

    def submit(self, request: PendingRequest) -> None:
        """Send ``request`` on an idle connection, or queue it and open a connection if the pool has room."""
        if self.idle:
            connection = self.idle.pop()
            self.busy.add(connection)
            connection.send(request, self.wire_requests[request.payload])
            return
        self.queue.append(request)
        if len(self.busy) + len(self.idle) + self.opening < self.max_connections:
            self._open()

    def retry(self, request: PendingRequest) -> None:
        """Put ``request`` back at the head of the queue (it was never processed by the server)."""
        self.queue.appendleft(request)
        if self.idle:
            self._dispatch(self.idle.pop(), self.loop.time())
        else:
            self._open_for_queue()

    def finished(
        self, connection: _Connection, request: PendingRequest, status: int, body: bytes | None
    ) -> None:
        """Take a complete response: free the connection first, then report (the report may submit more)."""
        now = self.loop.time()
        self.busy.discard(connection)
        if connection.keep_alive and not self.closed:
            self._dispatch(connection, now)
        else:
            connection.abort()
            self._open_for_queue()
        self.on_outcome(request, status, None, body, now)

    def failed(self, connection: _Connection, request: PendingRequest, kind: str) -> None:
        """Report a request that ended without a usable response."""
        self.busy.discard(connection)
        self.on_outcome(request, None, kind, None, self.loop.time())
        self._open_for_queue()

    def lost(self, connection: _Connection) -> None:
        """Forget a closed connection."""
        self.busy.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)

    def sweep(self) -> None:
        """Time out queued and in-flight requests whose deadline has passed; call this periodically."""
        now = self.loop.time()
        queue = self.queue
        while queue and queue[0].deadline <= now:
            self.on_outcome(queue.popleft(), None, "timeout", None, now)
        expired = [c for c in self.busy if c.request is not None and c.request.deadline <= now]
        for connection in expired:
            request = connection.request
            assert request is not None
            connection.request = None
            self.busy.discard(connection)
            connection.abort()
            self.on_outcome(request, None, "timeout", None, now)
        if expired:
            self._open_for_queue()

    def close(self) -> None:
        """Close every connection and stop opening new ones."""
        self.closed = True
        for task in self._connect_tasks:
            task.cancel()
        for connection in [*self.idle, *self.busy]:
            connection.abort()
        self.idle.clear()
        self.busy.clear()

    def _dispatch(self, connection: _Connection, now: float) -> None:
        queue = self.queue
        while queue:
            request = queue.popleft()
            if request.deadline <= now:
                self.on_outcome(request, None, "timeout", None, now)
                continue
            self.busy.add(connection)
            connection.send(request, self.wire_requests[request.payload])
            return
        self.idle.append(connection)

    def _open_for_queue(self) -> None:
        missing = len(self.queue) - self.opening
        room = self.max_connections - len(self.busy) - len(self.idle) - self.opening
        for _ in range(max(0, min(missing, room))):
            self._open()

    def _open(self) -> None:
        if self.closed:
            return
        self.opening += 1
        task = self.loop.create_task(self._connect())
        self._connect_tasks.add(task)
        task.add_done_callback(self._connect_tasks.discard)

    async def _connect(self) -> None:
        endpoint = self.endpoint
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Connection(self),
                    endpoint.host,
                    endpoint.port,
                    ssl=self._ssl_context,
                    server_hostname=endpoint.server_hostname if self._ssl_context else None,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            self.opening -= 1
            # Each failed attempt fails the oldest waiting request, so a dead server shows as errors at
            # the offered rate instead of an ever-growing queue.
            if self.queue:
                self.on_outcome(self.queue.popleft(), None, _error_kind(exc), None, self.loop.time())
            self._open_for_queue()
            return
        self.opening -= 1
        self.connections_opened += 1
        if self.closed:
            connection.abort()
            return
        self._dispatch(connection, self.loop.time())
