"""Watches and API calls through a faulty network: drops resume, Retry-After is waited, 403/404 end at once.

A real TCP proxy (:mod:`tests.integration.knative_rollout.api_proxy`) sits between the client and the
session's local_knative and cuts, resets or answers connections on cue; everything else is real.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import Resource, RevisionSpec, condition, render_service
from knative_rollout.triggers import KnativeRevisionReadyTrigger
from tests.integration.knative_rollout.api_proxy import DISCONNECT, FORWARD, ApiProxy, Reply

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo:v1"
# The backoff alone waits a few hundredths of a second here, so a wait of about a second is Retry-After's.
FAST = {"kubernetes_conn_id": "proxied", "backoff_seconds": 0.05}


def _overloaded(status: int, seconds: int) -> Reply:
    reason = "TooManyRequests" if status == 429 else "ServiceUnavailable"
    return Reply(
        status, reason, "the server is overloaded, try again later", (("Retry-After", str(seconds)),)
    )


@pytest.fixture
async def proxy(local_knative: Any) -> AsyncIterator[ApiProxy]:
    async with ApiProxy(local_knative.api_url) as running:
        yield running


@pytest.fixture
def proxied(proxy: ApiProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the Airflow connection ``proxied`` at the proxy."""
    kubeconfig = proxy.kubeconfig(tmp_path / "proxied-kubeconfig")
    monkeypatch.setenv(
        "AIRFLOW_CONN_PROXIED",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}),
    )
    return kubeconfig


async def _events(trigger: KnativeRevisionReadyTrigger) -> list[dict[str, Any]]:
    return [dict(event.payload) async for event in trigger.run()]


async def _create_echo(namespace: str, **env: str) -> str:
    """Create the echo Service (directly, not through the proxy) and return its revision's name."""
    body = render_service("echo", namespace, RevisionSpec.build(image=ECHO, env=env or None), {})
    created = await asyncio.to_thread(KnativeServingHook().create_service, body)
    assert created is not None
    return str(created["spec"]["template"]["metadata"]["name"])


async def _ready(revision: str, namespace: str, timeout: float = 60) -> None:
    hook = KnativeServingHook()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(hook.find_revision, revision, namespace)
        if found is not None and (condition(found, "Ready") or {}).get("status") == "True":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"revision {revision} was not Ready within {timeout}s")


@pytest.mark.parametrize("reset", [False, True], ids=["cut-mid-stream", "connection-reset"])
async def test_a_dropped_watch_resumes_from_its_resource_version_and_sees_what_changed_meanwhile(
    k8s_connection, proxied, proxy: ApiProxy, kube_namespace: str, reset: bool
) -> None:
    revision = await _create_echo(kube_namespace, ECHO_STARTUP_DELAY_S="4")
    # Enough reconnects (a second apart, as the 503s ask) to outlast a slow start on a loaded machine.
    trigger = KnativeRevisionReadyTrigger(
        name=revision,
        namespace=kube_namespace,
        timeout_seconds=120,
        hook_params={**FAST, "max_reconnects": 90},
    )
    waiting = asyncio.create_task(_events(trigger))
    await proxy.wait_relayed(b'"ADDED"')  # the watch has seen the revision, still starting up
    before_outage = proxy.relayed()

    # The outage: the stream breaks, a reconnect finds the server gone, then overloaded.
    proxy.script = [DISCONNECT]
    proxy.default = _overloaded(503, 1)
    assert proxy.break_connections(reset=reset) == 1
    await _ready(revision, kube_namespace)
    assert not waiting.done(), waiting.result()
    proxy.default = FORWARD

    events = await asyncio.wait_for(waiting, 60)
    assert [event["status"] for event in events] == ["success"], events
    watches = proxy.watches()
    assert {"disconnect", "reply 503"} <= {watch.action for watch in watches}, watches
    assert "resourceVersion" not in watches[0].query
    # Resumed where the broken stream stopped, so the Ready transition came as a change, not a relist.
    seen_versions = set(re.findall(r'"resourceVersion": ?"(\d+)"', before_outage.decode()))
    assert watches[-1].action == "forward"
    assert watches[-1].query.get("resourceVersion") in seen_versions, (watches[-1], seen_versions)


