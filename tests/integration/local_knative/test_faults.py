"""Fault injection on a real local_knative: each fault kind happens as configured and stops when cleared."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
import yaml

from local_knative.faults.client import FaultClient, FaultClientError
from local_knative.testing import LocalKnative
from tests.integration.local_knative.test_dataplane import apply_ready, kubectl, service_manifest

pytestmark = pytest.mark.integration

KSVC = ("serving.knative.dev", "v1")


@pytest.fixture
def faults(local_knative: LocalKnative) -> Iterator[FaultClient]:
    """The session server's fault client; every rule is removed after the test."""
    client = local_knative.faults
    client.clear()
    yield client
    client.clear()


@pytest.fixture
def core(local_knative: LocalKnative) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(str(local_knative.kubeconfig))
    )


@pytest.fixture
def custom(local_knative: LocalKnative) -> kubernetes.client.CustomObjectsApi:
    api_client = kubernetes.config.new_client_from_config(str(local_knative.kubeconfig))
    return kubernetes.client.CustomObjectsApi(api_client)


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


def raw(local_knative: LocalKnative, path: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """GET an API path with plain urllib; return (status, headers, body) also for errors."""
    try:
        with urllib.request.urlopen(local_knative.api_url + path, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize(
    ("code", "reason"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (504, "Timeout"), (429, "TooManyRequests")],
)
def test_api_error_for_a_verb_and_resource_then_cleared(faults, core, kube_namespace, code, reason) -> None:
    rule = faults.add(verbs=["create"], resources=["configmaps"], namespaces=[kube_namespace], error=code)
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.create_namespaced_config_map(kube_namespace, configmap("a"))
    assert raised.value.status == code
    status = json.loads(raised.value.body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", reason, code)
    assert raised.value.headers["X-Local-Knative-Fault"] == rule["id"]
    # Other verbs and resources are untouched.
    assert core.list_namespaced_config_map(kube_namespace).items == []
    core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    assert faults.rule(rule["id"])["fired"] == 1
    faults.remove(rule["id"])
    core.create_namespaced_config_map(kube_namespace, configmap("a"))


def test_429_carries_retry_after_and_kubectl_retries_it(local_knative, faults, kube_namespace) -> None:
    faults.add(verbs=["create"], resources=["configmaps"], namespaces=[kube_namespace], error=429, count=1)
    status, headers, body = raw(local_knative, "/api/v1/namespaces/default")  # not matched: get, not create
    assert status == 200
    rule = faults.add(
        verbs=["get"], resources=["namespaces"], names=[kube_namespace], error=429, retry_after=3
    )
    status, headers, body = raw(local_knative, f"/api/v1/namespaces/{kube_namespace}")
    assert (status, headers["Retry-After"]) == (429, "3")
    assert json.loads(body)["details"]["retryAfterSeconds"] == 3
    faults.remove(rule["id"])
    # kubectl (client-go) waits Retry-After and tries again, so a single 429 is invisible to it.
    kubectl(local_knative, "create", "configmap", "c", "-n", kube_namespace, "--from-literal=a=b")
    assert faults.status()["rules"][0]["fired"] == 1


def test_409_on_patch_looks_like_a_stale_write(faults, custom, kube_namespace) -> None:
    body = json.loads(service_manifest("conflicted", kube_namespace))
    custom.create_namespaced_custom_object(*KSVC, kube_namespace, "services", body)
    faults.add(verbs=["patch", "update"], resources=["services.serving.knative.dev"], error=409, count=2)
    patch = {"metadata": {"annotations": {"a": "b"}}}
    for _ in range(2):
        with pytest.raises(kubernetes.client.ApiException) as raised:
            custom.patch_namespaced_custom_object(*KSVC, kube_namespace, "services", "conflicted", patch)
        status = json.loads(raised.value.body)
        assert (raised.value.status, status["reason"]) == (409, "Conflict")
        assert (
            'Operation cannot be fulfilled on services.serving.knative.dev "conflicted"' in status["message"]
        )
    # count=2: the third write goes through.
    patched = custom.patch_namespaced_custom_object(*KSVC, kube_namespace, "services", "conflicted", patch)
    assert patched["metadata"]["annotations"]["a"] == "b"


def test_after_lets_the_first_requests_through(faults, core, kube_namespace) -> None:
    faults.add(
        verbs=["get"], resources=["configmaps"], namespaces=[kube_namespace], after=2, count=1, error=500
    )
    core.create_namespaced_config_map(kube_namespace, configmap("a"))
    codes = []
    for _ in range(4):
        try:
            core.read_namespaced_config_map("a", kube_namespace)
            codes.append(200)
        except kubernetes.client.ApiException as error:
            codes.append(error.status)
    assert codes == [200, 200, 500, 200]


def test_delay_and_timeout(faults, core, kube_namespace) -> None:
    rule = faults.add(verbs=["list"], resources=["configmaps"], namespaces=[kube_namespace], delay=1.0)
    started = time.monotonic()
    core.list_namespaced_config_map(kube_namespace)
    assert time.monotonic() - started >= 1.0
    faults.remove(rule["id"])
    # A delay longer than the client's timeout is a timeout for that client; urllib3 retries a read timeout.
    rule = faults.add(
        verbs=["list"], resources=["configmaps"], namespaces=[kube_namespace], delay=3.0, count=1
    )
    core.list_namespaced_config_map(kube_namespace, _request_timeout=0.5)
    assert (faults.rule(rule["id"])["matched"], faults.rule(rule["id"])["fired"]) == (2, 1)
    faults.remove(rule["id"])
    faults.add(verbs=["list"], resources=["configmaps"], namespaces=[kube_namespace], delay=3.0)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as raised:
        core.list_namespaced_config_map(kube_namespace, _request_timeout=0.5)
    assert isinstance(raised.value.reason, urllib3.exceptions.ReadTimeoutError)


def test_reset_drops_the_connection_without_an_answer(local_knative, faults, kube_namespace) -> None:
    faults.add(verbs=["get"], resources=["namespaces"], names=[kube_namespace], reset=True, count=1)
    host = local_knative.api_url.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=10)
    connection.request("GET", f"/api/v1/namespaces/{kube_namespace}")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        connection.getresponse()
    connection.close()
    assert raw(local_knative, f"/api/v1/namespaces/{kube_namespace}")[0] == 200


def test_watch_cut_after_n_events(local_knative, faults, core, kube_namespace) -> None:
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map(kube_namespace, configmap(name))
    faults.add(verbs=["watch"], resources=["configmaps"], namespaces=[kube_namespace], watchEvents=2, count=1)
    path = f"/api/v1/namespaces/{kube_namespace}/configmaps?watch=true&timeoutSeconds=20"
    started = time.monotonic()
    status, _, body = raw(local_knative, path, timeout=30)
    lines = [json.loads(line) for line in body.splitlines()]
    assert status == 200
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "a"), ("ADDED", "b")]
    assert time.monotonic() - started < 10  # cut, not ended by timeoutSeconds
    # The client's watch helper reconnects from the last resourceVersion and sees the rest.
    watch = kubernetes.watch.Watch()
    rv = lines[-1]["object"]["metadata"]["resourceVersion"]
    seen = [
        event["object"].metadata.name
        for event in watch.stream(
            core.list_namespaced_config_map, kube_namespace, resource_version=rv, timeout_seconds=1
        )
    ]
    assert seen == ["c"]


