"""Run ``python -m model.serve`` as a real subprocess, for tests and benchmarks.

:class:`ModelServer` starts the server the way local_knative's runtime does (working directory
``include/``, configuration in the environment), with ``PORT=0`` by default so the server picks a free port
itself and reports it in its start-up line: no race with other processes grabbing a pre-chosen port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

INCLUDE_DIR = Path(__file__).resolve().parent.parent
BANNER = re.compile(
    r"^serving model '(?P<name>[^']+)' version (?P<version>\S+) on http://[^:]+:(?P<port>\d+)$"
)
# Settings of the server under test; the caller's shell must not leak them into it.
SERVER_VARIABLES = re.compile(r"^(FAULT_|MODEL_|K_REVISION$|K_SERVICE$|PORT$|LISTEN_HOST$)")


class ModelServerError(RuntimeError):
    """Raise when the model server exits or stays silent instead of starting."""


class ModelServer:
    """A ``python -m model.serve`` subprocess and everything it printed.

    :param env: the server's settings (``MODEL_URI``, ``FAULT_*`` ...); ``PORT`` defaults to ``0``
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        inherited = {key: value for key, value in os.environ.items() if not SERVER_VARIABLES.match(key)}
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model.serve"],
            cwd=INCLUDE_DIR,
            env={**inherited, "PYTHONUNBUFFERED": "1", "PORT": "0", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []  # (seconds since start, line)
        self.port: int | None = None
        self._listening = threading.Event()
        self._output_closed = threading.Event()
        threading.Thread(target=self._read_output, name="model-server-output", daemon=True).start()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic() - self.started_at, line.rstrip("\n")))
            if match := BANNER.match(line.strip()):
                self.port = int(match.group("port"))
                self._listening.set()
        self._output_closed.set()
        self._listening.set()  # the process is gone: wake up whoever waits for the banner

    @property
    def output(self) -> str:
        """Return everything the server printed so far (stdout and stderr)."""
        return "\n".join(line for _, line in self.lines)

    @property
    def url(self) -> str:
        """Return the server's base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 60.0) -> ModelServer:
        """Wait for the start-up banner; raise ModelServerError with the output if the server exits."""
        self._listening.wait(timeout)
        if self.port is None:
            status = self.stop()
            raise ModelServerError(f"model server did not start (exit status {status}):\n{self.output}")
        return self

    def wait_exit(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit by itself and for its output to be read; return the exit status."""
        status = self.process.wait(timeout)
        self._output_closed.wait(timeout)
        return status

    def seconds_until(self, text: str) -> float:
        """Return when the first output line containing ``text`` was read, in seconds since the start."""
        return next(at for at, line in self.lines if text in line)

    def stop(self) -> int:
        """Send SIGTERM (what Kubernetes sends), kill after 15 s, and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._output_closed.wait(15)
        return self.process.returncode
