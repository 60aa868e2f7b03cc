"""Fleet rollout benchmark: one run of dags/fleet_rollout.py rolls the echo image out to N Services.

On the native Celery topology of the end-to-end tests (PostgreSQL, Redis, two Celery workers, scheduler,
dag-processor, triggerer, api-server) against one local_knative, for each N (default 10, 50, 100): wall
time of the DAG run, task instances run, peak resident memory of the triggerer, the workers (with their
task processes) and the whole stack, sampled every 0.5 s with psutil. Every Service must end promoted;
otherwise the benchmark fails. Results: benchmarks/results/fleet.json and fleet.md.

    .venv/bin/python benchmarks/fleet.py            # N = 10, 50, 100 (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/fleet.py --sizes 5
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "include"), str(REPO / "plugins")]

from local_airflow import CELERY_EXECUTOR, AirflowStack, kubernetes_connection  # noqa: E402
from local_knative.runtime import FAST_SCALING_ARGS  # noqa: E402
from local_knative.testing import LocalKnative  # noqa: E402
from tests.e2e.backing_services import PostgresServer, RedisServer  # noqa: E402
from tests.e2e.conftest import E2E_DAGS, EXAMPLE_DAGS  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


class PeakMemory:
    """Sample the resident memory of process trees in a thread; keep each tree's peak (MiB)."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.peaks = dict.fromkeys(roots, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree_rss(self, pid: int) -> float:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, pid in self.roots.items():
                self.peaks[name] = max(self.peaks[name], self._tree_rss(pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(sizes: list[int], workers: int, concurrency: int) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    cluster = LocalKnative.start(root / "cluster", extra_args=FAST_SCALING_ARGS)
    postgres = PostgresServer().start()
    redis = RedisServer().start()
    stack = AirflowStack(
        root / "airflow",
        dag_bundles={"e2e-dags": E2E_DAGS, "example-dags": EXAMPLE_DAGS},
        connections={"kubernetes_default": kubernetes_connection(cluster.kubeconfig, cluster.ingress_url)},
        executor=CELERY_EXECUTOR,
        database_url=postgres.url,
        broker_url=redis.url,
        celery_workers=workers,
        worker_concurrency=concurrency,
    )
    rows = []
    try:
        stack.start()
        for size in sizes:
            namespace = f"fleet-{size}-{int(time.time())}"
            status, body = cluster.request(
                "POST",
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
            assert status == 201, body
            services = [f"svc-{n}" for n in range(size)]
            roots = {name: process.pid for name, process in stack.processes.items()}
            with PeakMemory(
                {
                    "triggerer": roots["triggerer"],
                    "worker_1": roots[stack.workers[0]],
                    "scheduler": roots["scheduler"],
                    "local_knative": cluster.pid or 0,
                }
            ) as memory:
                started = time.monotonic()
                result = stack.run_dag(
                    "fleet_rollout",
                    {"services": services, "namespace": namespace, "wave_percent": 25, "max_failures": 1},
                    timeout=60 + 20 * size,
                )
                wall = time.monotonic() - started
            summary = stack.xcom(result.dag_id, result.run_id, "summary") if result.state == "success" else {}
            instances = stack.task_instances(result.dag_id, result.run_id)
            row = {
                "services": size,
                "state": result.state,
                "promoted": len(summary.get("promoted", [])),
                "wall_seconds": round(wall, 1),
                "seconds_per_service": round(wall / size, 2),
                "task_instances": len(instances),
                "peak_rss_mib": {name: round(value, 1) for name, value in memory.peaks.items()},
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
            if result.state != "success" or row["promoted"] != size:
                raise SystemExit(f"fleet of {size} did not promote every Service: {row}")
            cluster.request("DELETE", f"/api/v1/namespaces/{namespace}")
    finally:
        stack.stop()
        redis.stop()
        postgres.stop()
        cluster.stop()
    return rows


def write(rows: list[dict[str, Any]], workers: int, concurrency: int) -> None:
    machine = {"cpus": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30)}
    meta = {"python": platform.python_version(), "celery_workers": workers, "worker_concurrency": concurrency}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fleet.json").write_text(
        json.dumps({"machine": machine, **meta, "runs": rows}, indent=2) + "\n"
    )
    lines = [
        "# Fleet rollout: one DAG run, N Services (dags/fleet_rollout.py, echo image, steps 50/100)",
        "",
        f"Machine: {machine['cpus']} cores, {machine['memory_gib']} GiB; CeleryExecutor, {workers} workers x "
        f"{concurrency} slots, PostgreSQL + Redis, one local_knative. `benchmarks/fleet.py`.",
        "",
        "| N | state | promoted | wall s | s / Service | task instances | peak RSS MiB: triggerer | "
        "worker 1 | scheduler | local_knative |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peak = row["peak_rss_mib"]
        lines.append(
            f"| {row['services']} | {row['state']} | {row['promoted']} | {row['wall_seconds']} | "
            f"{row['seconds_per_service']} | {row['task_instances']} | {peak['triggerer']} | "
            f"{peak['worker_1']} | {peak['scheduler']} | {peak['local_knative']} |"
        )
    (RESULTS / "fleet.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rows = run(args.sizes, args.workers, args.concurrency)
    write(rows, args.workers, args.concurrency)


if __name__ == "__main__":
    main()
