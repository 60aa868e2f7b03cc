"""kubectl's everyday commands that need more than CRUD: cluster-info, apply --prune with kubectl's default
allow-list, explain down to a container field, the server's type, required-field and typo checks, and
/openapi/v2."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import require_binary
from tests.integration.local_knative.test_dataplane import kubectl

pytestmark = pytest.mark.integration

IMAGE = "registry.example.com/not-in-any-catalog/app:1"


def kubectl_result(local_knative, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """Run kubectl that may fail; return the whole result."""
    return subprocess.run(
        [require_binary("kubectl"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(local_knative.kubeconfig)},
    )


def ksvc_with(name: str, template_spec: dict) -> str:
    return json.dumps(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"template": {"spec": template_spec}},
        }
    )


def test_cluster_info_lists_kube_system_cluster_services(local_knative) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {"kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
        },
        "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
    }
    kubectl(local_knative, "apply", "-f", "-", stdin=json.dumps(service))
    try:
        out = kubectl(local_knative, "cluster-info")
        assert f"Kubernetes control plane is running at {local_knative.api_url}" in out
        assert "CoreDNS is running at" in out
    finally:
        kubectl(local_knative, "delete", "service", "kube-dns", "-n", "kube-system")
    assert "CoreDNS" not in kubectl(local_knative, "cluster-info")


def test_apply_prune_with_the_default_allow_list(local_knative, kube_namespace) -> None:
    def configmap(name: str) -> str:
        return json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "x"}}}
        )

    prune = ("apply", "-n", kube_namespace, "--prune", "-l", "app=x", "-f", "-")
    kubectl(local_knative, *prune, stdin=configmap("first"))
    out = kubectl(local_knative, *prune, stdin=configmap("second"))
    assert "configmap/second created" in out and "configmap/first pruned" in out
    names = kubectl(local_knative, "get", "configmaps", "-n", kube_namespace, "-l", "app=x", "-o", "name")
    assert names.split() == ["configmap/second"]


def test_explain_a_container_field_of_a_ksvc(local_knative) -> None:
    out = kubectl(local_knative, "explain", "ksvc.spec.template.spec.containers.imagePullPolicy")
    assert "FIELD: imagePullPolicy <string>" in out and "Always" in out


@pytest.mark.parametrize(
    ("template_spec", "prefix", "message"),
    [
        (
            {"containers": [{"image": IMAGE, "imagePullPolcy": "Always"}]},
            "Error from server (BadRequest)",
            'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolcy"',
        ),
        (
            {"containerConcurrency": "ten", "containers": [{"image": IMAGE}]},
            'The Service "bad" is invalid',  # kubectl's own wording for a 422
            'spec.template.spec.containerConcurrency: Invalid value: "string": '
            "spec.template.spec.containerConcurrency in body must be of type integer",
        ),
        (
            {"containers": [{"name": "app"}]},
            "Error from server (BadRequest)",  # Knative's webhook, as on a cluster
            "missing field(s): spec.template.spec.containers[0].image",
        ),
    ],
    ids=["typo", "wrong-type", "no-image"],
)
def test_bad_ksvc_refused_naming_the_field(
    local_knative, kube_namespace, template_spec, prefix, message
) -> None:
    result = kubectl_result(
        local_knative, "apply", "-n", kube_namespace, "-f", "-", stdin=ksvc_with("bad", template_spec)
    )
    assert result.returncode == 1
    assert prefix in result.stderr and message in result.stderr
    assert kubectl(local_knative, "get", "ksvc", "-n", kube_namespace, "-o", "name") == ""


def test_openapi_v2_is_served_as_json(local_knative) -> None:
    out = kubectl(local_knative, "get", "--raw", "/openapi/v2")
    document = json.loads(out)
    assert document["swagger"] == "2.0" and "dev.knative.serving.v1.Service" in document["definitions"]


def test_apply_of_a_list_is_validated_with_openapi_v2_protobuf(local_knative, kube_namespace) -> None:
    # kubectl validates a List's items against /openapi/v2, which it reads as protobuf only.
    manifest = ksvc_with("listed", {"containers": [{"image": IMAGE}]})
    kubectl(local_knative, "apply", "-n", kube_namespace, "-f", "-", stdin=manifest)
    kubectl(local_knative, "create", "configmap", "listed", "-n", kube_namespace, "--from-literal=a=b")
    listed = kubectl(local_knative, "get", "ksvc,configmaps", "-n", kube_namespace, "-o", "yaml")
    out = kubectl(local_knative, "apply", "-f", "-", stdin=listed)
    assert "service.serving.knative.dev/listed" in out and "configmap/listed" in out
    wrong = json.loads(kubectl(local_knative, "get", "ksvc", "-n", kube_namespace, "-o", "json"))
    wrong["items"][0]["spec"]["template"]["spec"]["containerConcurrency"] = "ten"
    result = kubectl_result(local_knative, "apply", "-f", "-", stdin=json.dumps(wrong))
    assert result.returncode == 1 and "must be of type integer" in result.stderr
