"""KnativeController against a real SQLite-backed Store: children, Revisions, conditions, status, settling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from local_knative import kinds
from local_knative.admission import admit
from local_knative.controller import KnativeController
from local_knative.knative.configuration import reconcile_configuration
from local_knative.knative.objects import condition_of
from local_knative.knative.revision import reconcile_revision
from local_knative.knative.route import reconcile_route
from local_knative.knative.service import reconcile_service
from local_knative.store import Store

NS = "default"
DOMAIN = "example.com"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db")


@pytest.fixture
async def controller(store: Store) -> AsyncIterator[KnativeController]:
    running = KnativeController(store, domain=DOMAIN)
    await running.start()
    yield running
    await running.stop()


def ksvc(
    name: str = "iris",
    *,
    image: str = "registry.example.com/m:1",
    traffic: list[dict[str, Any]] | None = None,
    template_name: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return a Service as the API server stores it (after the admission webhook)."""
    template: dict[str, Any] = {
        "metadata": {"annotations": annotations or {}, "labels": {"team": "ml"}},
        "spec": {"containers": [{"image": image}]},
    }
    if template_name:
        template["metadata"]["name"] = template_name
    spec: dict[str, Any] = {"template": template}
    if traffic is not None:
        spec["traffic"] = traffic
    body = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": spec,
    }
    return admit(kinds.KSVC, "CREATE", body, None)


