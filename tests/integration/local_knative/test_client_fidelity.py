"""Client fidelity: typed clients read server-made objects, discovery path variants, Status content type,
schemas deep enough for ``kubectl explain`` and for nested ``fieldValidation`` (Strict, Warn, Ignore)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.error
import urllib.request
from typing import Any

import kubernetes
import kubernetes_asyncio
import pytest

from tests.conftest import require_binary
from tests.integration.local_knative.test_dataplane import apply_ready, kubectl, service_manifest

pytestmark = pytest.mark.integration

TYPO_CONTAINER = {"image": "registry.example.com/knative-rollout/echo:1", "imagePullPolcy": "Always"}


def http(local_knative, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    """Send one request; return (status, headers, decoded JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        local_knative.api_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def typo_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [TYPO_CONTAINER]}}},
    }


def test_typed_clients_read_pods_whose_probe_has_no_port(local_knative, kube_namespace) -> None:
    # The README's hello example: httpGet readiness probe with a path only.
    manifest = service_manifest(
        "typed", kube_namespace, annotations={"autoscaling.knative.dev/min-scale": "1"}
    )
    apply_ready(local_knative, manifest, "typed", kube_namespace)
    core = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(str(local_knative.kubeconfig))
    )
    (pod,) = core.list_namespaced_pod(kube_namespace).items
    container = pod.spec.containers[0]
    port = int(pod.metadata.annotations["local-knative.dev/port"])
    assert container.readiness_probe.http_get.port == port
    assert (container.readiness_probe.http_get.path, container.readiness_probe.period_seconds) == (
        "/healthz",
        10,
    )
    assert container.ports[0].container_port == port
    assert (
        core.read_namespaced_pod(pod.metadata.name, kube_namespace).spec.containers[0].name
        == "user-container"
    )

    async def read_async() -> int:
        api_client = await kubernetes_asyncio.config.new_client_from_config(str(local_knative.kubeconfig))
        async with api_client:
            pods = await kubernetes_asyncio.client.CoreV1Api(api_client).list_namespaced_pod(kube_namespace)
            return int(pods.items[0].spec.containers[0].readiness_probe.http_get.port)

    assert asyncio.run(read_async()) == port


def test_airflow_kubernetes_hook_connects_and_reads_pods(local_knative, kube_namespace) -> None:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    manifest = service_manifest(
        "hooked", kube_namespace, annotations={"autoscaling.knative.dev/min-scale": "1"}
    )
    apply_ready(local_knative, manifest, "hooked", kube_namespace)
    hook = KubernetesHook(conn_id=None, config_file=str(local_knative.kubeconfig))
    ok, message = hook.test_connection()
    assert ok, message
    assert "v1.32" in message
    (pod,) = hook.core_v1_client.list_namespaced_pod(kube_namespace).items
    assert hook.get_pod(pod.metadata.name, kube_namespace).status.phase == "Running"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/version", None),
        ("/version/", None),
        ("/api/", "APIVersions"),
        ("/api/v1/", "APIResourceList"),
        ("/apis/", "APIGroupList"),
        ("/apis/serving.knative.dev", "APIGroup"),
        ("/apis/serving.knative.dev/", "APIGroup"),
        ("/apis/serving.knative.dev/v1/", "APIResourceList"),
        ("/apis/coordination.k8s.io", "APIGroup"),
    ],
)
def test_discovery_path_variants(local_knative, path, kind) -> None:
    status, _, body = http(local_knative, "GET", path)
    assert status == 200
    assert body.get("kind") == kind
    if path.startswith("/version"):
        assert body["gitVersion"].startswith("v1.32")


def test_errors_are_status_objects_with_the_plain_json_content_type(local_knative) -> None:
    for path in ("/apis/serving.knative.dev/v1/namespaces/default/services/missing", "/apis/no.such.group"):
        status, headers, body = http(local_knative, "GET", path)
        assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
        assert headers["Content-Type"] == "application/json"


def test_unknown_nested_fields_strict_warn_ignore(local_knative, kube_namespace) -> None:
    path = f"/apis/serving.knative.dev/v1/namespaces/{kube_namespace}/services"
    status, _, body = http(local_knative, "POST", path + "?fieldValidation=Strict", typo_service("strict"))
    assert (status, body["reason"]) == (400, "BadRequest")
    assert (
        'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolcy"'
        in body["message"]
    )
    # Without fieldValidation the server warns and drops the field, as a real one does.
    status, headers, body = http(local_knative, "POST", path, typo_service("warned"))
    assert status == 201
    assert headers.get_all("Warning") == [
        '299 - "unknown field \\"spec.template.spec.containers[0].imagePullPolcy\\""'
    ]
    assert "imagePullPolcy" not in body["spec"]["template"]["spec"]["containers"][0]
    status, headers, body = http(
        local_knative, "POST", path + "?fieldValidation=Ignore", typo_service("ignored")
    )
    assert status == 201 and headers.get("Warning") is None
    assert "imagePullPolcy" not in body["spec"]["template"]["spec"]["containers"][0]
    # Known fields at every depth pass Strict, including Knative's own.
    good = service_manifest(
        "good", kube_namespace, traffic=[{"latestRevision": True, "percent": 100, "tag": "t"}]
    )
    good_body = json.loads(good)
    good_body["spec"]["template"]["spec"]["containerConcurrency"] = 5
    assert http(local_knative, "POST", path + "?fieldValidation=Strict", good_body)[0] == 201


def test_kubectl_refuses_a_typo_and_explains_nested_fields(local_knative, kube_namespace, tmp_path) -> None:
    manifest = json.dumps({**typo_service("typo"), "metadata": {"name": "typo", "namespace": kube_namespace}})
    result = subprocess.run(
        [require_binary("kubectl"), "apply", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(local_knative.kubeconfig)},
    )
    assert result.returncode == 1
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in result.stderr
    assert kubectl(local_knative, "get", "ksvc", "-n", kube_namespace, "-o", "name") == ""
    explained = kubectl(local_knative, "explain", "ksvc.spec.template.spec.containers.readinessProbe.httpGet")
    assert "port\t<" in explained and "Name or number of the port to access on the container" in explained
    explained = kubectl(local_knative, "explain", "ksvc.spec.traffic")
    assert "revisionName" in explained and "percent" in explained
    explained = kubectl(local_knative, "explain", "pods.spec.containers.image")
    assert "Container image name" in explained


def test_get_yaml_replace_round_trip(local_knative, kube_namespace) -> None:
    apply_ready(local_knative, service_manifest("round", kube_namespace), "round", kube_namespace)
    text = kubectl(local_knative, "get", "ksvc", "round", "-n", kube_namespace, "-o", "yaml")
    assert "replaced" in kubectl(local_knative, "replace", "-f", "-", stdin=text)
