"""Real kubectl against a running local_knative: apply, get, patch, wait, watch, describe, logs, delete."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import require_binary

pytestmark = pytest.mark.integration

# Missing from the image catalog: the revision fails fast, no process is started.
UNKNOWN_IMAGE = "registry.example.com/not-in-any-catalog/app:1"
ECHO_IMAGE = "registry.example.com/knative-rollout/echo:v1"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def manifest(name: str, image: str = UNKNOWN_IMAGE) -> str:
    return f"""apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  template:
    spec:
      containers:
        - image: {image}
"""


@pytest.fixture
def kubectl(kubeconfig_path: Path, kube_namespace: str, tmp_path: Path) -> Kubectl:
    binary = require_binary("kubectl")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig_path), "KUBECACHEDIR": str(tmp_path / "kube-cache")}

    def run(*args: str, stdin: str | None = None, check: bool = True, timeout: float = 30):
        result = subprocess.run(
            [binary, "-n", kube_namespace, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    run.env = env  # type: ignore[attr-defined]
    run.binary = binary  # type: ignore[attr-defined]
    return run


def test_apply_get_create_describe_delete(kubectl: Kubectl) -> None:
    first = kubectl("apply", "-f", "-", stdin=manifest("web"))
    assert first.stdout.strip() == "service.serving.knative.dev/web created"
    second = kubectl("apply", "-f", "-", stdin=manifest("web"))
    assert second.stdout.strip() in (
        "service.serving.knative.dev/web configured",
        "service.serving.knative.dev/web unchanged",
    )
    generation = kubectl("get", "ksvc", "web", "-o", "jsonpath={.metadata.generation}").stdout
    assert generation == "1"

    table = kubectl("get", "ksvc").stdout.splitlines()
    assert table[0].split() == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"]
    assert table[1].split()[0] == "web" and ".example.com" in table[1]

    again = kubectl("create", "-f", "-", stdin=manifest("web"), check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr and "already exists" in again.stderr

    described = kubectl("describe", "ksvc", "web").stdout
    assert "Name:" in described and "web" in described and "Events:" in described

    assert kubectl("delete", "ksvc", "web").stdout.strip() == 'service.serving.knative.dev "web" deleted'
    assert "No resources found" in kubectl("get", "ksvc").stderr


def test_patch_merge_and_json(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest("patched"))
    kubectl("patch", "ksvc", "patched", "--type", "merge", "-p", '{"metadata":{"labels":{"tier":"web"}}}')
    kubectl(
        "patch",
        "ksvc",
        "patched",
        "--type",
        "json",
        "-p",
        '[{"op":"add","path":"/metadata/annotations/owner","value":"ml"}]',
    )
    labels = kubectl("get", "ksvc", "patched", "-o", "jsonpath={.metadata.labels.tier}").stdout
    owner = kubectl("get", "ksvc", "patched", "-o", "jsonpath={.metadata.annotations.owner}").stdout
    assert (labels, owner) == ("web", "ml")
    selected = kubectl("get", "ksvc", "-l", "tier=web", "-o", "name").stdout.split()
    assert selected == ["service.serving.knative.dev/patched"]
    strategic = kubectl("patch", "ksvc", "patched", "-p", '{"metadata":{"labels":{"x":"y"}}}', check=False)
    assert strategic.returncode != 0 and "strategic-merge-patch" in strategic.stderr


def test_server_side_apply(kubectl: Kubectl) -> None:
    created = kubectl("apply", "--server-side", "-f", "-", stdin=manifest("ssa"))
    assert created.stdout.strip() == "service.serving.knative.dev/ssa serverside-applied"
    updated = kubectl("apply", "--server-side", "-f", "-", stdin=manifest("ssa", UNKNOWN_IMAGE + "-b"))
    assert updated.returncode == 0
    image = kubectl("get", "ksvc", "ssa", "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == UNKNOWN_IMAGE + "-b"


def test_get_watch_prints_changes(kubectl: Kubectl, kube_namespace: str) -> None:
    kubectl("apply", "-f", "-", stdin=manifest("watched"))
    lines: queue.Queue[str] = queue.Queue()

    def next_line() -> str:
        return lines.get(timeout=30)

    with subprocess.Popen(
        [kubectl.binary, "-n", kube_namespace, "get", "ksvc", "-w"],  # type: ignore[attr-defined]
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=kubectl.env,  # type: ignore[attr-defined]
    ) as watcher:
        assert watcher.stdout is not None
        reader = threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout], daemon=True)
        reader.start()
        try:
            header = next_line()
            assert header.split()[:2] == ["NAME", "URL"]
            assert next_line().split()[0] == "watched"  # the LIST is printed; the watch resumes from its RV
            kubectl("apply", "-f", "-", stdin=manifest("arrived"))
            printed = [next_line()]
            while printed[-1].split()[0] != "arrived":
                printed.append(next_line())
        finally:
            watcher.terminate()
            reader.join(timeout=10)  # before the with block closes the pipe the reader is still reading
    assert not any(line.startswith("NAME") for line in printed)  # one header, however many events


def test_wait_for_ready_then_logs_and_pods(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest("echo", ECHO_IMAGE))
    waited = kubectl("wait", "--for=condition=Ready", "ksvc/echo", "--timeout=60s", timeout=90)
    assert "condition met" in waited.stdout
    revisions = kubectl("get", "revisions").stdout.splitlines()
    assert revisions[0].split()[:4] == ["NAME", "CONFIG", "NAME", "GENERATION"]
    assert revisions[1].split()[:4] == ["echo-00001", "echo", "1", "True"]
    pods = kubectl("get", "pods", "-o", "name").stdout.split()
    assert pods, "a Ready revision has at least one pod"
    table = kubectl("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    logs = kubectl("logs", pods[0]).stdout
    assert "echo-00001" in logs


def test_core_kinds_created_with_protobuf_bodies(kubectl: Kubectl, kube_namespace: str) -> None:
    # `kubectl create namespace|configmap|secret` send application/vnd.kubernetes.protobuf bodies.
    kubectl("create", "configmap", "settings", "--from-literal=threshold=0.9")
    kubectl("create", "secret", "generic", "token", "--from-literal=value=s3cr3t")
    assert kubectl("get", "configmap", "settings", "-o", "jsonpath={.data.threshold}").stdout == "0.9"
    assert kubectl("get", "secret", "token", "-o", "jsonpath={.data.value}").stdout == "czNjcjN0"
    assert "generateName" not in kubectl("get", "configmap", "settings", "-o", "json").stdout
    extra = f"{kube_namespace}-extra"
    assert kubectl("create", "namespace", extra).stdout.strip() == f"namespace/{extra} created"
    assert kubectl("delete", "namespace", extra).stdout.strip() == f'namespace "{extra}" deleted'
