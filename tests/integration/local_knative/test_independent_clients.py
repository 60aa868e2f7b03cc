"""Clients this project does not use itself (lightkube, kr8s, the cncf provider's resource operators): each
does create, read, list, watch, patch, replace and delete on a ConfigMap and a Knative Service against a real
local_knative and gets 404, 409, 410, 415 and 422 as its own exception types."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import kr8s
import kr8s.asyncio
import lightkube
import pytest
import yaml
from lightkube import codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from local_knative.faults.client import FaultClient
from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration

# An image missing from the catalog: the revision fails fast and no process is started.
IMAGE = "registry.example.com/not-in-any-catalog/app:1"
KService = create_namespaced_resource("serving.knative.dev", "v1", "Service", "services")


def configmap(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": name}},
        "data": {"k": "v"},
    }


def ksvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"template": {"spec": {"containers": [{"image": IMAGE}]}}},
    }


MANIFESTS = {"configmap": configmap, "ksvc": ksvc}


def invalid_manifest(kind: str) -> tuple[dict[str, Any], str]:
    """Return an object the API server refuses with 422, and the field its message names."""
    if kind == "configmap":
        return configmap("Bad_Name"), "metadata.name"
    manifest = ksvc("bad-type")
    manifest["spec"]["template"]["spec"]["containerConcurrency"] = "ten"
    return manifest, "spec.template.spec.containerConcurrency"


async def first_annotated(watch: Any) -> tuple[str, Any]:
    """Return the first watch event whose object carries the test's annotation (a ksvc's status writes come
    first)."""
    async for event, obj in watch:
        if (obj.metadata.annotations or {}).get("step"):
            return event, obj
    raise AssertionError("the watch ended before the edit was seen")


@pytest.fixture
def faults(local_knative: LocalKnative) -> Iterator[FaultClient]:
    client = local_knative.faults
    client.clear()
    yield client
    client.clear()


@pytest.fixture
def lightkube_client(local_knative: LocalKnative) -> Iterator[lightkube.Client]:
    client = lightkube.Client(config=lightkube.KubeConfig.from_file(local_knative.kubeconfig))
    yield client
    client._client._client.close()


def with_step(obj: Any, step: str) -> Any:
    """Return a copy of a lightkube object with the test's annotation set (a generic resource's metadata is
    rebuilt on every access, so it is edited as a dict)."""
    body = obj.to_dict()
    body["metadata"]["annotations"] = {"step": step}
    return codecs.from_dict(body)


async def retry_on_conflict(call: Any, code: Any, error_type: type[Exception]) -> Any:
    """Await ``call()`` again on 409: the Knative controller writes a new ksvc's status meanwhile.

    :param code: returns the HTTP status of a raised ``error_type``.
    """
    for _ in range(20):
        try:
            return await call()
        except error_type as error:
            if code(error) != 409:
                raise
    raise AssertionError("the object kept changing: 20 replaces got 409")


def replace_retrying(client: lightkube.Client, res: Any, name: str, namespace: str) -> Any:
    """Read-modify-replace, again on 409: the Knative controller writes a new ksvc's status meanwhile."""
    for _ in range(20):
        try:
            return client.replace(with_step(client.get(res, name, namespace=namespace), "replaced"))
        except lightkube.ApiError as error:
            if error.status.code != 409:
                raise
    raise AssertionError(f"{name} kept changing: 20 replaces got 409")