def test_watch_expired_as_an_error_event(local_knative, faults, core, kube_namespace) -> None:
    faults.add(verbs=["watch"], resources=["configmaps"], namespaces=[kube_namespace], error=410, count=1)
    status, _, body = raw(
        local_knative, f"/api/v1/namespaces/{kube_namespace}/configmaps?watch=1", timeout=10
    )
    (event,) = [json.loads(line) for line in body.splitlines()]
    assert status == 200
    assert (event["type"], event["object"]["code"], event["object"]["reason"]) == ("ERROR", 410, "Expired")


def _pattern(core, namespace: str) -> list[int]:
    codes = []
    for _ in range(30):
        try:
            core.list_namespaced_config_map(namespace)
            codes.append(200)
        except kubernetes.client.ApiException as error:
            codes.append(error.status)
    return codes


def test_probability_is_reproducible_with_a_seed(faults, core, kube_namespace) -> None:
    rule = {"verbs": ["list"], "resources": ["configmaps"], "namespaces": [kube_namespace]}
    faults.replace([{**rule, "error": 503, "probability": 0.5}], seed=7)
    first = _pattern(core, kube_namespace)
    assert faults.status()["seed"] == 7
    faults.replace([{**rule, "error": 503, "probability": 0.5}], seed=7)
    assert _pattern(core, kube_namespace) == first
    assert 3 <= first.count(503) <= 27
    faults.replace([{**rule, "error": 503, "probability": 0.5}], seed=8)
    assert _pattern(core, kube_namespace) != first


def test_bad_rules_are_refused_with_the_reason(faults) -> None:
    cases = [
        ({"verbs": ["fetch"], "error": 500}, "unknown verb 'fetch'"),
        ({"error": 200}, "error must be an HTTP status code from 400 to 599"),
        ({"verbs": ["get"]}, "the rule does nothing"),
        ({"layer": "ingress", "verbs": ["get"], "error": 500}, "unknown field 'verbs' for layer ingress"),
        ({"probability": 2, "error": 500}, "probability must be a number from 0 to 1"),
    ]
    for rule, message in cases:
        with pytest.raises(FaultClientError) as raised:
            faults.add(rule)
        assert raised.value.status == 400
        assert message in str(raised.value)
    assert faults.status()["rules"] == []


