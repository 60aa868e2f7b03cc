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


async def test_a_watch_outlives_the_clients_default_request_timeout(
    k8s_connection, kube_namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cncf provider's async client bounds every request by API_TIMEOUT (60 s), watches included,
    # and cut them off with a bare TimeoutError. Shrunk to 1 s here so the test stays fast.
    from airflow.providers.cncf.kubernetes import kube_client

    monkeypatch.setattr(kube_client, "API_TIMEOUT", 1)
    trigger = KnativeRevisionReadyTrigger(name="echo-0000000000", namespace=kube_namespace, timeout_seconds=4)
    events = await _events(trigger)
    assert [event["status"] for event in events] == ["timeout"], events
    assert "did not get there within 4s" in events[0]["message"]


async def test_a_traffic_wait_ends_when_another_writer_replaced_the_split(
    k8s_connection, kube_namespace
) -> None:
    hook = KnativeServingHook()
    body = render_service(
        "echo", kube_namespace, RevisionSpec.build(image="registry.example.com/knative-rollout/echo:v1"), {}
    )
    created = await asyncio.to_thread(hook.create_service, body)
    assert created is not None
    ours = [{**target, "tag": "ours"} for target in created["spec"]["traffic"]]

    def tag(tag_name: str):
        def mutate(service: dict) -> dict:
            service["spec"]["traffic"] = [
                {**target, "tag": tag_name} for target in service["spec"]["traffic"]
            ]
            return service

        return mutate

    # Our write lands, then another writer's replaces it before our wait starts: the status may never
    # show our split, and the wait must not hang until its timeout.
    await asyncio.to_thread(hook.update_service, "echo", kube_namespace, tag("ours"))
    await asyncio.to_thread(hook.update_service, "echo", kube_namespace, tag("theirs"))
    trigger = KnativeServiceReadyTrigger(
        name="echo", namespace=kube_namespace, timeout_seconds=30, expected_traffic=ours
    )
    events = await asyncio.wait_for(_events(trigger), 30)
    assert [event["status"] for event in events] == ["success"], events
    assert events[0]["superseded"] is True
    assert "another writer replaced this traffic split" in events[0]["message"]
