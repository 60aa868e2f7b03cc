"""Fleet rollout benchmark: one run of dags/fleet_rollout.py rolls the echo image out to N Services.

On the native Celery topology of the end-to-end tests (PostgreSQL, Redis, two Celery workers, scheduler,
dag-processor, triggerer, api-server) against one local_knative, for each N (default 10, 50, 100), the
figures issue 13 asks for, each measured where it happens:

* wall time of the DAG run, task instances, and where a task instance's time goes (queued -> running,
  running) from the ``task_instance`` table;
* Kubernetes API requests per Service and per Service per traffic step (the DAG's ``STEPS``), from
  local_knative's ``apiserver_request_total`` (``/metrics``) before and after the run;
* triggerer memory per deferred wait: the triggerer's peak over the peak number of deferred task
  instances (sampled every second from the database), and its growth over idle per deferred wait;
* peak worker slots held: running task instances (database) and live task processes under the Celery
  workers (process tree), sampled every second;
* scheduler and database load: CPU seconds of every component (psutil, children included) and
  PostgreSQL's ``pg_stat_database`` deltas (commits, rows read and written);
* memory: RSS, PSS and USS (psutil ``memory_full_info``) per component, the workers split into the Celery
  parent, its pool processes and their task processes. RSS sums count pages shared after ``fork`` once per
  process; PSS shares them out, USS is what each process alone holds;
* "at most M at once": the peak number of Services whose rollout task ran at the same time (its first
  start to its end, from the database afterwards) and the peak of rollout task instances running, queued or
  deferred (what Airflow's ``max_active_tis_per_dagrun`` counts, sampled), against the fleet's limit
  (``--max-at-once``, given to the stack as ``KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE``).

Every Service must end promoted, otherwise the benchmark fails. The stack parses only
``dags/fleet_rollout.py`` (a bundle of its own) at Airflow's default file interval (30 s), so the
dag-processor's load is that of this DAG. Results: benchmarks/results/fleet.json, fleet.md, fleet.svg.

    .venv/bin/python benchmarks/fleet.py            # N = 10, 50, 100: about 25 minutes on 2 quiet cores
    .venv/bin/python benchmarks/fleet.py --sizes 5 --out /tmp/fleet   # a check that leaves results/ alone
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "include"), str(REPO / "plugins")]

from local_airflow import CELERY_EXECUTOR, AirflowStack, kubernetes_connection  # noqa: E402
from local_knative.testing import LocalKnative  # noqa: E402
from tests.e2e.backing_services import DATABASE, PASSWORD, USER, PostgresServer, RedisServer  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DAG_FILE = REPO / "dags" / "fleet_rollout.py"
DAG_ID = "fleet_rollout"
CANDIDATE = "registry.example.com/knative-rollout/echo:v2"  # the DAG's default image
SAMPLE_SECONDS = 1.0
# Each step's SLO check in the benchmark's runs (the DAG's Params).
ANALYSIS = {"analysis_window": 3, "load_rate": 10, "p99_ms": 10000, "max_error_rate": 0.05}
MIB = 2**20
PG_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
)


def _dag_constant(name: str) -> Any:
    """Return a constant of dags/fleet_rollout.py without importing Airflow here (it is an int tuple)."""
    for line in DAG_FILE.read_text().splitlines():
        if line.startswith(f"{name} = "):
            return eval(line.split("=", 1)[1], {})  # a literal of our own file
    raise SystemExit(f"{DAG_FILE} has no {name}")


def candidate_catalog(path: Path, startup_seconds: float) -> Path:
    """Write local_knative's default image catalog with the candidate image slow to start; return it.

    A model server takes seconds to load; so the candidate's deploy outlasts the operator's inline wait
    and defers to the triggerer, as it would in production (the stable image starts at once).
    """
    default = REPO / "include" / "local_knative" / "images.yaml"
    images = yaml.safe_load(default.read_text())["images"]
    for entry in images.values():  # relative to the default catalog's folder
        entry["workingDir"] = str((default.parent / entry.get("workingDir", ".")).resolve())
    echo = images["registry.example.com/knative-rollout/echo:*"]
    slow = {**echo, "env": {**echo.get("env", {}), "ECHO_STARTUP_DELAY_S": str(startup_seconds)}}
    # The first pattern that matches wins: the candidate's entry goes first.
    path.write_text(json.dumps({"images": {CANDIDATE: slow, **images}}, indent=2))  # JSON is YAML
    return path


def _tree(pid: int) -> list[tuple[psutil.Process, int]]:
    """Return a process and its descendants with their depth below it (0: the process itself)."""
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=True)
    except psutil.Error:
        return []
    depth = {root.pid: 0}
    found = [(root, 0)]
    for child in children:  # psutil lists parents before their children
        try:
            depth[child.pid] = depth.get(child.ppid(), 0) + 1
        except psutil.Error:
            continue
        found.append((child, depth[child.pid]))
    return found


def cpu_seconds(pid: int) -> float:
    """Return the CPU seconds a process tree used: live processes and the children they reaped."""
    total = 0.0
    for process, _ in _tree(pid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class Sampler:
    """Every second: memory of each component, task processes under the workers, task states, triggers.

    :param roots: component name -> pid of its process tree.
    :param workers: which of the roots are Celery workers (parent -> pool processes -> task processes).
    :param database: an open psycopg2 connection (autocommit) to Airflow's database.
    :param run_id: the DAG run whose task instances are counted.
    """

    def __init__(self, roots: Mapping[str, int], workers: set[str], database: Any, run_id: str) -> None:
        self.roots = dict(roots)
        self.workers = workers
        self.database = database
        self.run_id = run_id
        self.peaks: dict[str, float] = Counter()
        self.peak_tasks: dict[str, int] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _peak(self, key: str, value: float) -> None:
        self.peaks[key] = max(self.peaks[key], value)

    def _memory(self) -> None:
        totals: Counter[str] = Counter()
        task_processes = 0
        for name, pid in self.roots.items():
            for process, depth in _tree(pid):
                try:
                    info = process.memory_full_info()
                except psutil.Error:
                    continue
                # A Celery worker: the parent (0), its prefork pool (1, each a task supervisor), and the
                # task process each supervisor forks for the task instance it runs (2).
                part = (("parent", "pool", "tasks")[min(depth, 2)],) if name in self.workers else ()
                for key in (name, "stack", *(f"workers_{p}" for p in part), *(("workers",) if part else ())):
                    totals[f"{key}.rss"] += info.rss
                    totals[f"{key}.pss"] += info.pss
                    totals[f"{key}.uss"] += info.uss
                task_processes += name in self.workers and depth >= 2
        for key, value in totals.items():
            self._peak(key, value / MIB)
        self._peak("task_processes", task_processes)
        if task_processes:
            self._peak("task_process.uss_mean", totals["workers_tasks.uss"] / task_processes / MIB)

    def _states(self) -> None:
        with self.database.cursor() as cursor:
            cursor.execute(
                "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s GROUP BY state",
                (DAG_ID, self.run_id),
            )
            for state, count in cursor.fetchall():
                self.peak_tasks[str(state)] = max(self.peak_tasks[str(state)], int(count))
            cursor.execute("SELECT count(*) FROM trigger")
            self.peak_tasks["triggers"] = max(self.peak_tasks["triggers"], int(cursor.fetchone()[0]))
            # What the fleet's limit counts: rollout task instances running, queued or deferred.
            cursor.execute(
                "SELECT count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id LIKE "
                "'%%.rollout' AND state IN ('running', 'queued', 'deferred')",
                (DAG_ID, self.run_id),
            )
            in_flight = int(cursor.fetchone()[0])
            self.peak_tasks["rollouts_in_flight"] = max(self.peak_tasks["rollouts_in_flight"], in_flight)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._memory()
            self._states()
            self.samples += 1

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def api_requests(cluster: LocalKnative) -> Counter[str]:
    """Return local_knative's ``apiserver_request_total`` by verb (the REST requests it served so far)."""
    with urllib.request.urlopen(cluster.api_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels, value = line.rsplit(" ", 1)
            verb = labels.split('verb="', 1)[1].split('"', 1)[0]
            resource = labels.split('resource="', 1)[1].split('"', 1)[0]
            counts[f"{verb} {resource}"] += int(value)
    return counts


def pg_counters(database: Any) -> dict[str, int]:
    """Return ``pg_stat_database``'s counters for Airflow's database."""
    with database.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database WHERE datname = %s", (DATABASE,)
        )
        return dict(zip(PG_COUNTERS, (int(v) for v in cursor.fetchone()), strict=True))


