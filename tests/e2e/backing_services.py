"""PostgreSQL 15 and Redis 7 as plain processes, for the CeleryExecutor topology of the end-to-end tests.

They are the services of ``docker-compose.yaml`` (``postgres``, ``redis``) run from Debian's packages
(``postgresql``, ``redis-server``; ``.ci/run`` installs them) on free loopback ports, each with its data in
a new temporary folder removed on stop. PostgreSQL refuses to run as root, so when the tests run as root
(CI does) its programs run as the ``postgres`` user that the Debian package creates, and the data folder
is a fresh ``mkdtemp`` (pytest's own temporary folders are private to root) handed to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
DATABASE = "airflow"
USER = "airflow"
PASSWORD = "airflow"


class BackingServiceError(RuntimeError):
    """A database or broker did not start as expected; the message carries its output."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    """Return the folder of PostgreSQL's server programs (``initdb``, ``postgres``), newest first; or None.

    Debian keeps them out of PATH, in ``/usr/lib/postgresql/<major>/bin``.
    """
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def redis_server_binary() -> str | None:
    """Return the path of ``redis-server``, or None."""
    return shutil.which("redis-server")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BackingServiceError(
                f"{what} exited with code {process.returncode}; output:\n{log.read_text(errors='replace')}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise BackingServiceError(f"{what} did not listen on port {port} in {START_TIMEOUT:.0f}s")


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> int:
    if process is None:
        return 0
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


class PostgresServer:
    """A PostgreSQL cluster of its own: ``initdb``, ``postgres`` on a free port, a database for Airflow.

    :param bin_dir: folder of ``initdb`` and ``postgres`` (default: :func:`postgres_bin_dir`).
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or postgres_bin_dir()
        if found is None:
            raise BackingServiceError("PostgreSQL is not installed: apt-get install postgresql")
        self.bin_dir = found
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="knative-rollout-pg-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Airflow uses (``postgresql+psycopg2://``, as in docker-compose.yaml)."""
        return f"postgresql+psycopg2://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self) -> tuple[list[str], dict[str, int]]:
        """Return (command prefix, chown ids): run as ``postgres`` when we are root, else as ourselves."""
        if os.geteuid() != 0:
            return [], {}
        owner = pwd.getpwnam("postgres")
        return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups"], {
            "uid": owner.pw_uid,
            "gid": owner.pw_gid,
        }

    def start(self) -> PostgresServer:
        """Create the cluster, start the server and create the ``airflow`` role and database."""
        prefix, ids = self._as_owner()
        if ids:
            os.chown(self.root, ids["uid"], ids["gid"])
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if ids:
            os.chown(password_file, ids["uid"], ids["gid"])
        initdb = subprocess.run(
            [
                *prefix, str(self.bin_dir / "initdb"), "--pgdata", str(self.data_dir), "--username", USER,
                "--pwfile", str(password_file), "--auth", "scram-sha-256", "--encoding", "UTF8",
                "--no-sync", "--no-instructions",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise BackingServiceError(f"initdb exited {initdb.returncode}:\n{initdb.stdout}\n{initdb.stderr}")
        with self.log_path.open("ab") as log:
            if ids:
                os.chown(self.log_path, ids["uid"], ids["gid"])
            # fsync off and a small footprint: a throw-away test database on a shared 2-core machine.
            self.process = subprocess.Popen(
                [
                    *prefix, str(self.bin_dir / "postgres"), "-D", str(self.data_dir),
                    "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.root),
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=300", "-c", "shared_buffers=64MB",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            _wait_for_port(self.port, self.process, "postgres", self.log_path)
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_database(self) -> None:
        # Connect with the driver Airflow uses; the server may accept TCP a moment before it accepts logins.
        import psycopg2

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                connection = psycopg2.connect(
                    host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres"
                )
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # CREATE DATABASE refuses to run in a transaction; psycopg2's `with connection` would open one.
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            connection.close()

    def stop(self) -> int:
        """Stop the server (fast shutdown) and remove its data; return its exit code."""
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and exit at once.
        code = _stop(self.process, signal.SIGINT)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
        return code

    def output(self) -> str:
        """Return the server's log."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisServer:
    """A ``redis-server`` on a free port, no persistence, its files in a temporary folder."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise BackingServiceError("Redis is not installed: apt-get install redis-server")
        self.binary = found
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="knative-rollout-redis-"))
        self.log_path = self.root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Celery broker URL (``redis://``, as in docker-compose.yaml)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it accepts connections."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            _wait_for_port(self.port, self.process, "redis-server", self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> int:
        """Stop the server and remove its folder; return its exit code."""
        code = _stop(self.process)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
        return code
