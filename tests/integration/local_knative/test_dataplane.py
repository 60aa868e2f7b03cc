"""Data plane of a real local_knative over loopback: splits, tags, 404/503, scaling, metrics, logs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ECHO_IMAGE = "registry.example.com/knative-rollout/echo:1"
REQUESTS_PER_SPLIT = 10_000
CONCURRENCY = 50


def kubectl(local_knative, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run the real kubectl against the session cluster and return its output."""
    result = subprocess.run(
        [require_binary("kubectl"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(local_knative.kubeconfig)},
    )
    if check and result.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def service_manifest(
    name: str,
    namespace: str,
    *,
    revision: str | None = None,
    env: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    image: str = ECHO_IMAGE,
    traffic: list[dict[str, Any]] | None = None,
) -> str:
    """Render a Knative Service running the echo app (JSON is valid YAML for kubectl)."""
    template_metadata: dict[str, Any] = {"annotations": annotations or {}}
    if revision:
        template_metadata["name"] = revision
    container = {
        "image": image,
        "env": [{"name": key, "value": value} for key, value in (env or {}).items()],
        "readinessProbe": {"httpGet": {"path": "/healthz"}},
    }
    spec: dict[str, Any] = {"template": {"metadata": template_metadata, "spec": {"containers": [container]}}}
    if traffic is not None:
        spec["traffic"] = traffic
    return json.dumps(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def apply_ready(local_knative, manifest: str, name: str, namespace: str) -> None:
    kubectl(local_knative, "apply", "-f", "-", stdin=manifest)
    kubectl(local_knative, "wait", "--for=condition=Ready", f"ksvc/{name}", "-n", namespace, "--timeout=60s")


def get_json(local_knative, *args: str) -> dict[str, Any]:
    return json.loads(kubectl(local_knative, "get", *args, "-o", "json"))


def wait_for_traffic(local_knative, name: str, namespace: str, percents: dict[str, int]) -> None:
    """Wait until the Route status carries the given revision -> percent split."""
    deadline = time.monotonic() + 30
    while True:
        status = get_json(local_knative, "ksvc", name, "-n", namespace).get("status") or {}
        seen: Counter[str] = Counter()
        for target in status.get("traffic") or []:
            seen[target.get("revisionName", "")] += int(target.get("percent") or 0)
        if {rev: pct for rev, pct in seen.items() if pct} == percents:
            return
        assert time.monotonic() < deadline, f"traffic never became {percents}: {status.get('traffic')}"
        time.sleep(0.1)


def pod_names(local_knative, namespace: str, revision: str) -> list[str]:
    pods = get_json(local_knative, "pods", "-n", namespace, "-l", f"serving.knative.dev/revision={revision}")
    return [pod["metadata"]["name"] for pod in pods["items"]]


async def fire(
    local_knative, host: str, count: int, *, headers: dict[str, str] | None = None, path: str = "/"
) -> list[tuple[int, str | None]]:
    """Send ``count`` GETs through the ingress with CONCURRENCY keep-alive connections."""
    results: list[tuple[int, str | None]] = []
    remaining = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def worker() -> None:
            for _ in remaining:
                async with session.get(
                    local_knative.ingress_url + path, headers={"Host": host, **(headers or {})}
                ) as response:
                    await response.read()
                    results.append((response.status, response.headers.get("X-Revision")))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return results


@pytest.fixture
def two_revisions(local_knative, kube_namespace):
    """A Service with revisions split-v1 and split-v2, both Ready, tagged v1 and v2."""
    namespace = kube_namespace
    apply_ready(local_knative, service_manifest("split", namespace, revision="split-v1"), "split", namespace)
    traffic = [
        {"revisionName": "split-v1", "percent": 100, "tag": "v1"},
        {"revisionName": "split-v2", "percent": 0, "tag": "v2"},
    ]
    manifest = service_manifest("split", namespace, revision="split-v2", env={"V": "2"}, traffic=traffic)
    apply_ready(local_knative, manifest, "split", namespace)
    return namespace


def set_split(local_knative, namespace: str, first: int) -> None:
    traffic = [
        {"revisionName": "split-v1", "percent": first, "tag": "v1"},
        {"revisionName": "split-v2", "percent": 100 - first, "tag": "v2"},
    ]
    kubectl(
        local_knative, "patch", "ksvc", "split", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"traffic": traffic}}),
    )  # fmt: skip
    wanted = {"split-v1": first, "split-v2": 100 - first}
    wait_for_traffic(local_knative, "split", namespace, {rev: pct for rev, pct in wanted.items() if pct})


