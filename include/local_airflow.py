"""Run a real Airflow 3.3 deployment (api-server, scheduler, dag-processor, triggerer) on one machine.

``make demo`` and the end-to-end tests share this launcher.

Two topologies, each in its own AIRFLOW_HOME:

* **Celery** (the production one, what ``docker-compose.yaml`` and Cloud Composer run): PostgreSQL as
  the metadata database and Celery result backend, Redis as the broker, and separate
  ``airflow celery worker`` processes (two by default) next to the four components. The database and the
  broker are real servers (:mod:`tests.e2e.backing_services`); :data:`COMPOSE_SERVICES` and
  :func:`celery_settings` are what ``tests/e2e/test_compose_file.py`` holds ``docker-compose.yaml`` to,
  so the file and this topology cannot drift apart.
* **Local** (quick): SQLite and the LocalExecutor, the one executor that runs with SQLite (Airflow 3
  removed the SequentialExecutor; it is what ``airflow standalone`` forces).

Every component is a separate ``airflow`` process, as in production, so a deferred task really leaves its
worker, its trigger really runs in the triggerer, and the task resumes in a new worker process (with
Celery, possibly on the other worker). The test process drives the stack through the public REST API only;
it cannot share Airflow's in-process configuration because the caller (a test session) may have its own
AIRFLOW_HOME.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY_EXECUTOR = "CeleryExecutor"
LOCAL_EXECUTOR = "LocalExecutor"
# docker-compose.yaml's services -> the program that plays each of them here.
COMPOSE_SERVICES = {
    "postgres": "postgres (tests.e2e.backing_services.PostgresServer)",
    "redis": "redis-server (tests.e2e.backing_services.RedisServer)",
    "airflow-init": "airflow db migrate",
    "airflow-apiserver": "airflow api-server",
    "airflow-scheduler": "airflow scheduler",
    "airflow-dag-processor": "airflow dag-processor",
    "airflow-triggerer": "airflow triggerer",
    "airflow-worker": "airflow celery worker",
    "local-knative": "python -m local_knative serve (the session's local_knative fixture)",
}
HEALTH_KEYS = ("scheduler", "triggerer", "dag_processor")
FINISHED_RUN_STATES = frozenset({"success", "failed"})
MIGRATE_TIMEOUT = 180.0
START_TIMEOUT = 150.0
STOP_TIMEOUT = 20.0
HTTP_TIMEOUT = 30.0
POLL_SECONDS = 0.5
# What a task's log holds when it deferred (the worker) and when its trigger fired (the triggerer).
DEFERRED = "Pausing task as DEFERRED."
RESUMED = "Trigger fired event"


class AirflowStackError(RuntimeError):
    """The Airflow stack did not start, answer or finish as expected; the message carries its logs."""


@dataclass(frozen=True)
class DagRunResult:
    """How one DAG run ended: its state, and each task's state and try number (above 1 after a retry)."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str]
    task_tries: dict[str, int]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote(path_part: str) -> str:
    return urllib.parse.quote(path_part, safe="")


def _dag_path(dag_id: str) -> str:
    return f"/api/v2/dags/{_quote(dag_id)}"


def _run_path(dag_id: str, run_id: str) -> str:
    return f"{_dag_path(dag_id)}/dagRuns/{_quote(run_id)}"


def _exception_lines(error_detail: Any) -> list[str]:
    """Return readable lines for the ``error_detail`` Airflow's structured logs attach to an exception."""
    if not isinstance(error_detail, list):
        return []
    lines = []
    for error in error_detail:
        for frame in error.get("frames") or []:
            lines.append(f"    {frame.get('filename')}:{frame.get('lineno')} in {frame.get('name')}")
        lines.append(f"    {error.get('exc_type')}: {error.get('exc_value')}")
    return lines


def deferred_and_resumed(records: Iterable[Mapping[str, Any]]) -> bool:
    """Return whether a task's log records show that it deferred and that the triggerer fired its trigger.

    Task states cannot tell: a task that deferred ends ``success`` like one that never waited.
    """
    events = {str(record.get("event", "")).strip() for record in records}
    return DEFERRED in events and RESUMED in events


