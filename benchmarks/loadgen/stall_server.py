"""An HTTP server that stops answering for ``stall`` seconds out of every ``period``: a known latency truth.

Requests that arrive during a stall are answered when it ends; all others at once. So for users arriving
independently at a constant rate the latency distribution is known exactly (``StallPattern.true_latency``):
a fraction stall/period of them wait uniformly between 0 and ``stall``, and over whole periods the true
p99 is ``stall - 0.01 * period`` (280 ms for a 300 ms stall every 2 s). Load tests and the benchmark run it
as a separate process: ``python benchmarks/loadgen/stall_server.py --port 0`` prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@dataclass(frozen=True)
class StallPattern:
    """Stalls of ``stall`` seconds, ``offset`` seconds into every ``period`` counted from ``epoch``."""

    epoch: float
    period: float = 2.0
    stall: float = 0.3
    offset: float = 1.0

    def true_latency(self, arrival: float) -> float:
        """Return how long a request arriving at wall time ``arrival`` waits before the server answers."""
        phase = (arrival - self.epoch - self.offset) % self.period
        return self.stall - phase if phase < self.stall else 0.0

    def true_percentile(self, start: float, rate: float, duration: float, percent: float) -> float:
        """Return the nearest-rank percentile of the waits of requests sent at ``rate`` from ``start``."""
        waits = sorted(self.true_latency(start + i / rate) for i in range(int(rate * duration)))
        return waits[max(0, math.ceil(percent / 100 * len(waits)) - 1)]


class _StallingProtocol(asyncio.Protocol):
    def __init__(self, pattern: StallPattern) -> None:
        self.pattern = pattern
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.answer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            length = 0
            if (at := head.find(b"\r\ncontent-length:")) >= 0:
                length = int(head[at + 17 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            wait = self.pattern.true_latency(time.time())
            # Answers on one connection stay in order, so a request queued behind a stalled one waits for it.
            loop = asyncio.get_running_loop()
            self.answer_at = max(loop.time() + wait, self.answer_at)
            if self.answer_at <= loop.time():
                self._answer()
            else:
                loop.call_at(self.answer_at, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, pattern: StallPattern) -> None:
    """Serve on 127.0.0.1:``port`` forever and print ``READY <port>`` once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _StallingProtocol(pattern), "127.0.0.1", port, backlog=4096)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


@contextmanager
def stall_server_process(pattern: StallPattern, *, cpu: int | None = None) -> Iterator[str]:
    """Run this server as a separate process (pinned to ``cpu`` with taskset if given); yield its URL."""
    command = [sys.executable, str(Path(__file__).resolve()), "--port", "0", "--epoch", repr(pattern.epoch)]
    command += [
        "--period",
        str(pattern.period),
        "--stall",
        str(pattern.stall),
        "--offset",
        str(pattern.offset),
    ]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        if ready[:1] != ["READY"]:
            raise RuntimeError(f"stall server did not start (exit code {process.poll()}): {ready}")
        yield f"http://127.0.0.1:{ready[1]}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    """Run the server from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--period", type=float, default=2.0, help="seconds between stall starts")
    parser.add_argument("--stall", type=float, default=0.3, help="seconds each stall lasts")
    parser.add_argument("--offset", type=float, default=1.0, help="seconds into each period a stall starts")
    parser.add_argument("--epoch", type=float, help="wall time (time.time()) periods count from; default now")
    args = parser.parse_args()
    pattern = StallPattern(args.epoch or time.time(), args.period, args.stall, args.offset)
    asyncio.run(serve(args.port, pattern))


if __name__ == "__main__":
    main()
