"""An abuse table: hostile inputs each fail permanently with a clear message before any write or request.

Injection-shaped, oversized and look-alike names, namespaces, env, annotations, images (registry tricks,
``@sha256`` forms), traffic maps (negative, fractional, another namespace's revision), resources over the
guardrails, SLO strings, gate paths and headers that would reach another host or split the request, lock
parameters and rollout ids, and templated values that render to any of these. "Before any write" is
counted by the API server itself: a fault rule that matches every write in the test's namespaces but never
fires (``count: 0``) must match nothing, and a matching ingress rule must see no request (the gate sent no
load). ``test_bad_inputs.py`` keeps the plainer mistakes (a wrong tag, a sum of 90).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from task_context import task_context

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.operators import (
    KnativeDeployRevisionOperator,
    KnativeLockOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
    LoadTestGateOperator,
)
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

REGISTRY = "registry.example.com/knative-rollout"
ECHO = f"{REGISTRY}/echo"
DIGEST = "sha256:" + "a" * 64
NS, OTHER = "<ns>", "<other>"
DEPLOY, TRAFFIC, GATE = KnativeDeployRevisionOperator, KnativeSetTrafficOperator, LoadTestGateOperator
LOCK, ROLLBACK, PROMOTE = KnativeLockOperator, KnativeRollbackOperator, KnativePromoteOperator
SVC = {"service_name": "echo", "namespace": NS}
NEW = {**SVC, "image": f"{ECHO}:v9"}
GUARDED = {"kubernetes_conn_id": "guarded"}
GATE_BASE = {"service_name": "echo", "namespace": NS, "tag": "candidate", "rate": 5, "duration": "1s"}
GATE_OK = {**GATE_BASE, "slo": "error_rate<=0.01"}

CASES: list[Any] = [
    # Names and namespaces: shell, path and template injection, control characters, look-alikes, size.
    ("name-shell", DEPLOY, {**NEW, "service_name": "echo;rm -rf /"}, "DNS-1035"),
    ("name-subshell", DEPLOY, {**NEW, "service_name": "$(whoami)"}, "DNS-1035"),
    ("name-newline", DEPLOY, {**NEW, "service_name": "echo\nx"}, "DNS-1035"),
    ("name-nul", DEPLOY, {**NEW, "service_name": "echo\x00"}, "DNS-1035"),
    ("name-path", DEPLOY, {**NEW, "service_name": "../kube-system/echo"}, "DNS-1035"),
    ("name-cyrillic-e", DEPLOY, {**NEW, "service_name": "\u0435cho"}, "DNS-1035"),
    ("name-fullwidth", DEPLOY, {**NEW, "service_name": "\uff45cho"}, "DNS-1035"),
    ("name-huge", DEPLOY, {**NEW, "service_name": "e" * 100_000}, "at most 52"),
    ("name-empty", DEPLOY, {**NEW, "service_name": ""}, "DNS-1035|empty|service_name"),
    ("name-template-left", DEPLOY, {**NEW, "service_name": "{{ params.x }}"}, "DNS-1035"),
    ("namespace-path", DEPLOY, {**NEW, "namespace": "default/../kube-system"}, "DNS-1123"),
    ("namespace-newline", DEPLOY, {**NEW, "namespace": "default\n"}, "DNS-1123"),
    ("namespace-cyrillic", DEPLOY, {**NEW, "namespace": "d\u0435fault"}, "DNS-1123"),
    ("namespace-forbidden", DEPLOY, {**NEW, "namespace": "kube-system", **GUARDED}, "not allowed"),
    # Env: names that smuggle assignments or newlines, look-alikes, values that are not strings.
    ("env-name-assign", DEPLOY, {**NEW, "env": {"A=B": "x"}}, "variable name"),
    ("env-name-newline", DEPLOY, {**NEW, "env": {"A\nB": "x"}}, "variable name"),
    ("env-name-greek", DEPLOY, {**NEW, "env": {"\u0391PI": "x"}}, "variable name"),
    ("env-name-empty", DEPLOY, {**NEW, "env": {"": "x"}}, "variable name"),
    (
        "env-value-dict",
        DEPLOY,
        {**NEW, "env": {"A": {"valueFrom": {"secretKeyRef": {}}}}},
        "string or a number",
    ),
    ("env-not-a-map", DEPLOY, {**NEW, "env": "A=1;B=2"}, "mapping"),
    ("env-reserved-ksvc", DEPLOY, {**NEW, "env": {"K_SERVICE": "other"}}, "set by Knative"),
    # Annotations: keys outside Kubernetes' syntax, and the provider's own state keys.
    ("annotation-key-space", DEPLOY, {**NEW, "annotations": {"bad key": "x"}}, "annotation"),
    ("annotation-key-newline", DEPLOY, {**NEW, "annotations": {"a\nb": "x"}}, "annotation"),
    (
        "annotation-forges-state",
        DEPLOY,
        {**NEW, "annotations": {"rollout.knative-rollout.dev/stable-revision": "echo-evil"}},
        "rollout.knative-rollout.dev",
    ),
    ("annotation-value-dict", DEPLOY, {**NEW, "annotations": {"a": {"b": 1}}}, "annotation"),
    # Images: registry look-alikes and reference tricks against the allow-list.
    (
        "image-suffix-host",
        DEPLOY,
        {**NEW, "image": "registry.example.com.evil.com/knative-rollout/echo:v1", **GUARDED},
        "registry",
    ),
    (
        "image-prefix-path",
        DEPLOY,
        {**NEW, "image": "registry.example.com/knative-rollout-evil/echo:v1", **GUARDED},
        "registry",
    ),
    (
        "image-dotdot",
        DEPLOY,
        {**NEW, "image": f"{REGISTRY}/../other/echo:v1", **GUARDED},
        "registry|not a valid image",
    ),
    (
        "image-userinfo",
        DEPLOY,
        {**NEW, "image": "registry.example.com@evil.com/x:v1", **GUARDED},
        "registry|not a valid image",
    ),
    ("image-digest-elsewhere", DEPLOY, {**NEW, "image": f"evil.com/x@{DIGEST}", **GUARDED}, "registry"),
    ("image-digest-short", DEPLOY, {**NEW, "image": f"{ECHO}@sha256:abc"}, "not a valid image"),
    ("image-space-flag", DEPLOY, {**NEW, "image": f"{ECHO}:v1 --privileged"}, "not a valid image"),
    ("image-newline", DEPLOY, {**NEW, "image": f"{ECHO}:v1\nevil.com/x"}, "not a valid image"),
    ("image-huge", DEPLOY, {**NEW, "image": f"{ECHO}:" + "v" * 100_000}, "not a valid image"),
    (
        "image-fullwidth-host",
        DEPLOY,
        {**NEW, "image": "registry.ex\uff41mple.com/knative-rollout/echo:v1"},
        "not a valid image",
    ),
    # Resources over the guardrails, and quantities that are not quantities.
    ("cpu-negative", DEPLOY, {**NEW, "resources": {"requests": {"cpu": "-1"}}}, "quantity|negative"),
    (
        "cpu-exponent",
        DEPLOY,
        {**NEW, "resources": {"limits": {"cpu": "1e9"}}, **GUARDED},
        "above the guardrail",
    ),
    (
        "memory-huge",
        DEPLOY,
        {**NEW, "resources": {"requests": {"memory": "999999Ti"}}, **GUARDED},
        "above the guardrail",
    ),
    (
        "resources-unknown-kind",
        DEPLOY,
        {**NEW, "resources": {"requests": {"cpu;rm": "1"}}},
        "resource|quantity",
    ),
    ("resources-not-a-map", DEPLOY, {**NEW, "resources": "cpu=1"}, "mapping|resources"),
    # Traffic: negative, fractional, non-numbers, other namespaces, empty.
    (
        "traffic-negative",
        TRAFFIC,
        {**SVC, "traffic": {"@stable": 110, "@candidate": -10}},
        "0 and 100|negative",
    ),
    ("traffic-bool", TRAFFIC, {**SVC, "traffic": {"@stable": True}}, "integer percent"),
    ("traffic-string-percent", TRAFFIC, {**SVC, "traffic": {"@stable": "100%"}}, "integer percent"),
    ("traffic-inf", TRAFFIC, {**SVC, "traffic": {"@stable": float("inf")}}, "integer percent"),
    ("traffic-nan", TRAFFIC, {**SVC, "traffic": {"@stable": float("nan")}}, "integer percent"),
    (
        "traffic-other-namespace",
        TRAFFIC,
        {**SVC, "traffic": {f"{OTHER}/echo-00001": 100}},
        "DNS-1035|does not exist",
    ),
    ("traffic-empty", TRAFFIC, {**SVC, "traffic": {}}, "sum to 0|empty|no traffic"),
    ("deploy-percent-negative", DEPLOY, {**NEW, "traffic_percent": -5}, "0 and 100"),
    ("deploy-percent-fraction", DEPLOY, {**NEW, "traffic_percent": 12.5}, "whole number|integer"),
    ("deploy-percent-injection", DEPLOY, {**NEW, "traffic_percent": "50; drop"}, "whole number|integer"),
    ("deploy-attempt-negative", DEPLOY, {**NEW, "attempt": "-1"}, "attempt"),
    ("deploy-allow-older-maybe", DEPLOY, {**NEW, "allow_older": "maybe"}, "allow_older"),
    ("rollback-revision-injection", ROLLBACK, {**SVC, "revision": "echo-00001;rm"}, "DNS-1035"),
    ("promote-revision-other-ns", PROMOTE, {**SVC, "revision": f"{OTHER}/echo-00001"}, "DNS-1035"),
    # Lock parameters and rollout ids (the id goes into annotations and the Lease's holder).
    ("lock-on-conflict-steal", LOCK, {**SVC, "rollout_id": "r1", "on_conflict": "steal"}, "on_conflict"),
    ("lock-timeout-negative", LOCK, {**SVC, "rollout_id": "r1", "lock_timeout": "-1"}, "lock_timeout"),
    ("lock-duration-text", LOCK, {**SVC, "rollout_id": "r1", "lock_duration": "forever"}, "lock_duration"),
    ("rollout-id-newline", LOCK, {**SVC, "rollout_id": "r1\nEvil: header"}, "rollout_id"),
    ("rollout-id-huge", LOCK, {**SVC, "rollout_id": "r" * 100_000}, "rollout_id"),
    # The gate: SLOs that are code or nonsense, paths that leave the tag URL or split the request.
    ("slo-code", GATE, {**GATE_BASE, "slo": "__import__('os').system('id')"}, "SLO|slo|threshold"),
    ("slo-sql", GATE, {**GATE_BASE, "slo": "p99<=300ms; DROP TABLE xcom"}, "SLO|slo|threshold"),
    ("slo-overflow", GATE, {**GATE_BASE, "slo": "p99<=1e999ms"}, "SLO|slo|threshold|finite"),
    ("slo-negative", GATE, {**GATE_BASE, "slo": "error_rate<=-1"}, "SLO|slo|threshold|between"),
    ("path-userinfo-host", GATE, {**GATE_OK, "path": "@evil.example.org/steal"}, "path"),
    ("path-crlf", GATE, {**GATE_OK, "path": "/x HTTP/1.1\r\nHost: evil.example.org\r\n\r\nGET /"}, "path"),
    ("path-absolute-url", GATE, {**GATE_OK, "path": "http://evil.example.org/"}, "path"),
    ("header-crlf", GATE, {**GATE_OK, "headers": {"X-A": "1\r\nX-Injected: 1"}}, "header"),
    ("header-name-space", GATE, {**GATE_OK, "headers": {"Bad Name": "1"}}, "header"),
    ("gate-rate-negative", GATE, {**GATE_OK, "rate": -5}, "rate"),
    ("gate-duration-negative", GATE, {**GATE_OK, "duration": "-5s"}, "duration"),
]


def _connect(patch: pytest.MonkeyPatch, kubeconfig: str, namespace: str, ingress: str) -> None:
    guardrails = {
        "allowed_namespaces": [namespace],
        "allowed_registries": [REGISTRY],
        "max_cpu": "1",
        "max_memory": "1Gi",
    }
    for conn_id, extra in (
        ("KUBERNETES_DEFAULT", {"kube_config_path": kubeconfig, "ingress_address": ingress}),
        ("GUARDED", {"kube_config_path": kubeconfig, "guardrails": guardrails}),
    ):
        patch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps({"conn_type": "kubernetes", "extra": extra}))


@pytest.fixture(scope="module")
def prepared(local_knative: Any) -> Iterator[dict[str, Any]]:
    """Return two namespaces, each with a managed Service (the first with a candidate at 0%), and counters."""
    require_binary("kubectl")
    names = {NS: f"abuse-{uuid.uuid4().hex[:8]}", OTHER: f"abuse-other-{uuid.uuid4().hex[:8]}"}
    kubeconfig = str(local_knative.kubeconfig)
    faults = local_knative.faults
    with pytest.MonkeyPatch.context() as patch:
        _connect(patch, kubeconfig, names[NS], local_knative.ingress_url)
        hook = KnativeServingHook()
        for namespace in names.values():
            hook.core_v1_client.create_namespace({"metadata": {"name": namespace}})
        for namespace, image, percent in (
            (names[NS], f"{ECHO}:v1", None),
            (names[NS], f"{ECHO}:v2", 0),
            (names[OTHER], f"{ECHO}:v1", None),
        ):
            KnativeDeployRevisionOperator(
                task_id="setup",
                service_name="echo",
                namespace=namespace,
                image=image,
                deferrable=False,
                **({} if percent is None else {"traffic_percent": percent}),
            ).execute(task_context())
        # Match every write and every ingress request in these namespaces; fire never (count 0).
        writes = faults.add(
            verbs=["create", "update", "patch", "delete", "deletecollection"],
            namespaces=list(names.values()),
            error=500,
            count=0,
        )
        requests = faults.add(layer="ingress", namespaces=list(names.values()), error=500, count=0)
        try:
            yield {
                "names": names,
                "kubeconfig": kubeconfig,
                "writes": writes["id"],
                "requests": requests["id"],
            }
        finally:
            faults.remove(writes["id"])
            faults.remove(requests["id"])


def _substitute(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for marker, name in names.items():
            value = value.replace(marker, name)
        return value
    if isinstance(value, dict):
        return {_substitute(key, names): _substitute(item, names) for key, item in value.items()}
    return value


def _counts(local_knative: Any, prepared: dict[str, Any]) -> tuple[int, int]:
    faults = local_knative.faults
    return faults.rule(prepared["writes"])["matched"], faults.rule(prepared["requests"])["matched"]


def _params() -> list[Any]:
    return [case if hasattr(case, "marks") else pytest.param(*case[1:], id=case[0]) for case in CASES]


@pytest.mark.parametrize(("operator", "kwargs", "message"), _params())
def test_hostile_input_is_refused_before_any_write(
    prepared: dict[str, Any], local_knative: Any, operator: type, kwargs: dict[str, Any], message: str
) -> None:
    arguments = _substitute(kwargs, prepared["names"])
    extra = {} if operator is GATE else {"wait_timeout": 30, "deferrable": False}
    before = _counts(local_knative, prepared)
    with pytest.MonkeyPatch.context() as patch:
        _connect(patch, prepared["kubeconfig"], prepared["names"][NS], local_knative.ingress_url)
        with pytest.raises(Exception) as raised:  # the type is checked below
            task = operator(task_id="abuse", **extra, **arguments)
            task.execute(task_context())
    error = raised.value
    # Permanent (Airflow does not retry it), clear (says what is wrong), and nothing was written or sent.
    assert isinstance(error, AirflowFailException | ValueError | TypeError), repr(error)
    text = str(error)
    assert len(text) < 2000, f"the message echoes the whole hostile value ({len(text)} characters)"
    assert re.search(message, text), text
    assert _counts(local_knative, prepared) == before, f"something was written or requested: {text}"
