"""A restarted local_knative keeps every object as it was and resumes its pods; the counter goes on."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration

GROUP, VERSION = "serving.knative.dev", "v1"
KNATIVE_PLURALS = ("services", "configurations", "routes", "revisions")
ECHO_IMAGE = "registry.example.com/knative-rollout/echo:v1"


def snapshot(api: kubernetes.client.ApiClient) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Return identity, resourceVersion, generation and spec of every object but pods.

    Pods are processes, which a restart ends and the runtime restarts in place (their status moves on); a
    restart that changes nothing must leave every other object, Knative status included, as it was.
    """
    core = kubernetes.client.CoreV1Api(api)
    objects = kubernetes.client.CustomObjectsApi(api)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for plural in KNATIVE_PLURALS:
        for item in objects.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
            found[(plural, item["metadata"]["namespace"], item["metadata"]["name"])] = {
                **item["metadata"],
                "spec": item["spec"],
            }
    for plural, items in (
        ("configmaps", core.list_config_map_for_all_namespaces().items),
        ("namespaces", core.list_namespace().items),
    ):
        for item in items:
            meta = api.sanitize_for_serialization(item.metadata)
            found[(plural, meta.get("namespace", ""), meta["name"])] = meta
    fields = ("uid", "resourceVersion", "generation", "creationTimestamp", "labels", "annotations", "spec")
    return {key: {k: meta.get(k) for k in fields} for key, meta in found.items()}


def settled_snapshot(api: kubernetes.client.ApiClient) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Wait until the controllers stop writing (two equal snapshots 1 s apart) and return the snapshot."""
    previous = snapshot(api)
    for _ in range(20):
        time.sleep(1)
        current = snapshot(api)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the controllers kept writing for 20 s")


def ready_condition(objects: kubernetes.client.CustomObjectsApi, name: str) -> dict[str, Any]:
    """Return the Ready condition of Revision ``team/name`` (an empty dict before there is one)."""
    try:
        revision = objects.get_namespaced_custom_object(GROUP, VERSION, "team", "revisions", name)
    except ApiException as error:
        if error.status == 404:
            return {}
        raise
    conditions = (revision.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return result


def test_restart_keeps_state_and_expires_old_watches(fresh_local_knative: LocalKnative) -> None:
    server = fresh_local_knative
    api = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    core = kubernetes.client.CoreV1Api(api)
    objects = kubernetes.client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "settings"}, "data": {"k": "v"}})
    service = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Service",
        "metadata": {"name": "kept"},
        "spec": {
            "template": {"spec": {"containers": [{"image": "registry.example.com/not-in-any-catalog:1"}]}}
        },
    }
    objects.create_namespaced_custom_object(GROUP, VERSION, "team", "services", service)
    serving = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Service",
        "metadata": {"name": "serving"},
        "spec": {
            "template": {
                # min-scale 1: the revision keeps its pod, so the restart has a process to bring back.
                "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                "spec": {"containers": [{"image": ECHO_IMAGE}]},
            }
        },
    }
    objects.create_namespaced_custom_object(GROUP, VERSION, "team", "services", serving)
    objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "team",
        "services",
        "kept",
        {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}},
    )
    wait_until(
        lambda: ready_condition(objects, "serving-00001").get("status") == "True", "serving-00001 Ready"
    )
    wait_until(lambda: ready_condition(objects, "kept-00002").get("status") == "False", "kept-00002 to fail")
    [pod_before] = core.list_namespaced_pod(
        "team", label_selector="serving.knative.dev/revision=serving-00001"
    ).items
    failed_pods_before = core.list_namespaced_pod(
        "team", label_selector="serving.knative.dev/service=kept"
    ).items
    assert failed_pods_before, "the failed revisions have Pods that say why"
    before = settled_snapshot(api)
    assert before[("services", "team", "kept")]["generation"] == 2
    rv_before = objects.list_namespaced_custom_object(GROUP, VERSION, "team", "services")["metadata"][
        "resourceVersion"
    ]
    api.close()

    server.restart()
    api = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    try:
        core = kubernetes.client.CoreV1Api(api)
        # The serving revision's pod is restarted in place: same Pod, a new process on a new port.
        selector = "serving.knative.dev/revision=serving-00001"
        [pod_after] = wait_until(
            lambda: [
                pod
                for pod in core.list_namespaced_pod("team", label_selector=selector).items
                if pod.status.container_statuses and pod.status.container_statuses[0].restart_count == 1
            ],
            "the serving pod to run again",
        )
        assert pod_after.metadata.name == pod_before.metadata.name
        # Nothing needed to change, so no Knative object (status included) was written.
        assert settled_snapshot(api) == before
        failed_pods_after = core.list_namespaced_pod(
            "team", label_selector="serving.knative.dev/service=kept"
        ).items
        assert [api.sanitize_for_serialization(pod) for pod in failed_pods_after] == [
            api.sanitize_for_serialization(pod) for pod in failed_pods_before
        ]
        request = urllib.request.Request(
            server.ingress_url + "/", headers={"Host": f"serving.team.{server.domain}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["revision"] == "serving-00001"

        created = core.create_namespaced_config_map("team", {"metadata": {"name": "after"}})
        assert int(created.metadata.resource_version) > int(rv_before)

        # Watch history is not persisted: resuming from before the restart is 410, as after etcd compaction.
        with pytest.raises(ApiException) as expired:
            for _event in kubernetes.watch.Watch().stream(
                core.list_namespaced_config_map, "team", resource_version="1", timeout_seconds=2
            ):
                pass
        assert expired.value.status == 410
        seen = [
            event["object"].metadata.name
            for event in kubernetes.watch.Watch().stream(
                core.list_namespaced_config_map, "team", resource_version="0", timeout_seconds=1
            )
        ]
        assert sorted(seen) == ["after", "settings"]
    finally:
        api.close()
