"""A restarted local_knative keeps every object, uid, resourceVersion and generation; the counter goes on."""

from __future__ import annotations

import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration

GROUP, VERSION = "serving.knative.dev", "v1"
KNATIVE_PLURALS = ("services", "configurations", "routes", "revisions")


def snapshot(api: kubernetes.client.ApiClient) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Return identity, generation and spec of every object but pods, plus resourceVersion where it must hold.

    Pods are processes, which a restart ends, and the controllers may then rewrite Knative status (and with
    it the resourceVersion); everything the API server itself keeps must be as it was.
    """
    core = kubernetes.client.CoreV1Api(api)
    objects = kubernetes.client.CustomObjectsApi(api)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for plural in KNATIVE_PLURALS:
        for item in objects.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
            found[(plural, item["metadata"]["namespace"], item["metadata"]["name"])] = {
                **item["metadata"],
                "resourceVersion": None,
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
    objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "team",
        "services",
        "kept",
        {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}},
    )
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
        assert settled_snapshot(api) == before
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