async def test_weighted_splits_are_honest_over_10000_requests(local_knative, two_revisions):
    namespace = two_revisions
    host = f"split.{namespace}.{local_knative.domain}"
    for first in (50, 80, 90):
        set_split(local_knative, namespace, first)
        results = await fire(local_knative, host, REQUESTS_PER_SPLIT)
        assert Counter(status for status, _ in results) == {200: REQUESTS_PER_SPLIT}
        share = Counter(revision for _, revision in results)["split-v1"] * 100 / REQUESTS_PER_SPLIT
        assert abs(share - first) <= 2, f"{first}/{100 - first} split gave {share:.2f}% to split-v1"


async def test_tag_hosts_and_tag_header(local_knative, two_revisions):
    namespace = two_revisions
    domain = local_knative.domain
    status = get_json(local_knative, "ksvc", "split", "-n", namespace)["status"]
    tag_urls = {target["tag"]: target["url"] for target in status["traffic"]}
    assert tag_urls == {
        "v1": f"http://v1-split.{namespace}.{domain}",
        "v2": f"http://v2-split.{namespace}.{domain}",
    }
    for tag, revision in (("v1", "split-v1"), ("v2", "split-v2")):
        by_host = await fire(local_knative, f"{tag}-split.{namespace}.{domain}", 50)
        assert set(by_host) == {(200, revision)}
        by_header = await fire(
            local_knative, f"split.{namespace}.{domain}", 50, headers={"Knative-Serving-Tag": tag}
        )
        assert set(by_header) == {(200, revision)}


async def test_traffic_change_under_steady_load_loses_no_request(local_knative, two_revisions):
    namespace = two_revisions
    host = f"split.{namespace}.{local_knative.domain}"
    results: list[tuple[int, str | None]] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:

        async def steady() -> None:
            while not stop.is_set():
                async with session.get(local_knative.ingress_url, headers={"Host": host}) as response:
                    await response.read()
                    results.append((response.status, response.headers.get("X-Revision")))

        clients = [asyncio.create_task(steady()) for _ in range(10)]
        await asyncio.sleep(0.3)
        await asyncio.to_thread(set_split, local_knative, namespace, 0)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
    assert results and Counter(status for status, _ in results) == {200: len(results)}
    revisions = [revision for _, revision in results]
    assert revisions[0] == "split-v1" and revisions[-1] == "split-v2", "the load must span the change"
    assert set(await fire(local_knative, host, 100)) == {(200, "split-v2")}


async def test_unknown_host_404_and_no_ready_revision_503(local_knative, kube_namespace):
    async with aiohttp.ClientSession() as session:
        async with session.get(
            local_knative.ingress_url, headers={"Host": "nope.nowhere.example.com"}
        ) as response:
            assert response.status == 404
            assert "no Knative route serves host" in await response.text()
        manifest = service_manifest("broken", kube_namespace, env={"ECHO_FAIL_AT_START": "1"})
        kubectl(local_knative, "apply", "-f", "-", stdin=manifest)
        kubectl(
            local_knative, "wait", "--for=condition=Ready=False", "ksvc/broken", "-n", kube_namespace,
            "--timeout=60s",
        )  # fmt: skip
        host = f"broken.{kube_namespace}.{local_knative.domain}"
        async with session.get(local_knative.ingress_url, headers={"Host": host}) as response:
            assert response.status == 503
            assert "no Ready revision" in await response.text()


async def test_scale_up_under_concurrent_load_shows_pods(local_knative, kube_namespace):
    namespace = kube_namespace
    manifest = service_manifest(
        "busy", namespace, env={"ECHO_DELAY_MS": "300"}, annotations={"autoscaling.knative.dev/target": "1"}
    )
    apply_ready(local_knative, manifest, "busy", namespace)
    host = f"busy.{namespace}.{local_knative.domain}"
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 3

        async def client() -> None:
            while time.monotonic() < deadline:
                async with session.get(local_knative.ingress_url, headers={"Host": host}) as response:
                    assert response.status == 200

        await asyncio.gather(*(client() for _ in range(5)))
    assert len(pod_names(local_knative, namespace, "busy-00001")) > 1


