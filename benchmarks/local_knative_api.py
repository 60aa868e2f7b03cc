"""Benchmark the local_knative API server through the real ``kubernetes`` client.

Starts a local_knative whose image catalog is empty (every revision fails at once with ErrImagePull, so no
process is started per Service and the numbers measure the API server, store and controller), creates
N Knative Services, waits for the controllers to finish reconciling them, lists them M times, watches them
from resourceVersion 0, and writes writes/s, list
latency p50/p99, watch replay time and the server's resident memory to
``benchmarks/results/local_knative_api.json`` and ``.md``.

Run: ``.venv/bin/python benchmarks/local_knative_api.py [--services 1000] [--lists 30]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import psutil

from local_knative.testing import LocalKnative

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GROUP, VERSION, PLURAL, NAMESPACE = "serving.knative.dev", "v1", "services", "default"


def percentile(samples: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def service(number: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Service",
        "metadata": {"name": f"svc-{number:05d}", "labels": {"bench": "api"}},
        "spec": {
            "template": {"spec": {"containers": [{"image": f"registry.example.com/bench/app:{number}"}]}}
        },
    }


def wait_until_idle(objects: kubernetes.client.CustomObjectsApi, quiet: float = 1.0) -> float:
    """Wait until the controllers stop writing (resourceVersion still for ``quiet`` s).

    :returns: the ``perf_counter()`` time the last write happened (within ``quiet``).
    """
    last = None
    while True:
        current = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, limit=1)
        rv = current["metadata"]["resourceVersion"]
        if rv == last:
            return time.perf_counter() - quiet
        last = rv
        time.sleep(quiet)


def run(services: int, lists: int, data_dir: Path) -> dict[str, Any]:
    """Run the benchmark against a new server on ``data_dir`` and return the measurements."""
    catalog = data_dir / "empty-images.yaml"
    catalog.write_text("images: {}\n")
    server = LocalKnative.start(data_dir / "server", images=catalog)
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
        objects = kubernetes.client.CustomObjectsApi(api)
        started = time.perf_counter()
        for number in range(services):
            objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, service(number))
        create_seconds = time.perf_counter() - started
        settle_seconds = wait_until_idle(objects) - started - create_seconds

        latencies = []
        for _ in range(lists):
            began = time.perf_counter()
            listed = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
            latencies.append(time.perf_counter() - began)
            if len(listed["items"]) != services:
                raise RuntimeError(f"listed {len(listed['items'])} services, expected {services}")

        raw_latencies = []
        list_url = f"{server.api_url}/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
        for _ in range(lists):
            began = time.perf_counter()
            with urllib.request.urlopen(list_url, timeout=60) as response:
                list_bytes = len(response.read())
            raw_latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        replayed = 0
        watcher = kubernetes.watch.Watch()
        for event in watcher.stream(
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            resource_version="0",
            timeout_seconds=120,
        ):
            if event["type"] == "ADDED":
                replayed += 1
                if replayed == services:
                    watcher.stop()
        replay_seconds = time.perf_counter() - began
        if replayed != services:
            raise RuntimeError(f"the watch replayed {replayed} services, expected {services}")

        process = psutil.Process(server.pid)
        rss = process.memory_info().rss
        resource_version = int(listed["metadata"]["resourceVersion"])
        api.close()
    finally:
        server.stop()
    return {
        "benchmark": "local_knative_api",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "client": f"kubernetes {kubernetes.__version__} (sync, one connection, sequential requests)",
        "services": services,
        "create_seconds": round(create_seconds, 3),
        "writes_per_second": round(services / create_seconds, 1),
        "controller_settle_seconds": round(max(settle_seconds, 0.0), 3),
        "store_writes_total": resource_version,
        "list": {
            "count": lists,
            "items": services,
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        },
        "list_raw_http": {
            "note": "same LIST over plain HTTP, body read but not parsed: the server's share",
            "bytes": list_bytes,
            "p50_ms": round(percentile(raw_latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(raw_latencies, 0.99) * 1000, 2),
        },
        "watch_replay": {
            "from_resource_version": "0",
            "events": replayed,
            "seconds": round(replay_seconds, 3),
        },
        "server_rss_mib": round(rss / 2**20, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """Return a short Markdown report of ``result``."""
    listing = result["list"]
    return "\n".join(
        [
            "# local_knative API server benchmark",
            "",
            f"{result['date']}, {result['machine']['cpus']} CPUs (shared), "
            f"Python {result['machine']['python']}; client: {result['client']}. "
            "Image catalog empty, so revisions fail at once and no pod process runs.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| Services created | {result['services']} in {result['create_seconds']} s |",
            f"| create throughput | {result['writes_per_second']} Services/s |",
            f"| store writes in total (controller + runtime included) | {result['store_writes_total']} |",
            f"| controllers idle after the last create | {result['controller_settle_seconds']} s |",
            f"| LIST of {listing['items']} Services with the kubernetes client, {listing['count']} times | "
            f"p50 {listing['p50_ms']} ms, "
            f"p99 {listing['p99_ms']} ms, mean {listing['mean_ms']} ms |",
            f"| same LIST over plain HTTP, not parsed ({result['list_raw_http']['bytes']} bytes) | "
            f"p50 {result['list_raw_http']['p50_ms']} ms, p99 {result['list_raw_http']['p99_ms']} ms |",
            f"| WATCH from resourceVersion 0 ({result['watch_replay']['events']} ADDED events) | "
            f"{result['watch_replay']['seconds']} s |",
            f"| server resident memory after the run | {result['server_rss_mib']} MiB |",
            "",
            "Reproduce: `.venv/bin/python benchmarks/local_knative_api.py`.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the result files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--services", type=int, default=1000, help="how many Services to create (default 1000)"
    )
    parser.add_argument("--lists", type=int, default=30, help="how many LISTs to time (default 30)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "local_knative_api.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="local-knative-bench-") as tmp:
        result = run(args.services, args.lists, Path(tmp))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(markdown(result))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
