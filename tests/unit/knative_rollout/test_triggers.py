"""Triggers serialize to their real import path and decide from Knative objects exactly as documented."""

from __future__ import annotations

import importlib

import pytest

from knative_rollout.triggers import (
    KnativeLockFreeTrigger,
    KnativeRevisionReadyTrigger,
    KnativeServiceReadyTrigger,
)

HOOK_PARAMS = {"kubernetes_conn_id": "my_k8s"}


def _roundtrip(trigger):
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs), classpath, kwargs


LOCK = {"service": "iris", "namespace": "models", "rollout_id": "dag/run/rollout", "duration_seconds": 60}


def test_serialize_revision_trigger() -> None:
    trigger = KnativeRevisionReadyTrigger(
        name="iris-abc",
        namespace="models",
        timeout_seconds=30,
        hook_params=HOOK_PARAMS,
        carry={"x": 1},
        renew_lock=LOCK,
    )
    again, classpath, kwargs = _roundtrip(trigger)
    assert classpath == "knative_rollout.triggers.KnativeRevisionReadyTrigger"
    assert kwargs == {
        "name": "iris-abc",
        "namespace": "models",
        "timeout_seconds": 30,
        "hook_params": HOOK_PARAMS,
        "carry": {"x": 1},
        "renew_lock": LOCK,
    }
    assert again.serialize() == trigger.serialize()


def test_serialize_lock_trigger() -> None:
    trigger = KnativeLockFreeTrigger(
        name="iris-rollout-lock",
        namespace="models",
        rollout_id="d/r/g",
        timeout_seconds=9,
        hook_params=HOOK_PARAMS,
    )
    again, classpath, kwargs = _roundtrip(trigger)
    assert classpath == "knative_rollout.triggers.KnativeLockFreeTrigger"
    assert kwargs["rollout_id"] == "d/r/g"
    assert again.serialize() == trigger.serialize()