async def test_scale_to_zero_then_cold_start(local_knative, kube_namespace):
    namespace = kube_namespace
    apply_ready(local_knative, service_manifest("sleepy", namespace), "sleepy", namespace)
    deadline = time.monotonic() + 20
    while pod_names(local_knative, namespace, "sleepy-00001"):
        assert time.monotonic() < deadline, "the idle revision never scaled to zero"
        await asyncio.sleep(0.2)
    # A revision that has been Ready stays Ready at zero pods.
    kubectl(local_knative, "wait", "--for=condition=Ready", "ksvc/sleepy", "-n", namespace, "--timeout=1s")
    host = f"sleepy.{namespace}.{local_knative.domain}"
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.get(local_knative.ingress_url + "/wake", headers={"Host": host}) as response:
            assert response.status == 200 and response.headers["X-Revision"] == "sleepy-00001"
        cold = time.monotonic() - started
        started = time.monotonic()
        async with session.get(local_knative.ingress_url + "/warm", headers={"Host": host}) as response:
            assert response.status == 200
        warm = time.monotonic() - started
    assert cold > 0.1 and cold > 3 * warm, f"cold start {cold:.3f}s should show against a warm {warm:.3f}s"
    assert len(pod_names(local_knative, namespace, "sleepy-00001")) == 1


async def test_metrics_count_the_requests_sent(local_knative, kube_namespace):
    namespace = kube_namespace
    apply_ready(local_knative, service_manifest("counted", namespace), "counted", namespace)
    results = await fire(local_knative, f"counted.{namespace}.{local_knative.domain}", 321)
    assert Counter(status for status, _ in results) == {200: 321}
    async with aiohttp.ClientSession() as session, session.get(local_knative.metrics_url) as response:
        text = await response.text()
    labels = (
        f'namespace_name="{namespace}",service_name="counted",configuration_name="counted",'
        'revision_name="counted-00001",response_code="200",response_code_class="2xx"'
    )
    assert f"revision_app_request_count{{{labels}}} 321\n" in text
    assert f'revision_app_request_latencies_bucket{{{labels},le="+Inf"}} 321\n' in text
    assert f"revision_request_count{{{labels}}} 321\n" in text
    gauge = f'namespace_name="{namespace}",configuration_name="counted",revision_name="counted-00001"'
    assert f"autoscaler_actual_pods{{{gauge}}} 1\n" in text


def test_kubectl_logs_of_a_revision_pod(local_knative, kube_namespace):
    apply_ready(local_knative, service_manifest("chatty", kube_namespace), "chatty", kube_namespace)
    [pod] = pod_names(local_knative, kube_namespace, "chatty-00001")
    output = kubectl(local_knative, "logs", pod, "-n", kube_namespace)
    assert "echo: revision 'chatty-00001' listening on 127.0.0.1:" in output


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"image": "docker.io/library/nginx:1.27"}, "ErrImagePull"),
        ({"env": {"ECHO_FAIL_AT_START": "1"}}, "terminated"),
        (
            {
                "env": {"ECHO_STARTUP_DELAY_S": "30"},
                "annotations": {"serving.knative.dev/progress-deadline": "2s"},
            },
            "ProgressDeadlineExceeded",
        ),
    ],
    ids=["unknown-image", "crash", "probe-never-passes"],
)
def test_failing_revision_pod_shows_the_reason(local_knative, kube_namespace, options, reason):
    kubectl(local_knative, "apply", "-f", "-", stdin=service_manifest("failing", kube_namespace, **options))
    deadline = time.monotonic() + 30
    while True:
        pods = get_json(local_knative, "pods", "-n", kube_namespace)["items"]
        states = [
            s["state"] for pod in pods for s in (pod.get("status") or {}).get("containerStatuses") or []
        ]
        if reason == "terminated" and any("terminated" in state for state in states):
            assert (
                "ECHO_FAIL_AT_START" in next(s for s in states if "terminated" in s)["terminated"]["message"]
            )
            break
        if any((state.get("waiting") or {}).get("reason") == reason for state in states):
            break
        assert time.monotonic() < deadline, f"no pod reached {reason}: {states}"
        time.sleep(0.2)
    kubectl(
        local_knative,
        "wait",
        "--for=condition=Ready=False",
        "ksvc/failing",
        "-n",
        kube_namespace,
        "--timeout=30s",
    )


async def test_ready_revision_runs_again_after_a_restart(fresh_local_knative):
    cluster = fresh_local_knative
    apply_ready(cluster, service_manifest("durable", "default"), "durable", "default")
    [before] = pod_names(cluster, "default", "durable-00001")
    cluster.restart()
    host = f"durable.default.{cluster.domain}"
    results = await fire(cluster, host, 20)
    assert set(results) == {(200, "durable-00001")}
    # The pod of the last run is restarted in place: same Pod, a new process.
    [pod] = get_json(cluster, "pods", "-n", "default", "-l", "serving.knative.dev/revision=durable-00001")[
        "items"
    ]
    assert pod["metadata"]["name"] == before
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
