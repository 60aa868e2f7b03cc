"""A table of bad inputs: each fails the task permanently, with a clear message, and changes nothing."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from task_context import task_context

from knative_rollout.exceptions import KnativeGuardrailError, KnativeInputError, KnativeNotFoundError
from knative_rollout.hooks import KnativeServingHook
from knative_rollout.operators import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
    KnativeTeardownOperator,
)
from knative_rollout.resources import RevisionSpec, render_template
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"
MISSING_IMAGE = "registry.example.com/knative-rollout/missing:v1"


def _connect(patch: pytest.MonkeyPatch, kubeconfig: str, namespace: str) -> None:
    """Define the default connection and ``guarded``, the same cluster with guardrails in its extras."""
    guardrails = {
        "allowed_namespaces": [namespace],
        "allowed_registries": ["registry.example.com/knative-rollout"],
        "max_cpu": "1",
        "max_memory": "1Gi",
        "max_gpu": "0",
    }
    patch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig}}),
    )
    patch.setenv(
        "AIRFLOW_CONN_GUARDED",
        json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig, "guardrails": guardrails}}
        ),
    )


@pytest.fixture(scope="module")
def prepared(local_knative: Any) -> Iterator[str]:
    """Return a namespace with a managed Service (stable, candidate, a failed revision) and a foreign one."""
    require_binary("kubectl")
    namespace = f"bad-inputs-{uuid.uuid4().hex[:8]}"
    kubeconfig = str(local_knative.kubeconfig)
    with pytest.MonkeyPatch.context() as patch:
        _connect(patch, kubeconfig, namespace)
        KnativeServingHook().core_v1_client.create_namespace({"metadata": {"name": namespace}})
        foreign = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "foreign", "namespace": namespace},
            "spec": {"template": {"spec": {"containers": [{"image": f"{ECHO}:v1"}]}}},
        }
        subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-"],
            input=json.dumps(foreign),
            text=True,
            check=True,
        )
        for index, image in enumerate((f"{ECHO}:v1", f"{ECHO}:v2")):
            KnativeDeployRevisionOperator(
                task_id=f"setup{index}",
                service_name="echo",
                namespace=namespace,
                image=image,
                deferrable=False,
            ).execute(task_context())
        with pytest.raises(AirflowFailException, match="ContainerMissing"):
            KnativeDeployRevisionOperator(
                task_id="setup-failed",
                service_name="echo",
                namespace=namespace,
                image=MISSING_IMAGE,
                deferrable=False,
            ).execute(task_context())
        yield namespace


def _snapshot(kubeconfig: str, namespace: str) -> dict[str, str]:
    items = []
    for scope in (["-n", namespace], ["-n", "default"]):
        output = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, *scope, "get", "ksvc,revisions", "-o", "json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        items += json.loads(output)["items"]
    return {
        f"{item['metadata']['namespace']}/{item['kind']}/{item['metadata']['name']}": json.dumps(
            [item.get("spec"), item["metadata"].get("labels"), item["metadata"].get("annotations")],
            sort_keys=True,
        )
        for item in items
    }


NS = "<ns>"
FAILED_REVISION = render_template("echo", RevisionSpec.build(image=MISSING_IMAGE))["metadata"]["name"]
DEPLOY = KnativeDeployRevisionOperator
BASE = {"service_name": "echo", "namespace": NS}

CASES: list[tuple[str, type, dict[str, Any], type[Exception], str]] = [
    (
        "name-uppercase",
        DEPLOY,
        {**BASE, "service_name": "Echo", "image": f"{ECHO}:v3"},
        KnativeInputError,
        "DNS-1035",
    ),
    (
        "name-digit-first",
        DEPLOY,
        {**BASE, "service_name": "1echo", "image": f"{ECHO}:v3"},
        KnativeInputError,
        "DNS-1035",
    ),
    (
        "name-too-long",
        DEPLOY,
        {**BASE, "service_name": "e" * 53, "image": f"{ECHO}:v3"},
        KnativeInputError,
        "at most 52",
    ),
    (
        "namespace-invalid",
        DEPLOY,
        {**BASE, "namespace": "Bad_NS", "image": f"{ECHO}:v3"},
        KnativeInputError,
        "DNS-1123",
    ),
    ("image-empty", DEPLOY, {**BASE, "image": ""}, KnativeInputError, "not a valid image reference"),
    (
        "env-reserved",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "env": {"PORT": "1"}},
        KnativeInputError,
        "set by Knative",
    ),
    (
        "env-bad-name",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "env": {"1A": "x"}},
        KnativeInputError,
        "variable name",
    ),
    (
        "tag-invalid",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "tag": "Canary"},
        KnativeInputError,
        "tag 'Canary'",
    ),
    (
        "tag-stable",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "tag": "stable"},
        KnativeInputError,
        "reserved for the stable",
    ),
    (
        "percent-over-100",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "traffic_percent": 150},
        KnativeInputError,
        "0 and 100",
    ),
    (
        "port-reserved",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "container_port": 8012},
        KnativeInputError,
        "queue-proxy",
    ),
    (
        "cpu-not-a-quantity",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "resources": {"requests": {"cpu": "lots"}}},
        KnativeInputError,
        "not a Kubernetes quantity",
    ),
    (
        "autoscaling-unknown",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "autoscaling": {"minScale": 1}},
        KnativeInputError,
        "not a Knative autoscaling setting",
    ),
    (
        "namespace-not-allowed",
        DEPLOY,
        {**BASE, "namespace": "default", "image": f"{ECHO}:v3", "kubernetes_conn_id": "guarded"},
        KnativeGuardrailError,
        "namespace 'default' is not allowed",
    ),
    (
        "registry-not-allowed",
        DEPLOY,
        {**BASE, "image": "docker.io/library/nginx:1", "kubernetes_conn_id": "guarded"},
        KnativeGuardrailError,
        "registry 'docker.io'",
    ),
    (
        "cpu-over-limit",
        DEPLOY,
        {
            **BASE,
            "image": f"{ECHO}:v3",
            "resources": {"requests": {"cpu": "2"}},
            "kubernetes_conn_id": "guarded",
        },
        KnativeGuardrailError,
        "cpu of 2 is above the guardrail limit of 1",
    ),
    (
        "memory-over-limit",
        DEPLOY,
        {
            **BASE,
            "image": f"{ECHO}:v3",
            "resources": {"limits": {"memory": "2Gi"}},
            "kubernetes_conn_id": "guarded",
        },
        KnativeGuardrailError,
        "memory of 2Gi is above",
    ),
    (
        "gpu-over-limit",
        DEPLOY,
        {
            **BASE,
            "image": f"{ECHO}:v3",
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
            "kubernetes_conn_id": "guarded",
        },
        KnativeGuardrailError,
        "nvidia.com/gpu of 1 is above",
    ),
    (
        "connection-missing",
        DEPLOY,
        {**BASE, "image": f"{ECHO}:v3", "kubernetes_conn_id": "no_such_connection"},
        KnativeInputError,
        "connection 'no_such_connection' cannot be read",
    ),
    (
        "service-not-managed",
        DEPLOY,
        {**BASE, "service_name": "foreign", "image": f"{ECHO}:v3"},
        KnativeInputError,
        "not managed by knative-rollout",
    ),
    (
        "traffic-sum-110",
        KnativeSetTrafficOperator,
        {**BASE, "traffic": {"@stable": 90, "@candidate": 20}},
        KnativeInputError,
        "sum to 110, want 100",
    ),
    (
        "traffic-sum-90",
        KnativeSetTrafficOperator,
        {**BASE, "traffic": {"@stable": 90}},
        KnativeInputError,
        "sum to 90, want 100",
    ),
    (
        "traffic-unknown-revision",
        KnativeSetTrafficOperator,
        {**BASE, "traffic": {"@stable": 90, "echo-0000000000": 10}},
        KnativeInputError,
        "'echo-0000000000' does not exist",
    ),
    (
        "traffic-revision-not-ready",
        KnativeSetTrafficOperator,
        {**BASE, "traffic": {"@stable": 90, FAILED_REVISION: 10}},
        KnativeInputError,
        "is not Ready \\(ContainerMissing",
    ),
    (
        "traffic-unknown-alias",
        KnativeSetTrafficOperator,
        {**BASE, "traffic": {"@canary": 100}},
        KnativeInputError,
        "unknown traffic alias",
    ),
    (
        "traffic-fractional",
        KnativeSetTrafficOperator,
        {**BASE, "traffic": {"@stable": 89.5, "@candidate": 10.5}},
        KnativeInputError,
        "integer percent",
    ),
    (
        "service-missing",
        KnativeSetTrafficOperator,
        {**BASE, "service_name": "ghost", "traffic": {"@stable": 100}},
        KnativeNotFoundError,
        "ghost does not exist",
    ),
    (
        "promote-missing",
        KnativePromoteOperator,
        {**BASE, "service_name": "ghost"},
        KnativeNotFoundError,
        "does not exist",
    ),
    (
        "rollback-unknown-revision",
        KnativeRollbackOperator,
        {**BASE, "revision": "echo-0000000000"},
        KnativeInputError,
        "does not exist",
    ),
    (
        "rollback-failed-revision",
        KnativeRollbackOperator,
        {**BASE, "revision": FAILED_REVISION},
        KnativeInputError,
        "not Ready",
    ),
    (
        "rollback-bad-name",
        KnativeRollbackOperator,
        {**BASE, "revision": "Bad"},
        KnativeInputError,
        "DNS-1035",
    ),
    (
        "teardown-negative-keep",
        KnativeTeardownOperator,
        {**BASE, "keep": -1},
        KnativeInputError,
        "keep must be",
    ),
]


@pytest.mark.parametrize(
    ("operator", "kwargs", "error", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_fails_clearly_and_changes_nothing(
    prepared: str,
    local_knative: Any,
    operator: type,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    kubeconfig = str(local_knative.kubeconfig)
    arguments = {key: prepared if value == NS else value for key, value in kwargs.items()}
    before = _snapshot(kubeconfig, prepared)
    with pytest.MonkeyPatch.context() as patch:
        _connect(patch, kubeconfig, prepared)
        with pytest.raises(error, match=message) as raised:
            operator(task_id="bad", deferrable=False, wait_timeout=30, **arguments).execute(task_context())
    # Permanent: Airflow does not retry input that can never work.
    assert isinstance(raised.value, AirflowFailException)
    assert _snapshot(kubeconfig, prepared) == before


def test_guardrails_from_the_airflow_variable_refuse_before_any_call(
    run_dag: Any, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_VAR_KNATIVE_ROLLOUT_GUARDRAILS", json.dumps({"allowed_registries": ["gcr.io/my-project"]})
    )
    result = run_dag(
        f"guarded_{kube_namespace}".replace("-", "_"),
        [
            (
                "deploy",
                "KnativeDeployRevisionOperator",
                {"service_name": "echo", "namespace": kube_namespace, "image": f"{ECHO}:v1"},
            )
        ],
    )
    assert result.task_states == {"deploy": "failed"}
    assert KnativeServingHook().find_service("echo", kube_namespace) is None
