"""A scriptable raw HTTP/1.1 server on loopback for the load generator's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Reply:
    """What the raw server does with one request: write ``pieces`` (``gap`` seconds apart) after ``delay``.

    ``pieces=None`` never answers; ``close`` closes the connection after writing.
    """

    pieces: list[bytes] | None
    delay: float = 0.0
    gap: float = 0.0
    close: bool = False


def ok(body: bytes = b"ok", *extra_headers: str) -> Reply:
    """Return a 200 with a Content-Length body."""
    headers = "".join(f"{header}\r\n" for header in extra_headers)
    return Reply([f"HTTP/1.1 200 OK\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body])


@dataclass
class ReceivedRequest:
    arrival: float
    head: bytes
    body: bytes

    @property
    def path(self) -> str:
        return self.head.split(b" ", 2)[1].decode()

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode()
        return None


@dataclass
class RawServer:
    """An HTTP/1.1 server on the test's event loop whose every answer is chosen by ``respond``."""

    respond: Callable[[ReceivedRequest], Reply]
    requests: list[ReceivedRequest] = field(default_factory=list)
    connections: int = 0
    outstanding: int = 0
    max_outstanding: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _RawProtocol(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()


class _RawProtocol(asyncio.Protocol):
    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            request = ReceivedRequest(loop.time(), head, b"")
            length = int(request.header("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            request.body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.server.requests.append(request)
            self.server.outstanding += 1
            self.server.max_outstanding = max(self.server.max_outstanding, self.server.outstanding)
            reply = self.server.respond(request)
            if reply.pieces is not None:
                loop.call_later(reply.delay, self._write, list(reply.pieces), reply)

    def _write(self, pieces: list[bytes], reply: Reply) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if pieces:
            self.transport.write(pieces.pop(0))
        if pieces:
            asyncio.get_running_loop().call_later(reply.gap, self._write, pieces, reply)
            return
        self.server.outstanding -= 1
        if reply.close:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