# --- lightkube -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["configmap", "ksvc"])
def test_lightkube_sync_crud_watch_and_errors(lightkube_client, faults, kube_namespace, kind) -> None:
    client = lightkube_client
    res = ConfigMap if kind == "configmap" else KService
    created = client.create(codecs.from_dict(MANIFESTS[kind]("lk")), namespace=kube_namespace)
    assert created.metadata.uid and created.metadata.resourceVersion

    got = client.get(res, "lk", namespace=kube_namespace)
    assert got.metadata.uid == created.metadata.uid
    listed = client.list(res, namespace=kube_namespace, labels={"app": "lk"})
    assert [item.metadata.name for item in listed] == ["lk"]

    watch = client.watch(res, namespace=kube_namespace, resource_version=got.metadata.resourceVersion)
    patched = client.patch(
        res,
        "lk",
        {"metadata": {"annotations": {"step": "patched"}}},
        namespace=kube_namespace,
        patch_type=PatchType.MERGE,
    )
    assert patched.metadata.annotations["step"] == "patched"
    # The Knative controller's status writes come first for a ksvc: read up to the patch.
    event, seen = next((e, o) for e, o in watch if (o.metadata.annotations or {}).get("step"))
    assert (event, seen.metadata.resourceVersion) == ("MODIFIED", patched.metadata.resourceVersion)

    replaced = replace_retrying(client, res, "lk", kube_namespace)
    assert replaced.metadata.annotations["step"] == "replaced"
    # 409: a replace from a stale copy, and a second create.
    with pytest.raises(lightkube.ApiError) as conflict:
        client.replace(with_step(patched, "stale"))
    assert (conflict.value.status.code, conflict.value.status.reason) == (409, "Conflict")
    with pytest.raises(lightkube.ApiError) as exists:
        client.create(codecs.from_dict(MANIFESTS[kind]("lk")), namespace=kube_namespace)
    assert (exists.value.status.code, exists.value.status.reason) == (409, "AlreadyExists")
    # 415: strategic merge is for built-in kinds only, as on a real server.
    if kind == "ksvc":
        with pytest.raises(lightkube.ApiError) as unsupported:
            client.patch(
                res,
                "lk",
                {"metadata": {"labels": {"a": "b"}}},
                namespace=kube_namespace,
                patch_type=PatchType.STRATEGIC,
            )
        assert unsupported.value.status.code == 415
    # 422: an invalid object is refused naming the field.
    bad, field = invalid_manifest(kind)
    with pytest.raises(lightkube.ApiError) as invalid:
        client.create(codecs.from_dict(bad), namespace=kube_namespace)
    assert invalid.value.status.code == 422 and field in invalid.value.status.message
    # 410: a watch whose resourceVersion is no longer kept (injected: the session server keeps 5000 events).
    faults.add(verbs=["watch"], namespaces=[kube_namespace], error=410, count=1)
    with pytest.raises(lightkube.ApiError) as expired:
        next(
            iter(
                client.watch(
                    res, namespace=kube_namespace, resource_version=replaced.metadata.resourceVersion
                )
            )
        )
    assert (expired.value.status.code, expired.value.status.reason) == (410, "Expired")

    client.delete(res, "lk", namespace=kube_namespace)
    with pytest.raises(lightkube.ApiError) as missing:
        client.get(res, "lk", namespace=kube_namespace)
    assert (missing.value.status.code, missing.value.status.reason) == (404, "NotFound")


@pytest.mark.parametrize("kind", ["configmap", "ksvc"])
async def test_lightkube_async_crud_watch_and_errors(local_knative, kube_namespace, kind) -> None:
    client = lightkube.AsyncClient(config=lightkube.KubeConfig.from_file(local_knative.kubeconfig))
    res = ConfigMap if kind == "configmap" else KService
    try:
        created = await client.create(codecs.from_dict(MANIFESTS[kind]("alk")), namespace=kube_namespace)
        got = await client.get(res, "alk", namespace=kube_namespace)
        assert got.metadata.uid == created.metadata.uid
        assert [o.metadata.name async for o in client.list(res, namespace=kube_namespace)] == ["alk"]

        watch = client.watch(res, namespace=kube_namespace, resource_version=got.metadata.resourceVersion)
        patched = await client.patch(
            res,
            "alk",
            [{"op": "add", "path": "/metadata/annotations", "value": {"step": "patched"}}],
            namespace=kube_namespace,
            patch_type=PatchType.JSON,
        )
        event, seen = await asyncio.wait_for(first_annotated(watch), 30)
        assert (event, seen.metadata.annotations) == ("MODIFIED", {"step": "patched"})
        await watch.aclose()

        async def replace() -> Any:
            return await client.replace(
                with_step(await client.get(res, "alk", namespace=kube_namespace), "replaced")
            )

        replaced = await retry_on_conflict(replace, lambda e: e.status.code, lightkube.ApiError)
        assert replaced.metadata.annotations == {"step": "replaced"}
        with pytest.raises(lightkube.ApiError) as conflict:
            await client.replace(with_step(patched, "stale"))
        assert conflict.value.status.code == 409

        await client.delete(res, "alk", namespace=kube_namespace)
        with pytest.raises(lightkube.ApiError) as missing:
            await client.get(res, "alk", namespace=kube_namespace)
        assert missing.value.status.code == 404
    finally:
        await client.close()


# --- kr8s ------------------------------------------------------------------------------------------------


def kr8s_class(kind: str, *, asyncio: bool) -> type:
    if kind == "configmap":
        module = kr8s.asyncio.objects if asyncio else kr8s.objects
        return module.ConfigMap
    return kr8s.objects.new_class(
        kind="Service", version="serving.knative.dev/v1", namespaced=True, plural="services", asyncio=asyncio
    )