def celery_settings(*, database_url: str, broker_url: str, api_url: str) -> dict[str, str]:
    """Return the settings that make the CeleryExecutor topology, shared with ``docker-compose.yaml``.

    :param database_url: SQLAlchemy URL of the PostgreSQL database (``postgresql+psycopg2://...``).
    :param broker_url: Redis URL of the Celery broker.
    :param api_url: base URL of the api-server, which the workers' task processes report to.
    """
    return {
        "AIRFLOW__CORE__EXECUTOR": CELERY_EXECUTOR,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        # Celery keeps task results in the same PostgreSQL database, through SQLAlchemy ("db+").
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url.replace("+psycopg2", "", 1),
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def kubernetes_connection(kubeconfig: Path, ingress_url: str) -> dict[str, object]:
    """Return an Airflow ``kubernetes`` connection (as JSON) to the cluster of a kubeconfig and its ingress.

    The load-test gates of the example DAGs send their requests to the ``ingress_address`` extra:
    local_knative's Knative hosts (``*.example.com``) have no DNS. It takes ``http://host:port``, the form
    of local_knative's ``ingress`` endpoint.
    """
    return {
        "conn_type": "kubernetes",
        "extra": {"kube_config_path": str(kubeconfig), "ingress_address": ingress_url},
    }


def _airflow_executable() -> str:
    # The console script of the interpreter that runs the tests, so the stack uses the same venv.
    return str(Path(sys.executable).with_name("airflow"))


class AirflowStack:
    """An Airflow home, the four Airflow components running on it, and a REST client for its API.

    :param home: the AIRFLOW_HOME (created; holds airflow.db, logs/ and one log file per component).
    :param dag_bundles: DAG bundle name -> folder of DAG files; the first one is also the DAGS_FOLDER.
    :param connections: Airflow connection id -> connection as JSON (``AIRFLOW_CONN_<ID>``).
    :param executor: ``"LocalExecutor"`` (SQLite) or ``"CeleryExecutor"`` (needs the two URLs below).
    :param database_url: PostgreSQL SQLAlchemy URL, for the CeleryExecutor.
    :param broker_url: Redis URL of the Celery broker, for the CeleryExecutor.
    :param celery_workers: how many ``airflow celery worker`` processes to run.
    :param worker_concurrency: task slots per Celery worker (``--concurrency``).
    :param extra_env: more environment for every component (e.g. pool or parallelism settings).
    :param port: the api-server's port (default: a free one), e.g. a fixed one for a UI left running.
    """

    def __init__(
        self,
        home: Path,
        *,
        dag_bundles: Mapping[str, Path],
        connections: Mapping[str, Mapping[str, Any]] | None = None,
        executor: str = LOCAL_EXECUTOR,
        database_url: str | None = None,
        broker_url: str | None = None,
        celery_workers: int = 2,
        worker_concurrency: int = 2,
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        if not dag_bundles:
            raise ValueError("dag_bundles is empty: give at least one bundle name -> folder of DAG files")
        missing = [str(path) for path in dag_bundles.values() if not Path(path).is_dir()]
        if missing:
            raise ValueError(f"DAG bundle folders do not exist: {', '.join(missing)}")
        if executor not in (LOCAL_EXECUTOR, CELERY_EXECUTOR):
            raise ValueError(f"executor must be {LOCAL_EXECUTOR} or {CELERY_EXECUTOR}, got {executor!r}")
        if executor == CELERY_EXECUTOR and not (database_url and broker_url):
            raise ValueError("the CeleryExecutor needs database_url (PostgreSQL) and broker_url (Redis)")
        self.home = Path(home).resolve()
        self.dag_bundles = {name: Path(path).resolve() for name, path in dag_bundles.items()}
        self.port = port or _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.executor = executor
        self.database_url = database_url
        self.broker_url = broker_url
        self.worker_concurrency = worker_concurrency
        self.workers = (
            tuple(f"celery-worker-{n}" for n in range(1, celery_workers + 1))
            if executor == CELERY_EXECUTOR
            else ()
        )
        self.components = (*COMPONENTS, *self.workers)
        self.env = self._environment(connections or {})
        self.env.update(extra_env or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _environment(self, connections: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        # Nothing of the test session's own Airflow configuration (unit-test mode, its home) may leak in.
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        bundles = [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path)},
            }
            for name, path in self.dag_bundles.items()
        ]
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__CORE__EXECUTOR": LOCAL_EXECUTOR,
                # LocalExecutor forks `parallelism` workers up front; a few are enough and spare the CPU.
                # With Celery it caps the tasks queued or running at once: every worker slot.
                "AIRFLOW__CORE__PARALLELISM": str(
                    len(self.workers) * self.worker_concurrency if self.workers else 4
                ),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(next(iter(self.dag_bundles.values()))),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                # As in docker-compose.yaml: a DAG runs only once unpaused, which trigger() does. Other
                # DAGs in the bundles (scheduled examples) so stay out of the tests' way.
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                # Every component signs or checks task JWTs and reads encrypted fields: one key for all.
                "AIRFLOW__API_AUTH__JWT_SECRET": base64.b64encode(os.urandom(64)).decode(),
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.api_url,
                # The log servers default to fixed ports (8793, 8794); other stacks may run at the same time.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                # The test is the only user of this throw-away deployment: no login for the REST API.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # Shorter loops than the defaults, so a test waits seconds rather than minutes.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                # A scheduler loop that queued nothing sleeps this long (default 1 s) before the next; a
                # finished task's downstream, and each level of a chain of tasks being skipped, waits
                # for the next loop. A chain of 8 tasks and 6 skipped ones: 11 s -> 5.5 s, for ~0.05 of
                # a core more.
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # The scheduler's sweep for timed-out triggers and unanswered approvals (default every
                # 15 s): an approval's response timeout then ends within 2 s of its deadline.
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
                # After a task process exits the supervisor may notice only at its next heartbeat check
                # (default every 5 s). If the trigger fires sooner, the task resumes first and the late
                # "success" of the deferring attempt makes the scheduler fail the resumed one (a race in
                # Airflow 3.3's executor-event handling, scheduler_job_runner._process_executor_events).
                # The operators dodge it by watching inline for 5 s first; the e2e DAG defers at once
                # (inline_wait_seconds=0) to exercise the triggerer, so it relies on this shorter interval.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            }
        )
        if self.executor == CELERY_EXECUTOR:
            assert self.database_url and self.broker_url  # checked in __init__
            env.update(
                celery_settings(
                    database_url=self.database_url, broker_url=self.broker_url, api_url=self.api_url
                )
            )
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.worker_concurrency)
        for conn_id, connection in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(connection))
        return env

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> AirflowStack:
        """Migrate the database, start every component and wait until all of them report healthy.

        :raises AirflowStackError: when a component exits or the stack is not healthy in time (with logs).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run(
            [_airflow_executable(), "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT,
            check=False,
        )
        if migrate.returncode != 0:
            raise AirflowStackError(
                f"`airflow db migrate` exited with {migrate.returncode}:\n{migrate.stdout}\n{migrate.stderr}"
            )
        try:
            for component in self.components:
                self._spawn(component)
            self._wait_healthy()
            self._wait_workers_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, component: str) -> None:
        command = [_airflow_executable(), component]
        env = self.env
        if component == "api-server":
            command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        elif component in self.workers:
            # Two workers on one machine: each needs its own Celery node name and log-server port.
            command = [
                _airflow_executable(), "celery", "worker", "--celery-hostname", f"{component}@%h",
                "--concurrency", str(self.worker_concurrency), "--without-gossip", "--without-mingle",
            ]  # fmt: skip
            env = {**self.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port())}
        with self.component_log_path(component).open("ab") as log_file:
            # A session of its own, so stop() can also end the workers and supervisors it forks.
            self.processes[component] = subprocess.Popen(
                command,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_running()
            with contextlib.suppress(OSError, AirflowStackError):
                health = self.api("GET", "/api/v2/monitor/health")
                if all((health.get(key) or {}).get("status") == "healthy" for key in HEALTH_KEYS):
                    return
            time.sleep(POLL_SECONDS)
        raise AirflowStackError(
            f"Airflow was not healthy within {START_TIMEOUT:.0f}s (last health: {health}); "
            f"logs:\n{self.component_logs()}"
        )

    def _wait_workers_ready(self) -> None:
        # Celery prints "<node> ready." once it consumes from the broker; /health knows no workers.
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.workers)
        while waiting and time.monotonic() < deadline:
            self.check_running()
            waiting = [w for w in waiting if f"{w}@" not in self._ready_nodes(w)]
            if waiting:
                time.sleep(POLL_SECONDS)
        if waiting:
            raise AirflowStackError(
                f"Celery workers {waiting} were not ready within {START_TIMEOUT:.0f}s; logs:\n"
                f"{self.component_logs()}"
            )

    def _ready_nodes(self, worker: str) -> str:
        # Airflow's structured logging appends the logger and location after Celery's own message.
        path = self.component_log_path(worker)
        text = path.read_text(errors="replace") if path.exists() else ""
        return " ".join(line for line in text.splitlines() if " ready." in line)

    def check_running(self) -> None:
        """Raise when a component has exited, with its log.

        :raises AirflowStackError: naming the component and its exit code.
        """
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise AirflowStackError(
                    f"airflow {component} exited with code {process.returncode}; its log:\n"
                    f"{self.component_log(component)}"
                )

    def stop(self) -> dict[str, int]:
        """Stop every component (SIGTERM, SIGKILL after 20 s) and return their exit codes.

        The scheduler goes first so it stops handing out work; once it has exited, the Celery workers
        finish what they run (warm shutdown); the api-server goes last because the workers report to it
        while they shut down. The triggerer and the dag-processor report to nobody, so they stop from
        the start, alongside: the triggerer alone takes over 10 s (Airflow waits that long for its
        trigger runner), which would otherwise come on top of the others.
        """
        alongside = self._terminate(("triggerer", "dag-processor"))
        codes: dict[str, int] = {}
        for wave in (("scheduler",), self.workers, ("api-server",)):
            codes.update(self._reap(self._terminate(wave)))
        codes.update(self._reap(alongside))
        return codes

    def _terminate(self, components: Iterable[str]) -> dict[str, tuple[subprocess.Popen[bytes], float]]:
        """Send SIGTERM to each running component; return them with the time each must be gone by."""
        signalled = {}
        for component in components:
            process = self.processes.pop(component, None)
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            signalled[component] = (process, time.monotonic() + STOP_TIMEOUT)
        return signalled

    def _reap(self, signalled: Mapping[str, tuple[subprocess.Popen[bytes], float]]) -> dict[str, int]:
        """Wait for each signalled component (SIGKILL when past its time) and return the exit codes."""
        codes = {}
        for component, (process, deadline) in signalled.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # Whatever the component forked and left behind shares its session (process group).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            codes[component] = int(process.returncode)
        return codes

    # -- REST API -------------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call the REST API and return the decoded JSON answer.

        :raises AirflowStackError: on an HTTP error status, with the answer's body.
        """
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise AirflowStackError(
                f"{method} {path} answered HTTP {error.code}: {error.read().decode(errors='replace')}"
            ) from error

    def wait_for_dag(self, dag_id: str, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` and return it; raise with import errors if not.

        :raises AirflowStackError: when the DAG does not appear in time.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            with contextlib.suppress(AirflowStackError):
                return dict(self.api("GET", _dag_path(dag_id)))
            time.sleep(POLL_SECONDS)
        errors = self.api("GET", "/api/v2/importErrors").get("import_errors", [])
        raise AirflowStackError(
            f"DAG {dag_id!r} was not parsed within {timeout:.0f}s; import errors: "
            f"{json.dumps(errors, indent=2)}\ndag-processor log:\n{self.component_log('dag-processor')}"
        )

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Trigger a run of ``dag_id`` (once it is parsed) with ``conf`` and return its run id."""
        dag = self.wait_for_dag(dag_id)
        if dag.get("is_paused"):
            self.api("PATCH", _dag_path(dag_id), {"is_paused": False})
        run = self.api(
            "POST", f"{_dag_path(dag_id)}/dagRuns", {"logical_date": None, "conf": dict(conf or {})}
        )
        return str(run["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> DagRunResult:
        """Wait until the run finishes and return how it ended.

        :raises AirflowStackError: when it does not finish in time (with the task logs).
        """
        path = _run_path(dag_id, run_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            state = str(self.api("GET", path)["state"])
            if state in FINISHED_RUN_STATES:
                instances = self.task_instances(dag_id, run_id)
                return DagRunResult(
                    dag_id,
                    run_id,
                    state,
                    task_states={ti["task_id"]: str(ti["state"]) for ti in instances},
                    task_tries={ti["task_id"]: int(ti["try_number"]) for ti in instances},
                )
            time.sleep(POLL_SECONDS)
        raise AirflowStackError(
            f"run {run_id} of {dag_id} did not finish within {timeout:.0f}s; task states "
            f"{self.task_states(dag_id, run_id)}\n{self.diagnostics(dag_id, run_id)}"
        )

    def run_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None, *, timeout: float) -> DagRunResult:
        """Trigger ``dag_id`` with ``conf`` and wait (at most ``timeout`` seconds) until the run finishes."""
        return self.wait_for_run(dag_id, self.trigger(dag_id, conf), timeout)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the task instances of a run as the REST API describes them."""
        return list(self.api("GET", f"{_run_path(dag_id, run_id)}/taskInstances")["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Return the state of every task instance of a run."""
        return {ti["task_id"]: str(ti["state"]) for ti in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """Return the value a task pushed as XCom ``key`` (its return value by default)."""
        path = f"{_run_path(dag_id, run_id)}/taskInstances/{_quote(task_id)}/xcomEntries/{_quote(key)}"
        return self.api("GET", path)["value"]

    # -- logs -----------------------------------------------------------------------------------------

    def component_log_path(self, component: str) -> Path:
        """Return the file a component's output goes to."""
        return self.home / f"{component}.log"

    def component_log(self, component: str, last_lines: int = 60) -> str:
        """Return the last lines of a component's output."""
        path = self.component_log_path(component)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-last_lines:])

    def component_logs(self, last_lines: int = 40) -> str:
        """Return the last lines of every component's output."""
        return "\n".join(
            f"--- airflow {component} ---\n{self.component_log(component, last_lines)}"
            for component in self.components
        )

    def task_log_events(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """Return a task's structured log records, as its workers and the triggerer wrote them."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        events: list[dict[str, Any]] = []
        for path in sorted(folder.glob("attempt=*.log")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {"event": line}
                events.append(record if isinstance(record, dict) else {"event": str(record)})
        # The worker's and the triggerer's records live in separate files; interleave them in time order.
        return sorted(events, key=lambda record: str(record.get("timestamp", "")))

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        """Return a task's log as text: ``time level logger: event`` per record, then any exception."""
        lines = []
        for record in self.task_log_events(dag_id, run_id, task_id, map_index):
            head = (record.get("timestamp"), record.get("level"), f"{record.get('logger', '')}:")
            lines.append(" ".join(str(part) for part in (*head, record.get("event", "")) if part))
            lines.extend(_exception_lines(record.get("error_detail")))
        return "\n".join(lines)

    def diagnostics(self, dag_id: str, run_id: str) -> str:
        """Return every task's log of a run, then the tail of each component's output."""
        sections = [
            f"--- task {task_id} ({state}) ---\n{self.task_log(dag_id, run_id, task_id)}"
            for task_id, state in self.task_states(dag_id, run_id).items()
        ]
        return "\n".join([*sections, self.component_logs()])
