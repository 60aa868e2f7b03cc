"""KnativeServingHook errors: permanent API rejections, retried server errors, conflicts, no cluster."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.exceptions import KnativeApiRejectedError, KnativeTemporaryError
from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import RevisionSpec, render_service

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo:v1"


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def _service_body(namespace: str, name: str = "echo") -> dict[str, Any]:
    return render_service(name, namespace, RevisionSpec.build(image=ECHO), {})


def test_an_api_rejection_is_permanent_and_carries_the_api_message(k8s_connection, kube_namespace) -> None:
    body = _service_body(kube_namespace)
    body["spec"]["traffic"][0]["percent"] = 90
    with pytest.raises(KnativeApiRejectedError, match="Traffic targets sum to 90, want 100") as raised:
        KnativeServingHook().create_service(body)
    assert isinstance(raised.value, AirflowFailException)
    assert KnativeServingHook().find_service("echo", kube_namespace) is None


def test_endless_conflicts_give_up_as_a_temporary_error(k8s_connection, kube_namespace) -> None:
    writer, other = KnativeServingHook(backoff_seconds=0.01, max_attempts=3), KnativeServingHook()
    assert writer.create_service(_service_body(kube_namespace)) is not None

    def mutate(service: dict[str, Any]) -> dict[str, Any]:
        # Another writer always gets in between: every write of ours meets a 409.
        other.update_service("echo", kube_namespace, lambda fresh: _labelled(fresh, "other"))
        return _labelled(service, "writer")

    with pytest.raises(KnativeTemporaryError, match="kept changing") as raised:
        writer.update_service("echo", kube_namespace, mutate)
    assert not isinstance(raised.value, AirflowFailException)
    assert writer.conflicts == 3


def _labelled(service: dict[str, Any], who: str) -> dict[str, Any]:
    labels = service["metadata"].setdefault("labels", {})
    labels[f"writes.test/{who}"] = str(int(labels.get(f"writes.test/{who}", "0")) + 1)
    return service


def test_no_cluster_is_a_temporary_error_that_says_so(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    hook = KnativeServingHook(
        config_file=str(_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")),
        max_attempts=2,
        backoff_seconds=0.01,
    )
    with pytest.raises(KnativeTemporaryError, match="unreachable"):
        hook.find_service("echo", "default")


class _FlakyApi(BaseHTTPRequestHandler):
    """Answers a scripted status per request, then the Service; the real server cannot fail on demand."""

    script: list[int] = []
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        status = type(self).script.pop(0) if type(self).script else 200
        body = (
            {"kind": "Service", "metadata": {"name": "echo"}} if status == 200 else {"message": "overloaded"}
        )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def flaky_api(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FlakyApi.seen = []
    try:
        yield _kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def test_server_errors_are_retried_with_backoff(flaky_api: Path) -> None:
    _FlakyApi.script = [503, 429]
    hook = KnativeServingHook(config_file=str(flaky_api), backoff_seconds=0.01)
    assert hook.find_service("echo", "default") == {"kind": "Service", "metadata": {"name": "echo"}}
    assert len(_FlakyApi.seen) == 3


def test_server_errors_that_persist_become_a_temporary_error(flaky_api: Path) -> None:
    _FlakyApi.script = [503] * 3
    hook = KnativeServingHook(config_file=str(flaky_api), backoff_seconds=0.01, max_attempts=3)
    with pytest.raises(KnativeTemporaryError, match="HTTP 503: overloaded; retry later"):
        hook.find_service("echo", "default")
    assert len(_FlakyApi.seen) == 3