@pytest.mark.parametrize("kind", ["configmap", "ksvc"])
def test_kr8s_sync_crud_watch_and_errors(local_knative, kube_namespace, kind) -> None:
    api = kr8s.api(kubeconfig=str(local_knative.kubeconfig), namespace=kube_namespace)
    cls = kr8s_class(kind, asyncio=False)
    obj = cls(MANIFESTS[kind]("k8"), api=api)
    obj.create()
    assert obj.metadata.uid

    got = cls.get("k8", namespace=kube_namespace, api=api)
    assert got.metadata.uid == obj.metadata.uid
    plural = "configmaps" if kind == "configmap" else "services.serving.knative.dev"
    assert [o.name for o in api.get(plural, namespace=kube_namespace, label_selector={"app": "k8"})] == ["k8"]

    since = got.metadata.resourceVersion
    got.patch({"metadata": {"annotations": {"step": "patched"}}})
    event, seen = next(
        (e, o)
        for e, o in api.watch(plural, namespace=kube_namespace, since=since)
        if o.annotations.get("step")
    )
    assert (event, seen.annotations["step"]) == ("MODIFIED", "patched")
    got.patch([{"op": "replace", "path": "/metadata/annotations/step", "value": "json"}], type="json")
    got.refresh()
    assert got.annotations["step"] == "json"

    # kr8s raises its own exception types: a ServerError carrying the Status, NotFoundError for 404.
    with pytest.raises(kr8s.ServerError) as exists:
        cls(MANIFESTS[kind]("k8"), api=api).create()
    assert exists.value.response.status_code == 409 and exists.value.status["reason"] == "AlreadyExists"
    bad, field = invalid_manifest(kind)
    with pytest.raises(kr8s.ServerError) as invalid:
        cls(bad, api=api).create()
    assert invalid.value.response.status_code == 422 and field in str(invalid.value)

    got.delete()
    with pytest.raises(kr8s.NotFoundError):
        cls.get("k8", namespace=kube_namespace, api=api)


@pytest.mark.parametrize("kind", ["configmap", "ksvc"])
async def test_kr8s_async_replace_and_errors(local_knative, faults, kube_namespace, kind) -> None:
    api = await kr8s.asyncio.api(kubeconfig=str(local_knative.kubeconfig), namespace=kube_namespace)
    cls = kr8s_class(kind, asyncio=True)
    obj = cls(MANIFESTS[kind]("ak8"), api=api)
    await obj.create()
    got = await cls.get("ak8", namespace=kube_namespace, api=api)
    assert got.metadata.uid == obj.metadata.uid

    # kr8s has no replace verb: a PUT through its own call_api, as its docs suggest for other verbs.
    async def replace() -> dict[str, Any]:
        await got.refresh()
        body = got.raw.to_dict()
        body["metadata"]["annotations"] = {"step": "replaced"}
        async with api.call_api(
            "PUT",
            version=got.version,
            url=f"{got.endpoint}/ak8",
            namespace=kube_namespace,
            content=json.dumps(body),
        ) as response:
            assert response.json()["metadata"]["annotations"] == {"step": "replaced"}
        return body

    body = await retry_on_conflict(replace, lambda e: e.response.status_code, kr8s.ServerError)
    with pytest.raises(kr8s.ServerError) as conflict:
        async with api.call_api(
            "PUT",
            version=got.version,
            url=f"{got.endpoint}/ak8",
            namespace=kube_namespace,
            content=json.dumps(body),
        ):
            pass
    assert conflict.value.response.status_code == 409 and conflict.value.status["reason"] == "Conflict"
    # 415: a patch body in a media type the server does not accept.
    with pytest.raises(kr8s.ServerError) as unsupported:
        async with api.call_api(
            "PATCH",
            version=got.version,
            url=f"{got.endpoint}/ak8",
            namespace=kube_namespace,
            content="{}",
            headers={"Content-Type": "text/plain"},
        ):
            pass
    assert unsupported.value.response.status_code == 415

    # 410: kr8s restarts a watch that ends with an Expired event (what it expects of a real server).
    faults.add(verbs=["watch"], namespaces=[kube_namespace], error=410, count=1)
    plural = "configmaps" if kind == "configmap" else "services.serving.knative.dev"
    watch = api.watch(plural, namespace=kube_namespace, since=got.metadata.resourceVersion)
    event, seen = await asyncio.wait_for(first_annotated(watch), 30)
    assert (event, seen.annotations) == ("MODIFIED", {"step": "replaced"})
    await watch.aclose()

    await got.delete()
    with pytest.raises(kr8s.NotFoundError):
        await cls.get("ak8", namespace=kube_namespace, api=api)


# --- the cncf provider's resource operators --------------------------------------------------------------


def test_cncf_create_and_delete_resource_operators(local_knative, kube_namespace) -> None:
    from airflow.providers.cncf.kubernetes.operators.resource import (
        KubernetesCreateResourceOperator,
        KubernetesDeleteResourceOperator,
    )

    read = httpx.Client(base_url=local_knative.api_url)
    cases = [
        (configmap("op"), False, f"/api/v1/namespaces/{kube_namespace}/configmaps/op"),
        (ksvc("op"), True, f"/apis/serving.knative.dev/v1/namespaces/{kube_namespace}/services/op"),
    ]
    for manifest, custom, path in cases:
        common = {
            "yaml_conf": yaml.safe_dump(manifest),
            "namespace": kube_namespace,
            "custom_resource_definition": custom,
            "kubernetes_conn_id": None,
            "config_file": str(local_knative.kubeconfig),
        }
        KubernetesCreateResourceOperator(task_id="create", **common).execute(context={})
        assert read.get(path).json()["metadata"]["labels"] == {"app": "op"}
        KubernetesDeleteResourceOperator(task_id="delete", **common).execute(context={})
        assert read.get(path).status_code == 404