def test_admin_endpoint_needs_the_admin_token(local_knative, faults) -> None:
    kubeconfig = yaml.safe_load(Path(local_knative.kubeconfig).read_text())
    user_token = kubeconfig["users"][0]["user"]["token"]
    for headers, code in (({}, 401), ({"Authorization": f"Bearer {user_token}"}, 403)):
        request = urllib.request.Request(local_knative.api_url + "/admin/faults", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        assert raised.value.code == code
    assert (local_knative.data_dir / "admin-token").stat().st_mode & 0o077 == 0


def test_off_by_default_and_a_faults_file_at_start(tmp_path) -> None:
    plain = LocalKnative.start(tmp_path / "plain")
    try:
        status, body = plain.request("GET", "/admin/faults")
        assert status == 404
        assert "--fault-injection" in body["message"]
        assert not (plain.data_dir / "admin-token").exists()
    finally:
        plain.stop()
    rules = tmp_path / "faults.yaml"
    rules.write_text(
        "seed: 3\nrules:\n  - {id: no-namespaces, verbs: [list], resources: [namespaces], error: 503}\n"
    )
    scripted = LocalKnative.start(tmp_path / "scripted", extra_args=["--faults", str(rules)])
    try:
        status, body = scripted.request("GET", "/api/v1/namespaces")
        assert (status, body["reason"]) == (503, "ServiceUnavailable")
        assert scripted.faults.status()["seed"] == 3
        # The CLI drives the same endpoint.
        cli = [sys.executable, "-m", "local_knative", "faults", "--data-dir", str(scripted.data_dir)]
        subprocess.run([*cli, "remove", "no-namespaces"], check=True, capture_output=True)
        assert scripted.request("GET", "/api/v1/namespaces")[0] == 200
        added = subprocess.run(
            [*cli, "add", "--verbs", "get", "--resources", "namespaces", "--error", "500", "--count", "1"],
            check=True,
            capture_output=True,
            text=True,
        )
        assert json.loads(added.stdout)["error"] == 500
        assert scripted.request("GET", "/api/v1/namespaces/default")[0] == 500
        refused = subprocess.run([*cli, "add", "--verbs", "get"], capture_output=True, text=True)
        assert refused.returncode == 1
        assert "the rule does nothing" in refused.stderr
    finally:
        scripted.stop()
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{error: 999}]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_knative",
            "serve",
            "--data-dir",
            str(tmp_path / "bad"),
            "--faults",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error must be an HTTP status code" in result.stderr
    assert "Traceback" not in result.stderr


def _ingress_get(local_knative, host: str, timeout: float = 30) -> tuple[int, dict[str, str], float]:
    request = urllib.request.Request(local_knative.ingress_url + "/", headers={"Host": host})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status, dict(response.headers), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), time.monotonic() - started


def _request_count(local_knative, revision: str, code: int) -> float:
    with urllib.request.urlopen(local_knative.metrics_url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("revision_request_count{")
            and f'revision_name="{revision}"' in line
            and f'response_code="{code}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_ingress_errors_and_delay_for_a_revision_then_cleared(local_knative, faults, kube_namespace) -> None:
    manifest = service_manifest(
        "chaos", kube_namespace, annotations={"autoscaling.knative.dev/min-scale": "1"}
    )
    apply_ready(local_knative, manifest, "chaos", kube_namespace)
    host = f"chaos.{kube_namespace}.{local_knative.domain}"
    assert _ingress_get(local_knative, host)[0] == 200
    before = _request_count(local_knative, "chaos-00001", 503)
    rule = faults.add(layer="ingress", namespaces=[kube_namespace], revisions=["chaos-00001"], error=503)
    status, headers, _ = _ingress_get(local_knative, host)
    assert (status, headers["X-Local-Knative-Fault"]) == (503, rule["id"])
    assert _request_count(local_knative, "chaos-00001", 503) == before + 1
    faults.remove(rule["id"])
    faults.add(layer="ingress", names=["chaos"], namespaces=[kube_namespace], delay=0.8)
    status, headers, elapsed = _ingress_get(local_knative, host)
    assert status == 200 and elapsed >= 0.8
    assert headers["X-Revision"] == "chaos-00001"
    faults.clear()
    status, _, elapsed = _ingress_get(local_knative, host)
    assert status == 200 and elapsed < 0.8


def test_killed_pod_is_replaced(local_knative, faults, core, kube_namespace) -> None:
    manifest = service_manifest(
        "victim", kube_namespace, annotations={"autoscaling.knative.dev/min-scale": "1"}
    )
    apply_ready(local_knative, manifest, "victim", kube_namespace)
    selector = "serving.knative.dev/revision=victim-00001"
    (pod,) = core.list_namespaced_pod(kube_namespace, label_selector=selector).items
    assert faults.kill(kube_namespace, "victim-00001") == [pod.metadata.name]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(kube_namespace, label_selector=selector).items
        ready = [
            p
            for p in pods
            if p.metadata.name != pod.metadata.name
            and p.status.container_statuses
            and p.status.container_statuses[0].ready
        ]
        if ready:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"no replacement pod became ready; pods: {[p.metadata.name for p in pods]}")
    host = f"victim.{kube_namespace}.{local_knative.domain}"
    assert _ingress_get(local_knative, host)[0] == 200
    with pytest.raises(FaultClientError) as raised:
        faults.kill(kube_namespace, "no-such-revision")
    assert raised.value.status == 404
