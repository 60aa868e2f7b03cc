"""A TCP proxy in front of the API server that breaks connections on cue, over real sockets.

local_knative itself answers every request well; to see what a client does when the network or an
overloaded API server does not, the tests put this proxy between the client and local_knative. Each new
connection's first request head is read, recorded and then, in order, handled by the next action of
``script`` (or by ``default`` when the script is used up):

* ``FORWARD``: relay it and the rest of the connection both ways to the upstream server;
* ``DISCONNECT``: close the connection without an answer (the client sees the server disconnect);
* a :class:`Reply`: answer with that status, headers (``Retry-After``) and a Kubernetes Status body.

:meth:`ApiProxy.break_connections` cuts every relayed connection now, with a FIN mid-stream or a reset.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FORWARD = "forward"
DISCONNECT = "disconnect"


@dataclass(frozen=True)
class Reply:
    """An answer the proxy gives itself, as the API server (or a load balancer before it) would."""

    status: int
    reason: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        """Return the whole HTTP/1.1 response."""
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": self.message,
                "reason": self.reason,
                "code": self.status,
            }
        ).encode()
        lines = [
            f"HTTP/1.1 {self.status} {self.reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Seen:
    """One request the proxy received, and what it did with it."""

    at: float
    method: str
    target: str
    action: str

    @property
    def query(self) -> dict[str, str]:
        """Return the request's query parameters."""
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.target).query).items()}


@dataclass
class _Relay:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    received: bytearray = field(default_factory=bytearray)


class ApiProxy:
    """Relay HTTP connections to ``upstream`` (``http://host:port``), or break them as scripted."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = int(parts.port or 80)
        self.script: list[str | Reply] = []
        self.default: str | Reply = FORWARD
        self.seen: list[Seen] = []
        self._relays: list[_Relay] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: list[asyncio.StreamWriter] = []
        self.url = ""

    async def __aenter__(self) -> ApiProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.break_connections()
        for writer in self._clients:
            writer.close()
        # Closed sockets end every handler; cancelling them instead makes asyncio log the cancellation.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._server.wait_closed()

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig whose cluster is this proxy and return its path."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
                    "users": [{"name": "proxy", "user": {"token": "local-knative-token"}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
                    "current-context": "proxy",
                }
            )
        )
        return path

    def watches(self) -> list[Seen]:
        """Return the watch requests seen so far."""
        return [seen for seen in self.seen if seen.query.get("watch", "").lower() == "true"]

    def relayed(self) -> bytes:
        """Return everything relayed from upstream to clients so far."""
        return b"".join(bytes(relay.received) for relay in self._relays)

    async def wait_relayed(self, needle: bytes, timeout: float = 30) -> None:
        """Wait until ``needle`` has been relayed to a client."""
        deadline = time.monotonic() + timeout
        while needle not in self.relayed():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{needle!r} was not relayed within {timeout}s: {self.relayed()[-500:]!r}"
                )
            await asyncio.sleep(0.02)

    def break_connections(self, *, reset: bool = False) -> int:
        """Cut every relayed connection now (a FIN mid-stream, with ``reset`` a TCP RST); return how many."""
        broken = 0
        for relay in self._relays:
            if relay.client.is_closing():
                continue
            broken += 1
            if reset:
                sock = relay.client.get_extra_info("socket")
                # SO_LINGER on with a zero timeout: close() sends RST and drops what is unsent.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                relay.client.transport.abort()
            else:
                relay.client.close()
            relay.upstream.close()
        return broken

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._clients.append(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        action = self.script.pop(0) if self.script else self.default
        name = action if isinstance(action, str) else f"reply {action.status}"
        self.seen.append(Seen(time.monotonic(), method, target, name))
        if action == DISCONNECT:
            return
        if isinstance(action, Reply):
            writer.write(action.encode())
            await writer.drain()
            return
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        relay = _Relay(writer, up_writer)
        self._relays.append(relay)
        up_writer.write(head)
        await asyncio.gather(
            self._pipe(reader, up_writer, None), self._pipe(up_reader, writer, relay.received)
        )

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: bytearray | None
    ) -> None:
        try:
            while data := await source.read(65536):
                if record is not None:
                    record.extend(data)
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not sink.is_closing():
                sink.close()
