"""Pytest plugin and process handle for running a real local_knative in tests.

Load it with ``pytest_plugins = ["local_knative.testing"]``. Fixtures:

* ``local_knative`` (session): one server for the whole run, started with the runtime's fast scaling flags
  (:data:`local_knative.runtime.FAST_SCALING_ARGS`: ``--stable-window 3 --scale-to-zero-grace 2
  --progress-deadline 30 --autoscaler-tick 0.2``) so scale-to-zero and failures show up in seconds.
* ``fresh_local_knative`` (function): a server of its own, with its own data directory.
* ``kube_namespace`` (function): a new uniquely named namespace in the session server, deleted afterwards.
* ``kubeconfig_path`` (session): the session server's kubeconfig.

The fixtures' servers run with ``--fault-injection``: ``handle.faults`` (a
:class:`local_knative.faults.client.FaultClient`) scripts faults; scope rules to your test's namespace so
other tests on the session server are not hit, and remove them (``with handle.faults.injected(...)``).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_knative.faults.client import FaultClient

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class LocalKnativeError(RuntimeError):
    """local_knative did not start or stop as expected; the message carries its output."""


class LocalKnative:
    """A ``python -m local_knative serve`` subprocess and the endpoints it announced."""

    def __init__(self, data_dir: Path, *, images: Path | None, extra_args: Sequence[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.images = images
        self.extra_args = tuple(extra_args)
        self.log_path = self.data_dir / "local_knative.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        self.ingress_url = ""
        self.metrics_url = ""
        self.domain = ""
        self.kubeconfig = self.data_dir / "kubeconfig"
        self.ca_file: str | None = None

    @classmethod
    def start(
        cls, data_dir: Path, *, images: Path | None = None, extra_args: Sequence[str] = ()
    ) -> LocalKnative:
        """Start a server on ``data_dir`` and wait until it is ready.

        :param images: the image catalog (None = the bundled default).
        :param extra_args: more ``serve`` flags, e.g. scaling flags.
        :raises LocalKnativeError: when it exits or is not ready within 60 s (with its output).
        """
        handle = cls(data_dir, images=images, extra_args=extra_args)
        handle._spawn()
        return handle

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "local_knative", "serve", "--data-dir", str(self.data_dir)]
        if self.images is not None:
            command += ["--images", str(self.images)]
        return command + list(self.extra_args)

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        endpoints_path = self.data_dir / "endpoints.json"
        endpoints_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self._command(), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalKnativeError(
                    f"local_knative exited with code {self.process.returncode} before it was ready; "
                    f"output:\n{self.output()}"
                )
            if endpoints_path.exists():
                endpoints = json.loads(endpoints_path.read_text())
                if endpoints.get("pid") == self.process.pid:
                    self.api_url = endpoints["api"]
                    self.ingress_url = endpoints["ingress"]
                    self.metrics_url = endpoints["metrics"]
                    self.domain = endpoints["domain"]
                    self.kubeconfig = Path(endpoints["kubeconfig"])
                    self.ca_file = endpoints.get("ca_file")
                    return
            time.sleep(0.05)
        self.stop()
        raise LocalKnativeError(
            f"local_knative was not ready within {START_TIMEOUT:.0f} s; output:\n{self.output()}"
        )

    def output(self, last_lines: int = 80) -> str:
        """Return the last lines of the server's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-last_lines:])

    def stop(self) -> int:
        """Stop the server with SIGTERM (SIGKILL after 20 s) and return its exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None
        return int(process.returncode)

    def restart(self) -> LocalKnative:
        """Stop the server and start it again with the same data directory and flags."""
        self.stop()
        self._spawn()
        return self

    @property
    def faults(self) -> FaultClient:
        """Return a client of the admin endpoint (the server must run with ``--fault-injection``)."""
        return FaultClient.from_data_dir(self.data_dir)

    @property
    def pid(self) -> int | None:
        """Return the server's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Send one JSON request to the API server and return (status, decoded body)."""
        data = json.dumps(body).encode() if body is not None else None
        # The kubeconfig's token: the admin's, which --auth checks (any token passes without it).
        config = yaml.safe_load(self.kubeconfig.read_text())
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config['users'][0]['user']['token']}",
        }
        request = urllib.request.Request(self.api_url + path, data=data, method=method, headers=headers)
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="session")
def local_knative(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKnative]:
    """Run one local_knative for the session, with fast scaling flags."""
    from local_knative.runtime import FAST_SCALING_ARGS

    handle = LocalKnative.start(
        tmp_path_factory.mktemp("local-knative"), extra_args=(*FAST_SCALING_ARGS, "--fault-injection")
    )
    yield handle
    handle.stop()


@pytest.fixture
def fresh_local_knative(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKnative]:
    """Run a local_knative of the test's own, on a new data directory."""
    from local_knative.runtime import FAST_SCALING_ARGS

    handle = LocalKnative.start(
        tmp_path_factory.mktemp("fresh-local-knative"), extra_args=(*FAST_SCALING_ARGS, "--fault-injection")
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def kubeconfig_path(local_knative: LocalKnative) -> Path:
    """Return the kubeconfig of the session's local_knative."""
    return local_knative.kubeconfig


@pytest.fixture
def kube_namespace(local_knative: LocalKnative) -> Iterator[str]:
    """Create a uniquely named namespace in the session's local_knative; delete it (and its objects) after."""
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    status, body = local_knative.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    if status != 201:
        raise LocalKnativeError(f"could not create namespace {name}: HTTP {status} {body}")
    yield name
    local_knative.request("DELETE", f"/api/v1/namespaces/{name}")