@pytest.mark.parametrize(
    ("holder", "renewed", "free"),
    [
        (None, "2026-12-01T08:00:00.000000Z", True),
        ("d/r/g", "2999-01-01T00:00:00.000000Z", True),
        ("other", "2999-01-01T00:00:00.000000Z", False),
        ("other", "2020-01-01T00:00:00.000000Z", True),
    ],
)
def test_lock_trigger_decides_on_the_holder_and_expiry(holder: str | None, renewed: str, free: bool) -> None:
    trigger = KnativeLockFreeTrigger(
        name="iris-rollout-lock", namespace="ns", rollout_id="d/r/g", timeout_seconds=1
    )
    lease = {"spec": {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": 60}}
    event = trigger.decide(lease)
    assert (event is not None) == free
    if event:
        assert event.payload["status"] == "success" and event.payload["previous_holder"] == holder


def test_serialize_service_trigger() -> None:
    expected = [{"revisionName": "iris-a", "percent": 100, "tag": "stable"}]
    trigger = KnativeServiceReadyTrigger(
        name="iris", namespace="models", timeout_seconds=5, expected_traffic=expected, hook_params=HOOK_PARAMS
    )
    again, classpath, kwargs = _roundtrip(trigger)
    assert classpath == "knative_rollout.triggers.KnativeServiceReadyTrigger"
    assert kwargs["expected_traffic"] == expected
    assert again.serialize() == trigger.serialize()


def _revision(status: str | None, reason: str = "", message: str = "") -> dict:
    conditions = (
        [] if status is None else [{"type": "Ready", "status": status, "reason": reason, "message": message}]
    )
    return {"metadata": {"name": "iris-abc"}, "status": {"conditions": conditions}}


@pytest.mark.parametrize(
    ("obj", "status", "in_message"),
    [
        (_revision("True"), "success", "is Ready"),
        (
            _revision("False", "ContainerMissing", "image x not found"),
            "failed",
            "ContainerMissing: image x not found",
        ),
        (_revision("False", "ExitCode1", "Container failed with: boom"), "failed", "ExitCode1"),
        (None, "failed", "was deleted"),
    ],
)
def test_revision_trigger_decides(obj: dict | None, status: str, in_message: str) -> None:
    trigger = KnativeRevisionReadyTrigger(
        name="iris-abc", namespace="ns", timeout_seconds=1, carry={"k": "v"}
    )
    event = trigger.decide(obj)
    assert event is not None
    assert event.payload["status"] == status
    assert in_message in event.payload["message"]
    assert event.payload["k"] == "v" and event.payload["name"] == "iris-abc"


@pytest.mark.parametrize("obj", [_revision(None), _revision("Unknown", "Deploying")])
def test_revision_trigger_keeps_waiting(obj: dict) -> None:
    assert KnativeRevisionReadyTrigger(name="iris-abc", namespace="ns", timeout_seconds=1).decide(obj) is None


def _service(
    generation: int,
    observed: int,
    traffic: list[dict],
    routes: str = "True",
    ready: str = "True",
    spec_traffic: list[dict] | None = None,
) -> dict:
    return {
        "metadata": {"name": "iris", "generation": generation},
        "spec": {"traffic": WANT if spec_traffic is None else spec_traffic},
        "status": {
            "observedGeneration": observed,
            "url": "http://iris.ns.example.com",
            "traffic": traffic,
            "conditions": [{"type": "RoutesReady", "status": routes}, {"type": "Ready", "status": ready}],
        },
    }


WANT = [
    {"revisionName": "a", "percent": 90, "tag": "stable"},
    {"revisionName": "b", "percent": 10, "tag": "candidate"},
]
SERVED = [{**target, "url": f"http://{target['tag']}-iris.ns.example.com"} for target in WANT]


@pytest.mark.parametrize(
    ("obj", "decided"),
    [
        (_service(2, 2, SERVED), "success"),
        (_service(2, 2, SERVED, ready="False"), "success"),  # a failed newer revision does not block traffic
        (_service(3, 2, SERVED), None),  # the controller has not seen the latest spec yet
        (_service(2, 2, SERVED[:1]), None),
        (_service(2, 2, SERVED, routes="Unknown"), None),
    ],
)
def test_service_trigger_waits_for_the_expected_traffic(obj: dict, decided: str | None) -> None:
    trigger = KnativeServiceReadyTrigger(
        name="iris", namespace="ns", timeout_seconds=1, expected_traffic=WANT
    )
    event = trigger.decide(obj)
    assert (event.payload["status"] if event else None) == decided
    if event:
        assert event.payload["url"] == "http://iris.ns.example.com"
        assert event.payload["traffic"] == SERVED


def test_service_trigger_ends_when_another_writer_replaced_the_split() -> None:
    trigger = KnativeServiceReadyTrigger(
        name="iris", namespace="ns", timeout_seconds=1, expected_traffic=WANT
    )
    theirs = [{"revisionName": "a", "percent": 100, "tag": "stable"}]
    # Not decided while the controller has not reconciled the newer spec yet.
    assert trigger.decide(_service(3, 2, SERVED, spec_traffic=theirs)) is None
    event = trigger.decide(_service(3, 3, theirs, spec_traffic=theirs))
    assert event is not None and event.payload["status"] == "success"
    assert event.payload["superseded"] is True and event.payload["traffic"] == theirs
    assert "another writer replaced this traffic split" in event.payload["message"]


def test_service_trigger_without_traffic_waits_for_ready() -> None:
    trigger = KnativeServiceReadyTrigger(name="iris", namespace="ns", timeout_seconds=1)
    assert trigger.decide(_service(1, 1, SERVED, ready="Unknown")) is None
    assert trigger.decide(_service(1, 1, SERVED)).payload["status"] == "success"
    failed = _service(1, 1, SERVED, ready="False")
    failed["status"]["conditions"].append(
        {"type": "ConfigurationsReady", "status": "False", "reason": "RevisionFailed", "message": "boom"}
    )
    assert trigger.decide(failed).payload["status"] == "failed"
