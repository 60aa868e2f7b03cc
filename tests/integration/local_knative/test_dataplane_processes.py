"""Pod processes never outlive their local_knative, even when it is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from local_knative.runtime import FAST_SCALING_ARGS, PORT_ANNOTATION
from local_knative.testing import LocalKnative
from tests.conftest import require

pytestmark = pytest.mark.integration

ECHO_IMAGE = "registry.example.com/knative-rollout/echo:1"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
    return result


def pids_with_port(port: int) -> list[int]:
    """Return the processes whose environment holds ``PORT=port``: the processes of that pod."""
    marker = f"PORT={port}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # it ended meanwhile, or it is not ours to read
    return found


def alive(pid: int) -> bool:
    """Tell whether a process still runs (a zombie waiting for its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ready_pod_port(core: kubernetes.client.CoreV1Api, namespace: str, revision: str) -> int | None:
    """Return the port of a Ready pod of ``revision``, or None while it has none."""
    for pod in core.list_namespaced_pod(
        namespace, label_selector=f"serving.knative.dev/revision={revision}"
    ).items:
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
            return int(pod.metadata.annotations[PORT_ANNOTATION])
    return None


def test_pods_end_when_the_server_is_killed(tmp_path: Path) -> None:
    require(sys.platform == "linux", "pods are bound to the server's life with Linux's PR_SET_PDEATHSIG")
    server = LocalKnative.start(tmp_path / "server", extra_args=FAST_SCALING_ARGS)
    pids: list[int] = []
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
        service = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "doomed"},
            "spec": {
                "template": {
                    "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                    "spec": {"containers": [{"image": ECHO_IMAGE}]},
                }
            },
        }
        kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
            "serving.knative.dev", "v1", "default", "services", service
        )
        core = kubernetes.client.CoreV1Api(api)
        port = wait_until(lambda: ready_pod_port(core, "default", "doomed-00001"), "a ready pod")
        api.close()
        pids = wait_until(lambda: pids_with_port(port), "the pod's process")
        assert all(alive(pid) for pid in pids)

        # SIGKILL: the server cannot stop its pods itself; the kernel must end them.
        os.kill(server.pid, signal.SIGKILL)
        server.stop()  # reaps the killed server
        wait_until(lambda: not any(alive(pid) for pid in pids), "the pod processes to end", timeout=10)
    finally:
        for pid in pids:
            if alive(pid):  # the test failed: do not leave the orphan behind
                os.kill(pid, signal.SIGKILL)
        server.stop()