def task_instances(database: Any, run_id: str) -> list[dict[str, Any]]:
    """Return the run's task instances with their times, from the database."""
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT task_id, map_index, state, queued_dttm, start_date, end_date FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        )
        keys = ("task_id", "map_index", "state", "queued", "start", "end")
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


def peak_concurrent_rollouts(instances: list[dict[str, Any]]) -> int:
    """Return how many Services' rollout tasks (first start to end, deferrals included) overlapped at most."""
    spans: list[tuple[datetime, datetime]] = [
        (ti["start"], ti["end"])
        for ti in instances
        if ti["task_id"].endswith(".rollout") and ti["start"] and ti["end"]
    ]
    edges = sorted((moment, change) for start, end in spans for moment, change in ((start, 1), (end, -1)))
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def _seconds(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
        "sum": round(sum(values), 1),
    }


def task_times(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Return where task instances' time went: queued -> running, first start -> end (with deferrals)."""
    ran = [ti for ti in instances if ti["start"] and ti["end"] and ti["state"] != "skipped"]
    return {
        # A task instance resumed after a deferral keeps its first start but is queued again: left out.
        "queued_to_running_s": _seconds(
            [
                (ti["start"] - ti["queued"]).total_seconds()
                for ti in ran
                if ti["queued"] and ti["queued"] <= ti["start"]
            ]
        ),
        "running_s": _seconds([(ti["end"] - ti["start"]).total_seconds() for ti in ran]),
        "ran": len(ran),
        "skipped": sum(ti["state"] == "skipped" for ti in instances),
    }


@contextmanager
def measured(cluster: LocalKnative, database: Any, roots: Mapping[str, int]) -> Iterator[dict[str, Any]]:
    """Measure API requests, database counters and CPU seconds over the block; fill the dict after it."""
    result: dict[str, Any] = {}
    before = (
        api_requests(cluster),
        pg_counters(database),
        {name: cpu_seconds(pid) for name, pid in roots.items()},
    )
    started = time.monotonic()
    yield result
    result["wall"] = time.monotonic() - started
    time.sleep(2)  # PostgreSQL backends flush their statistics at most once a second
    after = (
        api_requests(cluster),
        pg_counters(database),
        {name: cpu_seconds(pid) for name, pid in roots.items()},
    )
    result["api"] = after[0] - before[0]
    result["pg"] = {key: after[1][key] - before[1][key] for key in PG_COUNTERS}
    result["cpu"] = {name: round(after[2][name] - before[2][name], 1) for name in roots}


def run(
    sizes: list[int],
    workers: int,
    concurrency: int,
    startup: float,
    max_at_once: int,
    done: Callable[[list[dict[str, Any]]], None],
) -> list[dict[str, Any]]:
    """Run the fleet DAG once per size on one stack; call ``done`` with the rows so far after each size."""
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    bundle = root / "dags"
    bundle.mkdir()
    shutil.copy(DAG_FILE, bundle / DAG_FILE.name)
    images = candidate_catalog(root / "images.yaml", startup)
    # Knative's default scaling: the tests' fast scale-to-zero (5 s idle) would cold-start a candidate (10 s)
    # between its steps on a loaded machine, and its SLO check would rightly fail it.
    cluster = LocalKnative.start(root / "cluster", images=images)
    postgres = PostgresServer().start()
    redis = RedisServer().start()
    stack = AirflowStack(
        root / "airflow",
        dag_bundles={"fleet": bundle},
        connections={"kubernetes_default": kubernetes_connection(cluster.kubeconfig, cluster.ingress_url)},
        executor=CELERY_EXECUTOR,
        database_url=postgres.url,
        broker_url=redis.url,
        celery_workers=workers,
        worker_concurrency=concurrency,
        # Airflow's default file interval, not the end-to-end tests' 10 s: the benchmark measures the run.
        extra_env={
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE": str(max_at_once),
        },
    )
    rows = []
    database = None
    try:
        stack.start()
        database = psycopg2.connect(
            host="127.0.0.1", port=postgres.port, user=USER, password=PASSWORD, dbname=DATABASE
        )
        database.autocommit = True
        roots = {name: process.pid for name, process in stack.processes.items()}
        roots |= {
            "local_knative": cluster.pid or 0,
            "postgres": postgres.process.pid,
            "redis": redis.process.pid,
        }
        for size in sizes:
            rows.append(run_one(stack, cluster, database, roots, size))
            print(json.dumps(rows[-1]), flush=True)
            done(rows)  # a long run that fails later keeps the sizes it finished
            if rows[-1]["state"] != "success" or rows[-1]["promoted"] != size:
                raise SystemExit(f"fleet of {size} did not promote every Service: {rows[-1]}")
    finally:
        if database is not None:
            database.close()
        stack.stop()
        redis.stop()
        postgres.stop()
        cluster.stop()
    return rows


def run_one(
    stack: AirflowStack, cluster: LocalKnative, database: Any, roots: dict[str, int], size: int
) -> dict[str, Any]:
    namespace = f"fleet-{size}-{int(time.time())}"
    status, body = cluster.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    assert status == 201, body
    conf = {
        "services": [f"svc-{n}" for n in range(size)],
        "namespace": namespace,
        "wave_percent": 25,
        "max_failures": 1,
        # The orchestration is measured, not the model: short windows, and an SLO that 2 loaded cores meet.
        **ANALYSIS,
    }
    idle_triggerer = _idle_memory(roots["triggerer"])
    workers = set(stack.workers)
    with measured(cluster, database, roots) as figures:
        run_id = stack.trigger(DAG_ID, conf)
        with Sampler(roots, workers, database, run_id) as sampler:
            result = stack.wait_for_run(DAG_ID, run_id, timeout=600 + 20 * size)
    summary = stack.xcom(DAG_ID, run_id, "summary") if result.state == "success" else {}
    instances = task_instances(database, run_id)
    times = task_times(instances)
    steps = len(_dag_constant("STEPS"))
    api_total = sum(figures["api"].values())
    peaks, tasks = sampler.peaks, sampler.peak_tasks
    deferred = tasks.get("deferred", 0)
    cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")
    memory = {
        component: {kind: round(peaks.get(f"{component}.{kind}", 0.0), 1) for kind in ("rss", "pss", "uss")}
        for component in (*roots, "workers", "workers_parent", "workers_pool", "workers_tasks", "stack")
    }
    return {
        "services": size,
        "state": result.state,
        "promoted": len(summary.get("promoted", [])),
        "wall_seconds": round(figures["wall"], 1),
        "seconds_per_service": round(figures["wall"] / size, 2),
        "task_instances": len(instances),
        "task_times": times,
        "api_requests": dict(sorted(figures["api"].items())),
        "api_requests_per_service": round(api_total / size, 1),
        "api_requests_per_service_step": round(api_total / size / steps, 2),
        "peak_deferred": deferred,
        "peak_triggers": tasks.get("triggers", 0),
        "triggerer_mib_per_deferred_wait": round(memory["triggerer"]["rss"] / deferred, 2)
        if deferred
        else None,
        "triggerer_growth_mib_per_deferred_wait": (
            round((memory["triggerer"]["pss"] - idle_triggerer["pss"]) / deferred, 2) if deferred else None
        ),
        "triggerer_idle_mib": idle_triggerer,
        "peak_running_task_instances": tasks.get("running", 0),
        "peak_queued_task_instances": tasks.get("queued", 0),
        "peak_worker_task_processes": int(peaks.get("task_processes", 0)),
        "peak_rollouts_in_flight": tasks.get("rollouts_in_flight", 0),
        "peak_concurrent_rollouts": peak_concurrent_rollouts(instances),
        "cpu_seconds": figures["cpu"],
        "cpu_seconds_per_service": round(sum(figures["cpu"].values()) / size, 2),
        "scheduler_cpu_seconds_per_service": round(figures["cpu"]["scheduler"] / size, 2),
        "worker_cpu_seconds_per_task_instance": round(
            sum(figures["cpu"][name] for name in workers) / max(times["ran"], 1), 2
        ),
        "postgres": figures["pg"],
        "postgres_commits_per_service": round(figures["pg"]["xact_commit"] / size, 1),
        "peak_memory_mib": memory,
        "task_process_uss_mib": round(peaks.get("task_process.uss_mean", 0.0), 1),
        "samples": sampler.samples,
    }


def _idle_memory(pid: int) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for process, _ in _tree(pid):
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue
        totals["rss"] += info.rss / MIB
        totals["pss"] += info.pss / MIB
    return {key: round(value, 1) for key, value in totals.items()}


# (figure key, title, unit) of each plot against N; a limit line where the DAG sets one.
PLOTS = (
    ("wall_seconds", "wall time of the run", "s"),
    ("seconds_per_service", "wall time per Service", "s"),
    ("api_requests_per_service_step", "Kubernetes API requests per Service per traffic step", "requests"),
    ("triggerer_mib_per_deferred_wait", "triggerer RSS per deferred wait (peak / peak)", "MiB"),
    ("peak_running_task_instances", "peak worker slots held (running task instances)", "slots"),
    ("scheduler_cpu_seconds_per_service", "scheduler CPU per Service", "CPU s"),
    ("postgres_commits_per_service", "PostgreSQL commits per Service", "commits"),
    ("peak_concurrent_rollouts", "peak Services rolling out at once", "Services"),
    ("cpu_seconds_per_service", "CPU of the whole stack per Service", "CPU s"),
)


def plot(rows: list[dict[str, Any]], max_at_once: int) -> str:
    """Return an SVG with one small plot of each figure against N."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 10), dpi=100)
    sizes = [row["services"] for row in rows]
    for axes, (key, title, unit) in zip(figure.subplots(3, 3).ravel(), PLOTS, strict=True):
        axes.plot(sizes, [row[key] if row[key] is not None else float("nan") for row in rows], marker="o")
        if key == "peak_concurrent_rollouts":
            axes.axhline(max_at_once, linestyle="--", color="grey", label="the fleet's limit")
            axes.legend(loc="upper left")
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("Services (N)")
        axes.set_ylabel(unit)
        axes.set_xticks(sizes)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
    figure.suptitle("fleet_rollout: one DAG run over N Services (benchmarks/fleet.py)")
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def write(
    rows: list[dict[str, Any]], workers: int, concurrency: int, startup: float, max_at_once: int, out: Path
) -> None:
    machine = {"cpus": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30)}
    meta = {
        "python": platform.python_version(),
        "celery_workers": workers,
        "worker_concurrency": concurrency,
        "steps": _dag_constant("STEPS"),
        "max_at_once": max_at_once,
        "analysis": ANALYSIS,
        "candidate_startup_seconds": startup,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(
        json.dumps({"machine": machine, **meta, "runs": rows}, indent=2, default=str) + "\n"
    )
    (out / "fleet.svg").write_text(plot(rows, max_at_once))
    columns = [
        ("N", lambda r: r["services"]),
        ("promoted", lambda r: r["promoted"]),
        ("wall s", lambda r: r["wall_seconds"]),
        ("s / Service", lambda r: r["seconds_per_service"]),
        ("task instances (ran)", lambda r: f"{r['task_instances']} ({r['task_times']['ran']})"),
        (
            "TI queued->running s, median / max",
            lambda r: "{median} / {max}".format(**r["task_times"]["queued_to_running_s"]),
        ),
        ("TI running s, median", lambda r: r["task_times"]["running_s"]["median"]),
        ("API requests / Service", lambda r: r["api_requests_per_service"]),
        ("/ Service / traffic step", lambda r: r["api_requests_per_service_step"]),
        ("peak deferred", lambda r: r["peak_deferred"]),
        ("triggerer RSS MiB / deferred wait", lambda r: r["triggerer_mib_per_deferred_wait"]),
        ("triggerer PSS growth MiB / deferred wait", lambda r: r["triggerer_growth_mib_per_deferred_wait"]),
        (
            "peak running TIs (task processes)",
            lambda r: f"{r['peak_running_task_instances']} ({r['peak_worker_task_processes']})",
        ),
        (
            "peak Services rolling out at once / rollout TIs in flight (limit)",
            lambda r: f"{r['peak_concurrent_rollouts']} / {r['peak_rollouts_in_flight']} ({max_at_once})",
        ),
        ("scheduler CPU s / Service", lambda r: r["scheduler_cpu_seconds_per_service"]),
        ("stack CPU s / Service", lambda r: r["cpu_seconds_per_service"]),
        ("worker CPU s / task instance", lambda r: r["worker_cpu_seconds_per_task_instance"]),
        ("PostgreSQL commits / Service", lambda r: r["postgres_commits_per_service"]),
        (
            "rows read / written per Service",
            lambda r: "{:.0f} / {:.0f}".format(
                (r["postgres"]["tup_returned"] + r["postgres"]["tup_fetched"]) / r["services"],
                (r["postgres"]["tup_inserted"] + r["postgres"]["tup_updated"] + r["postgres"]["tup_deleted"])
                / r["services"],
            ),
        ),
    ]
    memory_columns = (
        "triggerer",
        "scheduler",
        "workers",
        "workers_parent",
        "workers_pool",
        "workers_tasks",
        "api-server",
        "dag-processor",
        "local_knative",
        "postgres",
        "stack",
    )
    lines = [
        f"# Fleet rollout: one DAG run, N Services (dags/fleet_rollout.py, echo image, steps "
        f"{meta['steps']})",
        "",
        f"Machine: {machine['cpus']} cores, {machine['memory_gib']} GiB; CeleryExecutor, {workers} workers x "
        f"{concurrency} slots, PostgreSQL + Redis, one local_knative; the candidate image takes "
        f"{startup:g} s to start (so its deploy defers); at most {max_at_once} Services at once; analysis "
        f"{json.dumps(ANALYSIS)}. `benchmarks/fleet.py`; plot: fleet.svg.",
        "",
        "| " + " | ".join(name for name, _ in columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(cell(row)) for _, cell in columns) + " |" for row in rows),
        "",
        "Peak memory, MiB, RSS / PSS / USS (workers: both Celery workers; parent, pool processes, task "
        "processes):",
        "",
        "| N | " + " | ".join(memory_columns) + " |",
        "|---|" + "---|" * len(memory_columns),
    ]
    for row in rows:
        peak = row["peak_memory_mib"]
        cells = [
            f"{peak[c]['rss']:.0f} / {peak[c]['pss']:.0f} / {peak[c]['uss']:.0f}" for c in memory_columns
        ]
        lines.append(f"| {row['services']} | " + " | ".join(cells) + " |")
    lines += ["", "API requests by verb and resource:", ""]
    for row in rows:
        lines.append(
            f"- N={row['services']}: " + ", ".join(f"{k} {v}" for k, v in row["api_requests"].items())
        )
    lines += ["", "CPU seconds by component:", ""]
    for row in rows:
        lines.append(
            f"- N={row['services']}: " + ", ".join(f"{k} {v}" for k, v in row["cpu_seconds"].items())
        )
    (out / "fleet.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--candidate-startup", type=float, default=10.0, help="seconds the candidate image takes to start"
    )
    parser.add_argument("--max-at-once", type=int, default=16, help="the fleet's limit on Services at once")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of fleet.json, fleet.md, fleet.svg")
    args = parser.parse_args()
    run(
        args.sizes,
        args.workers,
        args.concurrency,
        args.candidate_startup,
        args.max_at_once,
        lambda rows: write(
            rows, args.workers, args.concurrency, args.candidate_startup, args.max_at_once, args.out
        ),
    )


if __name__ == "__main__":
    main()