@pytest.mark.parametrize("status", [429, 503])
async def test_a_watch_waits_the_retry_after_of_an_overloaded_api_server(
    k8s_connection, proxied, proxy: ApiProxy, kube_namespace: str, status: int
) -> None:
    revision = await _create_echo(kube_namespace)
    proxy.script = [_overloaded(status, 2)]
    trigger = KnativeRevisionReadyTrigger(
        name=revision, namespace=kube_namespace, timeout_seconds=60, hook_params=FAST
    )
    events = await asyncio.wait_for(_events(trigger), 60)
    assert [event["status"] for event in events] == ["success"], events
    first, second = proxy.watches()[:2]
    assert (first.action, second.action) == (f"reply {status}", "forward")
    assert second.at - first.at >= 1.5  # loosely: most of the 2 s asked, far more than the backoff


async def test_a_forbidden_watch_fails_at_once_naming_the_permission_to_grant(
    proxied, proxy: ApiProxy
) -> None:
    proxy.default = Reply(
        403,
        "Forbidden",
        'revisions.serving.knative.dev is forbidden: User "system:serviceaccount:models:airflow" cannot '
        'watch resource "revisions" in API group "serving.knative.dev" in the namespace "models"',
    )
    trigger = KnativeRevisionReadyTrigger(
        name="echo-1", namespace="models", timeout_seconds=300, hook_params=FAST
    )
    events = await asyncio.wait_for(_events(trigger), 30)
    assert len(events) == 1 and events[0]["status"] == "error", events
    assert (events[0]["permanent"], events[0]["reason"]) == (True, "Forbidden")
    message = events[0]["message"]
    assert message.startswith("watching Revision models/echo-1 failed: ")
    assert 'cannot watch resource "revisions"' in message  # the API's own words
    assert (
        "grant it the verbs get, list and watch on 'revisions' in API group 'serving.knative.dev'" in message
    )
    assert "include/manifests/rbac.yaml" in message
    assert len(proxy.watches()) == 1  # permanent: not retried


class _UnservedRevisionTrigger(KnativeRevisionReadyTrigger):
    """A Revision wait at a Knative version the cluster does not serve, as on a cluster without Knative."""

    resource = Resource("serving.knative.dev", "v9", "revisions", "Revision")


async def test_a_watch_of_a_resource_the_cluster_does_not_serve_fails_at_once(
    proxied, proxy: ApiProxy, kube_namespace: str
) -> None:
    trigger = _UnservedRevisionTrigger(
        name="echo-1", namespace=kube_namespace, timeout_seconds=300, hook_params=FAST
    )
    events = await asyncio.wait_for(_events(trigger), 30)
    assert len(events) == 1 and events[0]["status"] == "error", events
    assert (events[0]["permanent"], events[0]["reason"]) == (True, "NotFound")
    message = events[0]["message"]
    assert "does not serve revisions.serving.knative.dev v9" in message
    assert "Knative Serving is not installed" in message
    assert f"kubectl get namespace {kube_namespace}" in message
    assert len(proxy.watches()) == 1


async def test_a_cluster_that_stays_gone_ends_in_an_error_after_bounded_reconnects(
    proxied, proxy: ApiProxy
) -> None:
    proxy.default = DISCONNECT
    trigger = KnativeRevisionReadyTrigger(
        name="echo-1",
        namespace="default",
        timeout_seconds=300,
        hook_params={**FAST, "max_reconnects": 3},
    )
    events = await asyncio.wait_for(_events(trigger), 60)
    assert len(events) == 1 and events[0]["status"] == "error", events
    assert events[0]["permanent"] is False
    assert "could not be watched 4 times in a row" in events[0]["message"]
    assert "check the connection and that the cluster is up" in events[0]["message"]
    # The first try and 3 reconnects, then it gave up; aiohttp itself sends a GET twice on a disconnect.
    assert len(proxy.watches()) in (4, 8), proxy.watches()


@pytest.mark.parametrize("status", [429, 503])
async def test_the_sync_hook_waits_the_retry_after_before_it_retries(
    proxy: ApiProxy, tmp_path: Path, kube_namespace: str, status: int
) -> None:
    proxy.script = [_overloaded(status, 1)]
    hook = KnativeServingHook(
        config_file=str(proxy.kubeconfig(tmp_path / "kubeconfig")), backoff_seconds=0.01
    )
    assert await asyncio.to_thread(hook.find_service, "echo", kube_namespace) is None
    first, second = proxy.seen[:2]
    assert (first.action, second.action) == (f"reply {status}", "forward")
    assert second.at - first.at >= 0.8  # loosely: the 1 s asked, not the 0.01 s backoff
