"""Triggers on a real local_knative: a watch that times out, a change seen live, an unreachable cluster."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import RevisionSpec, render_service
from knative_rollout.triggers import KnativeRevisionReadyTrigger, KnativeServiceReadyTrigger

pytestmark = pytest.mark.integration


async def _events(trigger) -> list[dict]:
    return [dict(event.payload) async for event in trigger.run()]


async def test_watch_times_out_with_one_event_saying_what_it_saw(k8s_connection, kube_namespace) -> None:
    trigger = KnativeRevisionReadyTrigger(name="echo-0000000000", namespace=kube_namespace, timeout_seconds=2)
    events = await _events(trigger)
    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert "did not get there within 2s; last seen: it does not exist" in events[0]["message"]


async def test_watch_sees_the_service_become_ready(k8s_connection, kube_namespace) -> None:
    body = render_service(
        "echo", kube_namespace, RevisionSpec.build(image="registry.example.com/knative-rollout/echo:v1"), {}
    )
    trigger = KnativeServiceReadyTrigger(
        name="echo", namespace=kube_namespace, timeout_seconds=60, expected_traffic=body["spec"]["traffic"]
    )
    # The watch starts before the Service exists, so success can only come from a live event.
    waiting = asyncio.create_task(_events(trigger))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(KnativeServingHook().create_service, body)
    events = await asyncio.wait_for(waiting, 60)
    assert [event["status"] for event in events] == ["success"]
    assert events[0]["url"] == f"http://echo.{kube_namespace}.example.com"


async def test_unreachable_cluster_yields_an_error_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOWHERE",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}),
    )
    trigger = KnativeRevisionReadyTrigger(
        name="echo-1", namespace="default", timeout_seconds=5, hook_params={"kubernetes_conn_id": "nowhere"}
    )
    events = await _events(trigger)
    assert len(events) == 1 and events[0]["status"] == "error"
    assert "watching Revision default/echo-1 failed" in events[0]["message"]
