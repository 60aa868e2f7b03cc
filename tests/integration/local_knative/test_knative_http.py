"""Knative admission and controller behaviour over HTTP, through the kubernetes client and local_knative."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from local_knative.testing import LocalKnative
from tests.conftest import require_binary

GROUP, VERSION, PLURAL = "serving.knative.dev", "v1", "services"
ECHO_IMAGE = "registry.example.com/knative-rollout/echo:1"
WEBHOOK_PREFIX = (
    'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: '
)


@pytest.fixture
def custom_api(kubeconfig_path: Path) -> Iterator[client.CustomObjectsApi]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig_path))
    yield client.CustomObjectsApi(api_client)
    api_client.close()


def service_body(name: str, traffic: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"image": ECHO_IMAGE}]}}}
    if traffic is not None:
        spec["traffic"] = traffic
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def condition(obj: dict[str, Any], condition_type: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == condition_type:
            return item
    return {"type": condition_type, "status": "Unknown"}


def wait_for(
    read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """Poll ``read()`` until ``done`` holds; fail with the last object seen."""
    deadline = time.monotonic() + timeout
    while True:
        obj = read()
        if done(obj):
            return obj
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached in {timeout} s; last status: {json.dumps(obj.get('status'))}")
        time.sleep(0.2)


def test_webhook_denial_is_400_with_knative_message(
    custom_api: client.CustomObjectsApi, kube_namespace: str
) -> None:
    body = service_body("iris", traffic=[{"latestRevision": True, "percent": 90}])
    with pytest.raises(ApiException) as raised:
        custom_api.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    assert raised.value.status == 400
    status = json.loads(raised.value.body)
    assert status["reason"] == "BadRequest"
    assert status["message"] == WEBHOOK_PREFIX + "Traffic targets sum to 90, want 100: spec.traffic"


def test_service_becomes_ready_and_serves(
    custom_api: client.CustomObjectsApi, kube_namespace: str, local_knative: LocalKnative
) -> None:
    custom_api.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, service_body("hello"))
    service = wait_for(
        lambda: custom_api.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "hello"),
        lambda obj: condition(obj, "Ready")["status"] == "True",
    )
    status = service["status"]
    assert status["url"] == f"http://hello.{kube_namespace}.{local_knative.domain}"
    assert status["latestReadyRevisionName"] == "hello-00001"
    assert status["traffic"] == [{"revisionName": "hello-00001", "latestRevision": True, "percent": 100}]
    assert service["spec"]["template"]["spec"]["containers"][0]["name"] == "user-container"
    # The ingress routes by the Route status this controller wrote.
    request = urllib.request.Request(
        local_knative.ingress_url + "/", headers={"Host": f"hello.{kube_namespace}.{local_knative.domain}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["X-Revision"] == "hello-00001"


def test_unknown_revision_in_traffic_fails_routes_ready(
    custom_api: client.CustomObjectsApi, kube_namespace: str
) -> None:
    custom_api.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, service_body("ghost"))
    custom_api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        kube_namespace,
        PLURAL,
        "ghost",
        {"spec": {"traffic": [{"revisionName": "ghost-00009", "percent": 100}]}},
    )
    service = wait_for(
        lambda: custom_api.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "ghost"),
        lambda obj: condition(obj, "RoutesReady")["status"] == "False",
    )
    routes_ready = condition(service, "RoutesReady")
    assert routes_ready["reason"] == "RevisionMissing"
    assert routes_ready["message"] == 'Revision "ghost-00009" referenced in traffic not found.'
    assert condition(service, "Ready")["status"] == "False"


def kubectl_apply(
    kubeconfig: Path, namespace: str, manifest: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kubectl_apply_shows_webhook_denials(kubeconfig_path: Path, kube_namespace: str) -> None:
    duplicate_tags = service_body(
        "tagged",
        traffic=[
            {"latestRevision": True, "percent": 100},
            {"tag": "canary", "revisionName": "tagged-00001"},
            {"tag": "canary", "revisionName": "tagged-00002"},
        ],
    )
    result = kubectl_apply(kubeconfig_path, kube_namespace, duplicate_tags)
    assert result.returncode != 0
    assert "Error from server (BadRequest)" in result.stderr
    assert WEBHOOK_PREFIX + 'Multiple definitions for "canary": spec.traffic[1].tag, spec.traffic[2].tag' in (
        result.stderr
    )

    named = service_body("named")
    named["spec"]["template"]["metadata"] = {"name": "named-v1"}
    assert kubectl_apply(kubeconfig_path, kube_namespace, named).returncode == 0, "the first apply is valid"
    named["spec"]["template"]["spec"]["containers"][0]["image"] = ECHO_IMAGE.replace(":1", ":2")
    result = kubectl_apply(kubeconfig_path, kube_namespace, named)
    assert result.returncode != 0
    assert (
        WEBHOOK_PREFIX + "Saw the following changes without a name change (-old +new): "
        "spec.template.metadata.name"
    ) in result.stderr
