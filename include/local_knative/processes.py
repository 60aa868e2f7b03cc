"""Start, probe and stop pod processes: the operating-system side of the revision runtime.

Every pod process runs in a session (and process group) of its own, so stopping it also stops what it
started, and on Linux it asks the kernel for ``SIGTERM`` when this server dies (``PR_SET_PDEATHSIG``), so a
pod never outlives its server, even when the server is killed with ``SIGKILL`` and has no chance to clean
up. The kernel sends that signal to the direct child only: an entrypoint that forks (``sh -c`` running
a program in the background) must pass the signal on itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
TAIL_BYTES = 4096

# Bound before any fork: the child must only make system calls, not look up or load anything.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """Return what the child runs between fork and exec to be signalled when ``parent_pid`` dies."""
    prctl = _prctl
    if prctl is None:
        return None
    termination = int(signal.SIGTERM)

    def set_up_child() -> None:
        # Only system calls here (the parent has threads, so nothing that could wait for a lock).
        prctl(PR_SET_PDEATHSIG, termination, 0, 0, 0)
        # The parent may have died before the request took effect: then no signal will ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return set_up_child


async def spawn(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], output: IO[bytes]
) -> asyncio.subprocess.Process:
    """Start a pod process in its own session, bound to this server's life, writing to ``output``.

    :param argv: the command line.
    :param cwd: its working directory.
    :param env: its whole environment.
    :param output: where its stdout and stderr go (the pod log file).
    :raises OSError: when the program cannot be started.
    """
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=output,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),
    )


async def terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    """Send ``SIGTERM`` to the process group, then ``SIGKILL`` if it still runs after ``grace`` seconds."""
    if process.returncode is not None:
        return
    signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        signal_group(process.pid, signal.SIGKILL)
        await process.wait()


def signal_group(pid: int, signum: signal.Signals) -> None:
    """Send ``signum`` to a pod's process group; a group that is gone already is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def last_lines(path: Path | None, count: int) -> str:
    """Return the last non-blank lines a pod printed (a terminated state's message in Kubernetes)."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read().decode("utf-8", "replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    return "\n".join(lines[-count:])


async def probe(port: int, path: str | None) -> bool:
    """Return whether a pod passes its readiness probe: ``GET path`` answering 2xx/3xx, else a TCP connect.

    :param port: the pod's port on 127.0.0.1.
    :param path: the ``httpGet`` path of the container's readiness probe, or None for a TCP probe.
    """
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        if not path:
            return True
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.32\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), 1.0)
        parts = status_line.split()
        return len(parts) >= 2 and parts[1][:1] in (b"2", b"3")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
