"""The ingress's own HTTP/1.1 upstream client against raw loopback servers: framing, keep-alive, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from local_knative.ingress import UpstreamError, UpstreamPool, _dechunk

Responder = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(respond: Responder) -> tuple[asyncio.Server, int, list[int]]:
    """Start a raw server; return it, its port and a list that counts accepted connections."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await respond(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length) if length else b""


REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    ("buffer", "body"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n", b"hello"),
        (b"5\r\nhel", None),
        (b"5\r\nhello\r\n0\r\n", None),
    ],
)
def test_dechunk(buffer, body):
    assert _dechunk(bytearray(buffer)) == body


async def test_keep_alive_reuses_one_connection_and_passes_the_body():
    async def respond(reader, writer):
        while True:
            try:
                _, body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(
                b"HTTP/1.1 201 Created\r\nX-Echo: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )

    server, port, accepted = await _serve(respond)
    pool = UpstreamPool()
    try:
        for index in range(5):
            body = b"payload-%d" % index
            head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            status, headers, payload = await pool.exchange(port, head, body, method="POST", timeout=5)
            assert (status, payload) == (201, body)
            assert ("X-Echo", "1") in headers and not any(k.lower() == "content-length" for k, _ in headers)
        assert len(accepted) == 1
    finally:
        pool.close()
        server.close()


async def test_chunked_response_and_close_delimited_response():
    async def chunked(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"2\r\nde\r\n0\r\n\r\n")

    async def until_close(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")

    pool = UpstreamPool()
    for respond, expected in ((chunked, b"abcde"), (until_close, b"all of it")):
        server, port, _ = await _serve(respond)
        try:
            status, headers, payload = await pool.exchange(port, REQUEST, b"", method="GET", timeout=5)
            assert (status, payload) == (200, expected)
            assert not any(k.lower() == "transfer-encoding" for k, _ in headers)
        finally:
            server.close()
    pool.close()


async def test_head_response_has_no_body():
    async def respond(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        await asyncio.sleep(0.5)

    server, port, _ = await _serve(respond)
    pool = UpstreamPool()
    try:
        head = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
        status, _, payload = await asyncio.wait_for(
            pool.exchange(port, head, b"", method="HEAD", timeout=5), 0.4
        )
        assert (status, payload) == (200, b"")
    finally:
        pool.close()
        server.close()


async def test_refused_connection_is_retryable_and_a_reset_mid_response_is_not():
    pool = UpstreamPool()
    server, port, _ = await _serve(lambda reader, writer: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(UpstreamError) as refused:
        await pool.exchange(port, REQUEST, b"", method="GET", timeout=5)
    assert refused.value.retryable

    async def half(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")

    server, port, _ = await _serve(half)
    try:
        with pytest.raises(UpstreamError, match="closed the connection") as reset:
            await pool.exchange(port, REQUEST, b"", method="GET", timeout=5)
        assert not reset.value.retryable
    finally:
        pool.close()
        server.close()


async def test_slow_pod_times_out():
    async def silent(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(3)

    server, port, _ = await _serve(silent)
    pool = UpstreamPool()
    try:
        with pytest.raises(TimeoutError):
            await pool.exchange(port, REQUEST, b"", method="GET", timeout=0.2)
    finally:
        pool.close()
        server.close()
