"""KnativeAnalysisTrigger serializes to its import path; unreadable or misconfigured analyses are events."""

from __future__ import annotations

import asyncio
import http.server
import importlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from knative_rollout.triggers import KnativeAnalysisTrigger, run_inline

ANALYSIS = {"scrape_urls": ["http://127.0.0.1:1/metrics"], "window": "2s", "interval": "1s", "timeout": 2}


def _trigger(**overrides: Any) -> KnativeAnalysisTrigger:
    arguments: dict[str, Any] = {
        "name": "iris",
        "namespace": "models",
        "canary": "iris-b",
        "baseline": "iris-a",
        "analysis": ANALYSIS,
        "timeout_seconds": 30,
        "carry": {"percent": 10},
        **overrides,
    }
    return KnativeAnalysisTrigger(**arguments)


def test_serialize() -> None:
    trigger = _trigger(end=1234.5, prometheus_url="http://p:9090", headers={"Authorization": "Bearer x"})
    classpath, kwargs = trigger.serialize()
    assert classpath == "knative_rollout.triggers.KnativeAnalysisTrigger"
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == trigger.serialize()
    assert kwargs["canary"] == "iris-b" and kwargs["end"] == 1234.5 and kwargs["analysis"] == ANALYSIS


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreadable_metrics_are_a_temporary_error_event() -> None:
    url = f"http://127.0.0.1:{closed_port()}/metrics"
    event = run_inline(_trigger(analysis={**ANALYSIS, "scrape_urls": [url]}))
    assert event is not None
    assert (event["status"], event["permanent"], event["percent"]) == ("error", False, 10)
    assert "metrics could not be read" in event["message"]


def test_misconfigured_analysis_is_a_permanent_error_event() -> None:
    event = run_inline(_trigger(analysis={"window": "1s"}))
    assert event is not None and (event["status"], event["permanent"]) == ("error", True)
    assert "nowhere to read metrics from" in event["message"]


class _EmptyMetrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"# no series yet\n")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def metrics_url() -> Iterator[str]:
    """A real /metrics endpoint (empty) on a local port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EmptyMetrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()


def test_a_scrape_that_outlasts_the_timeout_is_a_timeout_event(metrics_url: str) -> None:
    analysis = {**ANALYSIS, "scrape_urls": [metrics_url], "window": "5s"}
    event = run_inline(_trigger(analysis=analysis, timeout_seconds=0.5))
    assert event is not None and event["status"] == "timeout", event


def test_no_series_is_an_inconclusive_verdict(metrics_url: str) -> None:
    analysis = {**ANALYSIS, "scrape_urls": [metrics_url], "window": "1s", "interval": "0.5s"}
    event = run_inline(_trigger(analysis=analysis))
    assert event is not None and (event["status"], event["verdict"]) == ("success", "inconclusive"), event
    assert event["analysis"]["judgement"]["classification"] == "nodata"


def test_the_trigger_never_blocks_its_event_loop(metrics_url: str) -> None:
    async def both() -> float:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        analysis = {**ANALYSIS, "scrape_urls": [metrics_url], "window": "1s"}
        async for _ in _trigger(analysis=analysis, timeout_seconds=0.6).run():
            break
        ticker.cancel()
        return ticks

    assert asyncio.run(both()) >= 5
