"""A cold start slower than the scale-to-zero window still answers: the activator's held request counts."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.integration.local_knative.test_dataplane import apply_ready, pod_names, service_manifest

pytestmark = pytest.mark.integration

# Longer than the session cluster's idle time before scale to zero (stable window 3 s + grace 2 s), so a
# request held while the pod starts is the only thing that keeps the autoscaler from stopping that pod.
STARTUP_DELAY_S = 7.0
MARGIN_S = 8.0


async def test_slow_cold_start_through_a_tag_host_answers(local_knative, kube_namespace):
    namespace = kube_namespace
    apply_ready(local_knative, service_manifest("cold", namespace, revision="cold-v1"), "cold", namespace)
    traffic = [
        {"revisionName": "cold-v1", "percent": 100},
        {"revisionName": "cold-v2", "percent": 0, "tag": "candidate"},
    ]
    manifest = service_manifest(
        "cold",
        namespace,
        revision="cold-v2",
        env={"ECHO_STARTUP_DELAY_S": str(STARTUP_DELAY_S)},
        traffic=traffic,
    )
    apply_ready(local_knative, manifest, "cold", namespace)
    deadline = time.monotonic() + 30
    while pod_names(local_knative, namespace, "cold-v2"):
        assert time.monotonic() < deadline, "the idle candidate never scaled to zero"
        await asyncio.sleep(0.2)
    host = f"candidate-cold.{namespace}.{local_knative.domain}"
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=STARTUP_DELAY_S + MARGIN_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(local_knative.ingress_url + "/", headers={"Host": host}) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["X-Revision"] == "cold-v2"
    cold = time.monotonic() - started
    assert cold >= STARTUP_DELAY_S, f"answered in {cold:.1f}s, before the pod could have started"