def update_ksvc(store: Store, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the stored Service and write it back through the admission webhook."""
    old = store.get(kinds.KSVC, NS, name)
    new = {key: value for key, value in old.items() if key != "status"}
    change(new)
    store.replace(kinds.KSVC, admit(kinds.KSVC, "UPDATE", new, old))


def write_pod(
    store: Store,
    revision_name: str,
    *,
    ready: bool = True,
    state: dict[str, Any] | None = None,
    suffix: str = "abcde",
) -> dict[str, Any]:
    """Write a Pod of the Revision the way the runtime does (contract: labels, owner, status)."""
    revision = store.get(kinds.REVISION, NS, revision_name)
    labels = revision["metadata"]["labels"]
    container: dict[str, Any] = {
        "name": "user-container",
        "ready": ready,
        "restartCount": 0,
        "image": revision["spec"]["containers"][0]["image"],
        "state": state or {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{revision_name}-deployment-{suffix}",
            "namespace": NS,
            "labels": {
                "serving.knative.dev/revision": revision_name,
                "serving.knative.dev/revisionUID": revision["metadata"]["uid"],
                "serving.knative.dev/configuration": labels["serving.knative.dev/configuration"],
                "serving.knative.dev/service": labels["serving.knative.dev/service"],
                "app": revision_name,
            },
            "ownerReferences": [
                {
                    "apiVersion": "serving.knative.dev/v1",
                    "kind": "Revision",
                    "name": revision_name,
                    "uid": revision["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "user-container", "image": container["image"]}]},
        "status": {
            "phase": "Running" if ready or "running" in container["state"] else "Pending",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [container],
        },
    }
    return store.create(kinds.POD, pod)


def cond(store: Store, kind: Any, name: str, condition_type: str = "Ready") -> tuple[str, str, str]:
    condition = condition_of(store.get(kind, NS, name), condition_type)
    return condition["status"], condition.get("reason", ""), condition.get("message", "")


async def ready_service(
    store: Store, controller: KnativeController, name: str = "iris", **kwargs: Any
) -> None:
    store.create(kinds.KSVC, ksvc(name, **kwargs))
    await controller.settled()
    write_pod(store, store.get(kinds.CONFIGURATION, NS, name)["status"]["latestCreatedRevisionName"])
    await controller.settled()


async def test_service_owns_configuration_and_route(store: Store, controller: KnativeController) -> None:
    store.create(kinds.KSVC, ksvc(traffic=[{"latestRevision": True, "percent": 100}]))
    await controller.settled()
    service = store.get(kinds.KSVC, NS, "iris")
    for kind in (kinds.CONFIGURATION, kinds.ROUTE):
        child = store.get(kind, NS, "iris")
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "name": "iris",
                "uid": service["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert child["metadata"]["labels"]["serving.knative.dev/service"] == "iris"
        assert child["metadata"]["labels"]["app"] == "iris"
    assert store.get(kinds.CONFIGURATION, NS, "iris")["spec"]["template"] == service["spec"]["template"]
    assert store.get(kinds.ROUTE, NS, "iris")["spec"]["traffic"] == [
        {"latestRevision": True, "percent": 100, "configurationName": "iris"}
    ]


async def test_revision_per_template_generation(store: Store, controller: KnativeController) -> None:
    store.create(kinds.KSVC, ksvc(annotations={"autoscaling.knative.dev/min-scale": "1"}))
    await controller.settled()
    config = store.get(kinds.CONFIGURATION, NS, "iris")
    revision = store.get(kinds.REVISION, NS, "iris-00001")
    assert revision["metadata"]["ownerReferences"][0]["uid"] == config["metadata"]["uid"]
    assert revision["metadata"]["ownerReferences"][0]["controller"] is True
    labels = revision["metadata"]["labels"]
    assert (
        labels["serving.knative.dev/configuration"],
        labels["serving.knative.dev/service"],
        labels["serving.knative.dev/configurationGeneration"],
        labels["team"],
    ) == ("iris", "iris", "1", "ml")
    assert revision["metadata"]["annotations"] == {"autoscaling.knative.dev/min-scale": "1"}
    assert revision["spec"] == config["spec"]["template"]["spec"]

    write_pod(store, "iris-00001")
    await controller.settled()
    update_ksvc(
        store,
        "iris",
        lambda s: s["spec"].update(
            traffic=[
                {"revisionName": "iris-00001", "percent": 100},
                {"latestRevision": True, "percent": 0, "tag": "latest"},
            ]
        ),
    )
    await controller.settled()
    assert [r["metadata"]["name"] for r in store.list(kinds.REVISION, NS)[0]] == ["iris-00001"], (
        "a traffic-only edit must not create a Revision"
    )

    update_ksvc(
        store,
        "iris",
        lambda s: s["spec"]["template"]["spec"]["containers"][0].update(image="registry.example.com/m:2"),
    )
    await controller.settled()
    assert (
        store.get(kinds.REVISION, NS, "iris-00002")["metadata"]["labels"][
            "serving.knative.dev/configurationGeneration"
        ]
        == "2"
    )
    assert store.get(kinds.CONFIGURATION, NS, "iris")["status"]["latestCreatedRevisionName"] == "iris-00002"


async def test_named_template_creates_that_revision(store: Store, controller: KnativeController) -> None:
    await ready_service(
        store, controller, template_name="iris-v1", traffic=[{"revisionName": "iris-v1", "percent": 100}]
    )
    assert store.try_get(kinds.REVISION, NS, "iris-v1") is not None
    assert cond(store, kinds.KSVC, "iris") == ("True", "", "")


async def test_ready_service_status(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    update_ksvc(
        store,
        "iris",
        lambda s: s["spec"].update(
            traffic=[
                {"latestRevision": True, "percent": 100},
                {"revisionName": "iris-00001", "tag": "stable"},
            ]
        ),
    )
    await controller.settled()
    service = store.get(kinds.KSVC, NS, "iris")
    status = service["status"]
    assert status["observedGeneration"] == service["metadata"]["generation"]
    assert status["latestCreatedRevisionName"] == status["latestReadyRevisionName"] == "iris-00001"
    assert status["url"] == "http://iris.default.example.com"
    assert status["address"] == {"url": "http://iris.default.svc.cluster.local"}
    assert status["traffic"] == [
        {"revisionName": "iris-00001", "latestRevision": True, "percent": 100},
        {
            "tag": "stable",
            "revisionName": "iris-00001",
            "latestRevision": False,
            "url": "http://stable-iris.default.example.com",
        },
    ]
    assert store.get(kinds.ROUTE, NS, "iris")["status"]["traffic"] == status["traffic"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "ConfigurationsReady": "True",
        "RoutesReady": "True",
        "Ready": "True",
    }
    assert cond(store, kinds.ROUTE, "iris", "CertificateProvisioned") == (
        "True",
        "TLSNotEnabled",
        "external-domain-tls is not enabled",
    )
    for condition_type in ("AllTrafficAssigned", "IngressReady", "Ready"):
        assert cond(store, kinds.ROUTE, "iris", condition_type) == ("True", "", "")
    assert cond(store, kinds.CONFIGURATION, "iris") == ("True", "", "")
    for condition_type in ("ResourcesAvailable", "ContainerHealthy", "Ready", "Active"):
        assert cond(store, kinds.REVISION, "iris-00001", condition_type) == ("True", "", "")
    revision = store.get(kinds.REVISION, NS, "iris-00001")
    assert (revision["status"]["actualReplicas"], revision["status"]["desiredReplicas"]) == (1, 1)


async def test_controller_settles(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    settled_at = store.resource_version
    controller.reconcile_service(NS, "iris")
    controller.reconcile_configuration(NS, "iris")
    controller.reconcile_route(NS, "iris")
    controller.reconcile_revision(NS, "iris-00001")
    await asyncio.sleep(0.2)
    await controller.settled()
    assert store.resource_version == settled_at, "reconciling an unchanged world must not write"

    # A restarted controller reconciles every object once, and still has nothing to write.
    await controller.stop()
    restarted = KnativeController(store, domain=DOMAIN)
    await restarted.start()
    await restarted.settled()
    await restarted.stop()
    assert store.resource_version == settled_at


async def test_scaled_to_zero_revision_stays_ready(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    store.delete(kinds.POD, NS, "iris-00001-deployment-abcde")
    await controller.settled()
    assert cond(store, kinds.REVISION, "iris-00001") == ("True", "", "")
    assert cond(store, kinds.REVISION, "iris-00001", "Active") == (
        "False",
        "NoTraffic",
        "The target is not receiving traffic.",
    )
    assert store.get(kinds.REVISION, NS, "iris-00001")["status"]["actualReplicas"] == 0
    assert cond(store, kinds.KSVC, "iris") == ("True", "", "")


FAILURE_CASES = [
    pytest.param(
        {"waiting": {"reason": "ErrImagePull", "message": "image not in catalog images.yaml"}},
        "ContainerHealthy",
        "ContainerMissing",
        'Unable to fetch image "registry.example.com/m:1": image not in catalog images.yaml',
        id="ErrImagePull",
    ),
    pytest.param(
        {"terminated": {"exitCode": 3, "reason": "Error", "message": "Traceback: boom"}},
        "ContainerHealthy",
        "ExitCode3",
        "Container failed with: Traceback: boom",
        id="terminated",
    ),
    pytest.param(
        {"waiting": {"reason": "ProgressDeadlineExceeded", "message": "readiness probe never passed"}},
        "ResourcesAvailable",
        "ProgressDeadlineExceeded",
        "Initial scale was never achieved",
        id="ProgressDeadlineExceeded",
    ),
]


@pytest.mark.parametrize(("state", "condition_type", "reason", "message"), FAILURE_CASES)
async def test_pod_failures_reach_revision_configuration_and_service(
    store: Store,
    controller: KnativeController,
    state: dict[str, Any],
    condition_type: str,
    reason: str,
    message: str,
) -> None:
    store.create(kinds.KSVC, ksvc())
    await controller.settled()
    assert cond(store, kinds.REVISION, "iris-00001") == ("Unknown", "Deploying", "")
    write_pod(store, "iris-00001", ready=False, state=state)
    await controller.settled()
    assert cond(store, kinds.REVISION, "iris-00001", condition_type) == ("False", reason, message)
    assert cond(store, kinds.REVISION, "iris-00001") == ("False", reason, message)
    config_ready = ("False", "RevisionFailed", f'Revision "iris-00001" failed with message: {message}.')
    assert cond(store, kinds.CONFIGURATION, "iris") == config_ready
    assert cond(store, kinds.KSVC, "iris", "ConfigurationsReady") == config_ready
    assert cond(store, kinds.ROUTE, "iris", "AllTrafficAssigned") == (
        "False",
        "RevisionMissing",
        'Configuration "iris" does not have any ready Revision.',
    )
    assert cond(store, kinds.KSVC, "iris")[0] == "False"


async def test_unknown_revision_in_traffic(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    update_ksvc(
        store, "iris", lambda s: s["spec"].update(traffic=[{"revisionName": "iris-00009", "percent": 100}])
    )
    await controller.settled()
    missing = ("False", "RevisionMissing", 'Revision "iris-00009" referenced in traffic not found.')
    assert cond(store, kinds.ROUTE, "iris", "AllTrafficAssigned") == missing
    assert cond(store, kinds.KSVC, "iris", "RoutesReady") == missing
    assert cond(store, kinds.KSVC, "iris") == missing
    assert store.get(kinds.ROUTE, NS, "iris")["status"]["traffic"][0]["revisionName"] == "iris-00001", (
        "traffic must stay where it was while the target is missing"
    )


async def test_not_ready_target_gets_no_traffic(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    update_ksvc(
        store,
        "iris",
        lambda s: s["spec"]["template"]["spec"]["containers"][0].update(image="registry.example.com/m:2"),
    )
    await controller.settled()
    update_ksvc(
        store,
        "iris",
        lambda s: s["spec"].update(
            traffic=[
                {"revisionName": "iris-00001", "percent": 50},
                {"revisionName": "iris-00002", "percent": 50},
            ]
        ),
    )
    await controller.settled()
    assert cond(store, kinds.ROUTE, "iris", "AllTrafficAssigned") == (
        "Unknown",
        "RevisionMissing",
        'Revision "iris-00002" is not yet ready.',
    )
    assert [t["revisionName"] for t in store.get(kinds.ROUTE, NS, "iris")["status"]["traffic"]] == [
        "iris-00001"
    ]
    assert cond(store, kinds.KSVC, "iris", "ConfigurationsReady")[0] == "Unknown"

    write_pod(store, "iris-00002", ready=False, state={"terminated": {"exitCode": 1, "message": "bad model"}})
    await controller.settled()
    assert cond(store, kinds.ROUTE, "iris", "AllTrafficAssigned") == (
        "False",
        "RevisionMissing",
        'Revision "iris-00002" failed to become ready.',
    )

    store.delete(kinds.POD, NS, "iris-00002-deployment-abcde")
    write_pod(store, "iris-00002", suffix="fghij")
    await controller.settled()
    assert [
        (t["revisionName"], t["percent"]) for t in store.get(kinds.KSVC, NS, "iris")["status"]["traffic"]
    ] == [("iris-00001", 50), ("iris-00002", 50)]
    assert cond(store, kinds.KSVC, "iris") == ("True", "", "")


def test_out_of_date_and_traffic_not_migrated(store: Store) -> None:
    # The reconcilers are run one at a time, without the work queue, in the order that exposes each
    # transient state.
    def reconcile_revision_from_store(name: str) -> None:
        pods = store.list(kinds.POD, NS, label_selector=f"serving.knative.dev/revision={name}")[0]
        reconcile_revision(store, NS, name, pods)

    store.create(kinds.KSVC, ksvc())
    reconcile_service(store, NS, "iris")
    assert cond(store, kinds.KSVC, "iris", "ConfigurationsReady") == (
        "Unknown",
        "OutOfDate",
        "The Configuration is still working to reflect the latest desired specification.",
    )
    assert cond(store, kinds.KSVC, "iris", "RoutesReady") == (
        "Unknown",
        "OutOfDate",
        "The Route is still working to reflect the latest desired specification.",
    )

    reconcile_configuration(store, NS, "iris")
    # The Route is resolved before the Configuration has a ready Revision...
    reconcile_route(store, NS, "iris", domain=DOMAIN)
    write_pod(store, "iris-00001")
    reconcile_revision_from_store("iris-00001")
    reconcile_configuration(store, NS, "iris")
    reconcile_service(store, NS, "iris")
    assert cond(store, kinds.KSVC, "iris", "ConfigurationsReady") == ("True", "", "")
    assert cond(store, kinds.KSVC, "iris", "RoutesReady") == (
        "Unknown",
        "RevisionMissing",
        'Configuration "iris" is waiting for a Revision to become ready.',
    )
    reconcile_route(store, NS, "iris", domain=DOMAIN)
    reconcile_service(store, NS, "iris")
    assert cond(store, kinds.KSVC, "iris") == ("True", "", "")

    # ...and now the Configuration moves on to a new ready Revision before the Route has caught up.
    update_ksvc(store, "iris", lambda s: s["spec"]["template"]["spec"]["containers"][0].update(image="m:2"))
    reconcile_service(store, NS, "iris")
    reconcile_configuration(store, NS, "iris")
    write_pod(store, "iris-00002")
    reconcile_revision_from_store("iris-00002")
    reconcile_configuration(store, NS, "iris")
    reconcile_service(store, NS, "iris")
    assert cond(store, kinds.KSVC, "iris", "RoutesReady") == (
        "Unknown",
        "TrafficNotMigrated",
        "Traffic is not yet migrated to the latest revision.",
    )
    reconcile_route(store, NS, "iris", domain=DOMAIN)
    reconcile_service(store, NS, "iris")
    assert cond(store, kinds.KSVC, "iris") == ("True", "", "")
    assert store.get(kinds.KSVC, NS, "iris")["status"]["traffic"][0]["revisionName"] == "iris-00002"


async def test_latest_ready_revision_deleted(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    update_ksvc(store, "iris", lambda s: s["spec"]["template"]["spec"]["containers"][0].update(image="m:2"))
    await controller.settled()
    store.delete(kinds.REVISION, NS, "iris-00001")
    await controller.settled()
    assert cond(store, kinds.CONFIGURATION, "iris") == (
        "False",
        "RevisionDeleted",
        'Revision "iris-00001" was deleted.',
    )


async def test_children_not_owned(store: Store, controller: KnativeController) -> None:
    foreign = admit(
        kinds.CONFIGURATION,
        "CREATE",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Configuration",
            "metadata": {"name": "iris", "namespace": NS},
            "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}},
        },
        None,
    )
    store.create(kinds.CONFIGURATION, foreign)
    store.create(kinds.KSVC, ksvc())
    await controller.settled()
    assert cond(store, kinds.KSVC, "iris", "ConfigurationsReady") == (
        "False",
        "NotOwned",
        'There is an existing Configuration "iris" that we do not own.',
    )
    assert cond(store, kinds.KSVC, "iris")[1] == "NotOwned"


async def test_revision_name_taken(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller, name="other", template_name="other-v1")
    await ready_service(store, controller, name="iris")
    # A Revision named as iris would name its next one, but owned by another Configuration.
    taken = store.get(kinds.REVISION, NS, "other-v1")
    taken["metadata"] = {
        "name": "iris-v2",
        "namespace": NS,
        "labels": {},
        "ownerReferences": taken["metadata"]["ownerReferences"],
    }
    taken.pop("status")
    store.create(kinds.REVISION, taken)
    update_ksvc(store, "iris", lambda s: s["spec"]["template"].update(metadata={"name": "iris-v2"}))
    await controller.settled()
    assert cond(store, kinds.KSVC, "iris", "RoutesReady") == (
        "False",
        "RevisionNameTaken",
        'The revision name "iris-v2" is taken by a conflicting Revision, so traffic will not be migrated',
    )
    assert cond(store, kinds.CONFIGURATION, "iris") == (
        "False",
        "RevisionFailed",
        'Revision creation failed with message: revisions.serving.knative.dev "iris-v2" already exists.',
    )


async def test_standalone_route_to_missing_configuration(store: Store, controller: KnativeController) -> None:
    body = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "edge", "namespace": NS},
        "spec": {"traffic": [{"configurationName": "nowhere", "percent": 100}]},
    }
    store.create(kinds.ROUTE, admit(kinds.ROUTE, "CREATE", body, None))
    await controller.settled()
    assert cond(store, kinds.ROUTE, "edge", "AllTrafficAssigned") == (
        "False",
        "ConfigurationMissing",
        'Configuration "nowhere" referenced in traffic not found.',
    )
    assert cond(store, kinds.ROUTE, "edge", "IngressReady") == (
        "Unknown",
        "IngressNotConfigured",
        "Ingress has not yet been reconciled.",
    )
    # The Route is looked at again when the Configuration it names appears.
    await ready_service(store, controller, name="nowhere")
    assert cond(store, kinds.ROUTE, "edge") == ("True", "", "")


async def test_deleting_service_deletes_children(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    store.delete(kinds.KSVC, NS, "iris")
    await controller.settled()
    for kind in (kinds.CONFIGURATION, kinds.ROUTE, kinds.REVISION, kinds.POD):
        assert store.list(kind, NS)[0] == [], f"{kind.kind} left behind"


async def test_restart_rebuilds_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    first = KnativeController(store, domain=DOMAIN)
    await first.start()
    store.create(kinds.KSVC, ksvc())
    await first.settled()
    await first.stop()
    store.close()

    store = Store(tmp_path / "state.db")
    write_pod(store, "iris-00001")  # the runtime came back before the controller did
    second = KnativeController(store, domain=DOMAIN)
    await second.start()
    await second.settled()
    assert cond(store, kinds.KSVC, "iris") == ("True", "", "")
    await second.stop()
    store.close()


async def test_many_services_settle_quickly(store: Store, controller: KnativeController) -> None:
    started = time.monotonic()
    for index in range(100):
        store.create(kinds.KSVC, ksvc(f"svc-{index}"))
    await controller.settled(timeout=30)
    assert len(store.list(kinds.REVISION, NS)[0]) == 100
    assert time.monotonic() - started < 15


async def test_events_record_transitions_once(store: Store, controller: KnativeController) -> None:
    await ready_service(store, controller)
    store.create(kinds.KSVC, ksvc("broken"))
    await controller.settled()
    write_pod(store, "broken-00001", ready=False, state={"terminated": {"exitCode": 1, "message": "boom"}})
    await controller.settled()
    events = sorted(
        (e["involvedObject"]["kind"], e["involvedObject"]["name"], e["type"], e["reason"], e["message"])
        for e in store.list(kinds.EVENT, NS)[0]
    )
    assert events == [
        ("Configuration", "broken", "Normal", "Created", 'Created Revision "broken-00001"'),
        (
            "Configuration",
            "broken",
            "Warning",
            "LatestCreatedFailed",
            'Latest created revision "broken-00001" has failed',
        ),
        ("Configuration", "iris", "Normal", "ConfigurationReady", "Configuration becomes ready"),
        ("Configuration", "iris", "Normal", "Created", 'Created Revision "iris-00001"'),
        (
            "Configuration",
            "iris",
            "Normal",
            "LatestReadyUpdate",
            'LatestReadyRevisionName updated to "iris-00001"',
        ),
        ("Service", "broken", "Normal", "Created", 'Created Configuration "broken"'),
        ("Service", "broken", "Normal", "Created", 'Created Route "broken"'),
        ("Service", "iris", "Normal", "Created", 'Created Configuration "iris"'),
        ("Service", "iris", "Normal", "Created", 'Created Route "iris"'),
    ]


async def test_conflicting_write_is_retried(store: Store, controller: KnativeController) -> None:
    # A client edits the Service while the controller is between reading it and writing its status: the
    # subscriber below makes that edit at the exact moment the controller creates the Configuration.
    def edit_service_once(event_type: str, kind: Any, obj: dict[str, Any]) -> None:
        if kind == kinds.CONFIGURATION and event_type == "ADDED":
            service = store.get(kinds.KSVC, NS, "iris")
            service["metadata"]["labels"]["edited"] = "yes"
            store.replace(kinds.KSVC, service)

    store.subscribe(edit_service_once)
    store.create(kinds.KSVC, ksvc())
    await controller.settled()
    status = store.get(kinds.KSVC, NS, "iris")["status"]
    assert status["latestCreatedRevisionName"] == "iris-00001"
    assert store.get(kinds.CONFIGURATION, NS, "iris")["metadata"]["labels"]["edited"] == "yes"
