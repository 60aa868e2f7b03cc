"""The real ``kubernetes`` and ``kubernetes_asyncio`` clients against a running local_knative."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_asyncio
import pytest
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "serving.knative.dev", "v1", "services"
# An image missing from the catalog: the revision fails fast and no process is started.
IMAGE = "registry.example.com/not-in-any-catalog/app:1"

pytestmark = pytest.mark.integration


def service(name: str, image: str = IMAGE) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    }


@pytest.fixture
def api_client(kubeconfig_path: Path) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig_path))
    yield client
    client.close()


def test_custom_objects_crud(api_client: kubernetes.client.ApiClient, kube_namespace: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(api_client)
    created = objects.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, service("crud"))
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    fetched = objects.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "crud")
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]

    replacement = service("crud", image=IMAGE.replace(":1", ":2"))
    replaced = objects.replace_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "crud", replacement
    )
    assert replaced["metadata"]["generation"] == 2
    assert replaced["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2")

    patched = objects.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "crud", {"metadata": {"labels": {"team": "ml"}}}
    )
    assert patched["metadata"]["labels"]["team"] == "ml" and patched["metadata"]["generation"] == 2

    listed = objects.list_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, label_selector="team=ml"
    )
    assert [item["metadata"]["name"] for item in listed["items"]] == ["crud"]
    assert int(listed["metadata"]["resourceVersion"]) >= int(patched["metadata"]["resourceVersion"])
    everywhere = objects.list_cluster_custom_object(
        GROUP, VERSION, PLURAL, field_selector="metadata.name=crud"
    )
    assert kube_namespace in {item["metadata"]["namespace"] for item in everywhere["items"]}

    objects.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "crud")
    with pytest.raises(ApiException) as missing:
        objects.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "crud")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'services.serving.knative.dev "crud" not found'


def test_errors_are_status_objects_with_the_real_codes(
    api_client: kubernetes.client.ApiClient, kube_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(api_client)
    created = objects.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, service("errs"))

    with pytest.raises(ApiException) as exists:
        objects.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, service("errs"))
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"

    # An unconditional replace moves the resourceVersion on; the originally read one is now stale.
    objects.replace_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "errs", service("errs", image=IMAGE.replace(":1", ":3"))
    )
    with pytest.raises(ApiException) as stale:
        objects.replace_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "errs", created)
    status = json.loads(stale.value.body)
    assert stale.value.status == 409 and status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]

    with pytest.raises(ApiException) as strategic:
        objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "errs",
            {"metadata": {"labels": {"a": "b"}}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert (
        strategic.value.status == 415 and json.loads(strategic.value.body)["reason"] == "UnsupportedMediaType"
    )

    with pytest.raises(ApiException) as list_as_merge:
        objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "errs",
            [{"op": "add", "path": "/metadata/labels", "value": {}}],
        )
    assert list_as_merge.value.status == 422


def test_json_patch_with_content_type_and_a_test_op(
    api_client: kubernetes.client.ApiClient, kube_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(api_client)
    objects.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, service("jp"))
    operations = [
        {"op": "test", "path": "/metadata/name", "value": "jp"},
        {"op": "add", "path": "/metadata/annotations", "value": {"rollout/phase": "canary"}},
    ]
    patched = objects.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "jp", operations, _content_type="application/json-patch+json"
    )
    assert patched["metadata"]["annotations"] == {"rollout/phase": "canary"}
    failing = [{"op": "test", "path": "/metadata/name", "value": "other"}]
    with pytest.raises(ApiException) as error:
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "jp", failing, _content_type="application/json-patch+json"
        )
    assert error.value.status == 422


def test_server_side_apply_creates_then_updates(
    api_client: kubernetes.client.ApiClient, kube_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(api_client)
    body = service("ssa")
    kwargs = {"field_manager": "tests", "_content_type": "application/apply-patch+yaml"}
    # Like a real server, the creating apply answers 201, which this client version returns as None.
    objects.patch_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "ssa", body, **kwargs)
    created = objects.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "ssa")
    body["metadata"]["labels"] = {"applied": "twice"}
    updated = objects.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "ssa", body, **kwargs
    )
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["labels"]["applied"] == "twice"


def test_core_v1_configmaps_treat_strategic_merge_as_merge_and_dry_run_writes_nothing(
    api_client: kubernetes.client.ApiClient, kube_namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    config_map = {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    core.create_namespaced_config_map(kube_namespace, config_map, dry_run="All")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("settings", kube_namespace)
    assert missing.value.status == 404
    core.create_namespaced_config_map(kube_namespace, config_map)
    patched = core.patch_namespaced_config_map("settings", kube_namespace, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert {"default", kube_namespace} <= set(names)


def test_watch_replays_from_a_resource_version(
    api_client: kubernetes.client.ApiClient, kube_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(api_client)
    start_rv = objects.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL)["metadata"][
        "resourceVersion"
    ]
    objects.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, service("w1"))
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "w1", {"metadata": {"labels": {"step": "2"}}}
    )
    objects.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w1")
    watcher = kubernetes.watch.Watch()
    seen = []
    for event in watcher.stream(
        objects.list_namespaced_custom_object,
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        resource_version=start_rv,
        timeout_seconds=5,
    ):
        seen.append(event["type"])
        if event["type"] == "DELETED":
            watcher.stop()
    assert seen[0] == "ADDED" and seen[-1] == "DELETED" and "MODIFIED" in seen


async def test_asyncio_client_crud_and_watch(kubeconfig_path: Path, kube_namespace: str) -> None:
    api_client = await kubernetes_asyncio.config.new_client_from_config(config_file=str(kubeconfig_path))
    async with api_client:
        objects = kubernetes_asyncio.client.CustomObjectsApi(api_client)
        created = await objects.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, service("aio")
        )
        # kubernetes_asyncio sends a dict patch as JSON patch unless told otherwise (refused).
        patched = await objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "aio",
            {"metadata": {"labels": {"client": "asyncio"}}},
            _content_type="application/merge-patch+json",
        )
        assert patched["metadata"]["labels"] == {"client": "asyncio"}
        watcher = kubernetes_asyncio.watch.Watch()
        seen = []
        async with watcher.stream(
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            resource_version=created["metadata"]["resourceVersion"],
            timeout_seconds=5,
        ) as stream:
            async for event in stream:
                seen.append((event["type"], event["object"]["metadata"].get("labels")))
                if ("MODIFIED", {"client": "asyncio"}) in seen:
                    break
        assert ("MODIFIED", {"client": "asyncio"}) in seen
        await objects.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "aio")
        listed = await objects.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL)
        assert listed["items"] == []
