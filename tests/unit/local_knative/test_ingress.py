"""Ingress in-process over real loopback HTTP: host and tag routing, splits, 404/503, activator, metrics."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from local_knative.ingress import TrafficSplit, route_hosts
from local_knative.runtime import ScalingConfig
from tests.unit.local_knative.test_runtime_harness import DOMAIN, NAMESPACE, Dataplane

HOST = f"svc.{NAMESPACE}.{DOMAIN}"


@pytest.fixture
async def plane(tmp_path: Path):
    dataplane = await Dataplane(tmp_path).start()
    yield dataplane
    await dataplane.stop()


@pytest.fixture
async def client():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:
        yield session


async def _get(client, plane, host, path="/", headers=None):
    async with client.get(plane.url + path, headers={"Host": host, **(headers or {})}) as response:
        return response.status, response.headers.get("X-Revision"), await response.text()


def test_route_hosts_for_main_host_tags_and_zero_percent_targets():
    route = {
        "metadata": {"name": "svc", "namespace": "ns"},
        "status": {
            "url": "http://svc.ns.example.com",
            "traffic": [
                {"revisionName": "svc-1", "percent": 90},
                {"revisionName": "svc-2", "percent": 10, "tag": "canary"},
                {"revisionName": "svc-3", "percent": 0, "tag": "next"},
            ],
        },
    }
    hosts = route_hosts(route, "example.com")
    assert set(hosts) == {"svc.ns.example.com", "canary-svc.ns.example.com", "next-svc.ns.example.com"}
    main = hosts["svc.ns.example.com"]
    assert main.revisions == ["svc-1", "svc-2"] and main.tags == {"canary": "svc-2", "next": "svc-3"}
    assert hosts["next-svc.ns.example.com"].pick(None) == "svc-3"
    assert main.pick("next") == "svc-3" and main.pick("unknown-tag") in ("svc-1", "svc-2")


def test_split_pick_is_honest():
    split = TrafficSplit("ns", "svc", ["a", "b", "c"], [70.0, 90.0, 100.0])
    counts = Counter(split.pick(None) for _ in range(100_000))
    assert (
        abs(counts["a"] / 1000 - 70) < 1
        and abs(counts["b"] / 1000 - 20) < 1
        and abs(counts["c"] / 1000 - 10) < 1
    )


async def test_split_tag_host_and_tag_header(plane, client):
    plane.add_revision("svc-00001")
    plane.add_revision("svc-00002")
    plane.set_traffic("svc", [("svc-00001", 80, "stable"), ("svc-00002", 20, "canary")])
    await plane.wait_ready_pods("svc-00001")
    await plane.wait_ready_pods("svc-00002")

    results = await asyncio.gather(*(_get(client, plane, HOST) for _ in range(2000)))
    counts = Counter(revision for status, revision, _ in results if status == 200)
    assert sum(counts.values()) == 2000
    assert abs(counts["svc-00002"] / 2000 - 0.20) < 0.04, counts

    for _ in range(20):
        assert (await _get(client, plane, f"canary-svc.{NAMESPACE}.{DOMAIN}:8080"))[1] == "svc-00002"
        assert (await _get(client, plane, HOST, headers={"Knative-Serving-Tag": "canary"}))[1] == "svc-00002"
        assert (await _get(client, plane, HOST, headers={"Knative-Serving-Tag": "stable"}))[1] == "svc-00001"


async def test_request_is_passed_through(plane, client):
    plane.add_revision("svc-00001")
    plane.set_traffic("svc", [("svc-00001", 100, None)])
    async with client.post(
        plane.url + "/v1/models/m:predict?x=1&y=2", data=b'{"instances": []}', headers={"Host": HOST}
    ) as response:
        body = await response.json()
    assert response.status == 200
    assert body == {
        "revision": "svc-00001",
        "service": "svc",
        "path": "/v1/models/m:predict?x=1&y=2",
        "host": HOST,
    }


async def test_unknown_host_is_404_and_route_without_traffic_is_503(plane, client):
    status, _, text = await _get(client, plane, f"nothing.{NAMESPACE}.{DOMAIN}")
    assert status == 404 and "no Knative route serves host" in text
    plane.set_traffic("svc", [])
    status, _, text = await _get(client, plane, HOST)
    assert status == 503 and "has no Ready revision" in text


async def test_failed_revision_answers_503_with_the_reason(plane, client):
    plane.add_revision("svc-00001", env={"ECHO_FAIL_AT_START": "1"})
    plane.set_traffic("svc", [("svc-00001", 100, None)])
    status, _, text = await _get(client, plane, HOST)
    assert status == 503 and "failing at start because ECHO_FAIL_AT_START" in text


async def test_traffic_change_under_load_loses_nothing(plane, client):
    plane.add_revision("svc-00001")
    plane.add_revision("svc-00002")
    plane.set_traffic("svc", [("svc-00001", 100, None)])
    await plane.wait_ready_pods("svc-00001")
    await plane.wait_ready_pods("svc-00002")
    seen: list[tuple[float, int, str]] = []
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            status, revision, _ = await _get(client, plane, HOST)
            seen.append((time.monotonic(), status, revision))

    workers = [asyncio.create_task(load()) for _ in range(10)]
    await asyncio.sleep(0.5)
    switched_at = time.monotonic()
    plane.set_traffic("svc", [("svc-00002", 100, None)])
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*workers)
    assert seen and all(status == 200 for _, status, _ in seen)
    # Requests sent after the switch (plus one round trip of slack) all reach the new revision.
    late = [revision for at, _, revision in seen if at > switched_at + 0.05]
    assert late and set(late) == {"svc-00002"}


async def test_scale_from_zero_holds_the_request(tmp_path, client):
    plane = await Dataplane(tmp_path, scaling=ScalingConfig(1, 0.5, 30, 0.1)).start()
    try:
        plane.add_revision("svc-00001", annotations={"autoscaling.knative.dev/initial-scale": "0"})
        plane.set_traffic("svc", [("svc-00001", 100, None)])
        assert plane.pods("svc-00001") == []
        started = time.monotonic()
        status, revision, _ = await _get(client, plane, HOST)
        cold = time.monotonic() - started
        assert (status, revision) == (200, "svc-00001")
        assert cold > 0.1, "the cold start (starting a process) shows in the first request's latency"
        await plane.wait_for(lambda: not plane.pods("svc-00001"), timeout=10, what="scale to zero")
        status, revision, _ = await _get(client, plane, HOST)
        assert (status, revision) == (200, "svc-00001")
    finally:
        await plane.stop()


async def test_container_concurrency_limits_each_pod(plane, client):
    plane.add_revision(
        "svc-00001",
        env={"ECHO_DELAY_MS": "300"},
        container_concurrency=1,
        annotations={"autoscaling.knative.dev/max-scale": "1"},
    )
    plane.set_traffic("svc", [("svc-00001", 100, None)])
    await plane.wait_ready_pods("svc-00001")
    started = time.monotonic()
    results = await asyncio.gather(*(_get(client, plane, HOST) for _ in range(3)))
    assert [status for status, _, _ in results] == [200, 200, 200]
    assert time.monotonic() - started >= 0.85, "one pod with containerConcurrency 1 serves them one by one"


async def test_scale_up_under_concurrent_load(plane, client):
    plane.add_revision(
        "svc-00001", env={"ECHO_DELAY_MS": "400"}, annotations={"autoscaling.knative.dev/target": "1"}
    )
    plane.set_traffic("svc", [("svc-00001", 100, None)])
    await plane.wait_ready_pods("svc-00001")
    deadline = time.monotonic() + 3

    async def load() -> None:
        while time.monotonic() < deadline:
            assert (await _get(client, plane, HOST))[0] == 200

    await asyncio.gather(*(load() for _ in range(5)))
    assert len(plane.pods("svc-00001")) > 1


async def test_metrics_count_what_clients_saw(plane, client):
    plane.add_revision("svc-00001")
    plane.set_traffic("svc", [("svc-00001", 100, None)])
    for path in ["/"] * 7 + ["/other"] * 3:
        assert (await _get(client, plane, HOST, path))[0] == 200
    async with client.get(plane.url + "/metrics") as response:
        text = await response.text()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    labels = (
        f'namespace_name="{NAMESPACE}",service_name="svc",configuration_name="svc",revision_name="svc-00001",'
        'response_code="200",response_code_class="2xx"'
    )
    assert f"revision_app_request_count{{{labels}}} 10\n" in text
    assert f"revision_app_request_latencies_count{{{labels}}} 10\n" in text
    gauge_labels = f'namespace_name="{NAMESPACE}",configuration_name="svc",revision_name="svc-00001"'
    assert f"autoscaler_actual_pods{{{gauge_labels}}} 1\n" in text


async def test_request_slower_than_timeout_seconds_gets_504(plane, client):
    plane.add_revision("svc-00001", env={"ECHO_DELAY_MS": "3000"}, timeout_seconds=1)
    plane.set_traffic("svc", [("svc-00001", 100, None)])
    await plane.wait_ready_pods("svc-00001")
    started = time.monotonic()
    status, _, text = await _get(client, plane, HOST)
    assert status == 504 and "timeoutSeconds=1" in text
    assert time.monotonic() - started < 2.9
