"""Run the peers the benchmarks compare against the same way in every benchmark: nginx and wrk on loopback.

nginx runs in the foreground with one worker, every file it writes in a work directory of its own (so it
needs no root and leaves nothing behind), on a free port; wrk's ``--latency`` output is read into numbers.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

# The shared part of every nginx.conf; a benchmark adds the rest of the ``http`` block (its server).
NGINX_PROLOGUE = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
"""
_LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_nginx(
    workdir: Path, http: str, *, pin: Sequence[str] = (), timeout: float = 10.0, **values: object
) -> tuple[subprocess.Popen[bytes], int]:
    """Start nginx on a free loopback port and wait until it accepts connections; return it and the port.

    :param workdir: an existing directory for nginx's config, pid, logs and temporary files.
    :param http: the rest of the ``http`` block, usually a ``server``, as a ``str.format`` template:
        ``{port}`` is the port to listen on, ``{dir}`` the work directory, other names come from
        ``values``; braces nginx needs are doubled.
    :param pin: a command prefix that pins nginx to a CPU, e.g. ``["taskset", "-c", "0"]``.
    :raises RuntimeError: nginx exited or did not listen within ``timeout`` (with its error output).
    """
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(
        NGINX_PROLOGUE.format(dir=workdir) + http.format(port=port, dir=workdir, **values) + "}\n"
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [*pin, binary, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                errors = (workdir / "error.log").read_text() if (workdir / "error.log").exists() else ""
                raise RuntimeError(f"nginx did not start on port {port} ({config}):\n{errors}") from None
            time.sleep(0.05)


def parse_wrk(output: str) -> dict[str, float]:
    """Return ``rps``, ``p50_ms``, ``p99_ms`` and ``non_2xx`` from wrk's ``--latency`` output."""

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            raise ValueError(f"no {label}% line in wrk output:\n{output}")
        return float(match.group(1)) * _LATENCY_UNITS_MS[match.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if not rps:
        raise ValueError(f"no Requests/sec line in wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }
