"""Fixtures for the load generator's tests: the stall server as its own process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from benchmarks.loadgen.stall_server import StallPattern, stall_server_process


@pytest.fixture
def stall_server() -> Iterator[tuple[str, StallPattern]]:
    """Start ``benchmarks/loadgen/stall_server.py`` (300 ms stall every 2 s); yield its URL and pattern."""
    pattern = StallPattern(epoch=time.time(), period=2.0, stall=0.3, offset=1.0)
    with stall_server_process(pattern) as url:
        yield url, pattern
