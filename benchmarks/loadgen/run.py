"""Benchmark our load generator against hey, wrk and Locust: throughput per core, and honesty of the p99.

1. Throughput: nginx (one worker pinned to CPU 0, a temporary config answering ``200 ok``) on loopback;
   each generator pinned to CPU 1 with ``taskset`` (hey with GOMAXPROCS=1, wrk with one thread, Locust one
   process with FastHttpUser), 50 connections or users, flat out for ``--duration`` seconds; requests/s.
2. Honesty: ``stall_server.py`` (pinned to CPU 0) stops answering for 300 ms every 2 s. Each tool offers
   R requests/s with 10 workers (ours: open model, and closed loop for comparison; hey: 10 workers x R/10
   per second; Locust: 10 users x R/10 per second; wrk cannot pace, so it runs flat out on 10
   connections) and reports its p99. The truth is what requests arriving at R per second would wait
   (:meth:`StallPattern.true_percentile`; about 280 ms). Two scenarios: R = 200 and R = 1000. A closed
   loop sees one stalled request per worker per stall, so its p99 can only be right while the workers are
   at least 1% of the requests in a period (10 >= 0.01 * R * 2 s holds for R = 200, not for R = 1000).

Results go to ``benchmarks/results/loadgen.json`` and ``.md``. Needs the Debian packages nginx-light, hey
and wrk, and Locust (PyPI). Run: ``.venv/bin/python benchmarks/loadgen/run.py [--duration 10]``.

3. The latency histogram's cost on the hot path (hdrhistogram against the hand-written one it replaced):
   ``histogram.py`` beside this file, run at the end with its defaults (results ``loadgen_histogram.*``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.loadgen.stall_server import StallPattern, stall_server_process  # noqa: E402
from benchmarks.peers import parse_wrk, start_nginx  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SERVER_CPU, CLIENT_CPU = 0, 1
CONNECTIONS = 50
STALL_RATES, STALL_WORKERS = (200, 1000), 10
# nginx answers every request itself, so the generators, not the server, are what is measured.
NGINX_SERVER = """
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "ok"; }}
  }}
"""


def pinned(cpu: int, command: list[str]) -> list[str]:
    """Return ``command`` run on one CPU only."""
    return ["taskset", "-c", str(cpu), *command]


@contextmanager
def nginx(workdir: Path) -> Iterator[str]:
    """Run nginx pinned to the server CPU on a free loopback port; yield its URL."""
    process, port = start_nginx(workdir, NGINX_SERVER, pin=pinned(SERVER_CPU, []))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(command: list[str], env: dict[str, str] | None = None) -> str:
    """Run a generator and return its standard output (fail loudly with its output)."""
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300
    )
    if done.returncode not in (0, 1):  # ours exits 1 when an SLO fails; none is given here
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def ours(url: str, duration: int, workdir: Path, *args: str) -> dict[str, Any]:
    """Run our generator; return its JSON report."""
    report = workdir / "ours.json"
    command = [sys.executable, "-m", "knative_rollout.loadtest", "--url", url, "--duration", f"{duration}s"]
    run(pinned(CLIENT_CPU, [*command, *args, "--quiet", "--json", str(report)]))
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def hey(url: str, duration: int, workers: int, per_worker_rate: float | None = None) -> dict[str, Any]:
    """Run hey; return requests/s and p99 (ms)."""
    command = ["hey", "-z", f"{duration}s", "-c", str(workers)]
    command += ["-q", f"{per_worker_rate:g}"] if per_worker_rate else []
    out = run(pinned(CLIENT_CPU, [*command, url]), env={"GOMAXPROCS": "1"})
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)) * 1000  # type: ignore[union-attr]
    return {"requests_per_s": rps, "p99_ms": p99}


def wrk(url: str, duration: int, connections: int) -> dict[str, Any]:
    """Run wrk (one thread); return requests/s and p99 (ms)."""
    out = run(pinned(CLIENT_CPU, ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]))
    numbers = parse_wrk(out)
    return {"requests_per_s": numbers["rps"], "p99_ms": numbers["p99_ms"]}


def locust(url: str, duration: int, users: int, workdir: Path, per_user_rate: float = 0) -> dict[str, Any]:
    """Run Locust headless (one process, FastHttpUser); return requests/s and p99 (ms) from its CSV."""
    prefix = workdir / f"locust-{users}-{per_user_rate:g}"
    command = [str(Path(sys.executable).parent / "locust"), "-f", str(HERE / "locustfile.py"), "--headless"]
    command += ["-u", str(users), "-r", str(users), "-t", f"{duration}s", "--host", url.rstrip("/")]
    command += ["--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    run(pinned(CLIENT_CPU, command), env={"LOADGEN_USER_RATE": str(per_user_rate)})
    with open(f"{prefix}_stats.csv", newline="") as file:
        row = next(row for row in csv.DictReader(file) if row["Name"] == "Aggregated")
    return {"requests_per_s": float(row["Requests/s"]), "p99_ms": float(row["99%"])}


def throughput(duration: int, workdir: Path) -> dict[str, dict[str, float]]:
    """Part 1: maximum requests/s of each generator on one core against nginx."""
    with nginx(workdir) as url:
        report = ours(url, duration, workdir, "--model", "closed", "--concurrency", str(CONNECTIONS))
        results = {"ours": {"requests_per_s": report["throughput"], "p99_ms": report["latency_ms"]["p99"]}}
        results["hey"] = hey(url, duration, CONNECTIONS)
        results["wrk"] = wrk(url, duration, CONNECTIONS)
        results["locust"] = locust(url, duration, CONNECTIONS, workdir)
    return results


def honesty(duration: int, workdir: Path, rate: int) -> dict[str, dict[str, float]]:
    """Part 2: the p99 each generator reports against the stalling server at ``rate``, and the truth."""
    pattern = StallPattern(epoch=time.time())
    per_worker = rate / STALL_WORKERS
    results: dict[str, dict[str, float]] = {}
    with stall_server_process(pattern, cpu=SERVER_CPU) as url:
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "ours": lambda: ours(url, duration, workdir, "--rate", str(rate)),
            "ours_closed": lambda: ours(
                url,
                duration,
                workdir,
                "--rate",
                str(rate),
                "--model",
                "closed",
                "--concurrency",
                str(STALL_WORKERS),
            ),
            "hey": lambda: hey(url, duration, STALL_WORKERS, per_worker),
            "wrk": lambda: wrk(url, duration, STALL_WORKERS),
            "locust": lambda: locust(url, duration, STALL_WORKERS, workdir, per_worker),
        }
        for name, start_run in runs.items():
            started = time.time()
            outcome = start_run()
            if "latency_ms" in outcome:
                outcome = {"requests_per_s": outcome["achieved_rate"], "p99_ms": outcome["latency_ms"]["p99"]}
            # The truth for requests arriving at the offered rate during this run's window.
            truth = pattern.true_percentile(started, rate, duration, 99) * 1000
            error = (outcome["p99_ms"] - truth) / truth
            results[name] = {**outcome, "true_p99_ms": round(truth, 1), "error": round(error, 4)}
    return results


def markdown(report: dict[str, Any]) -> str:
    """Return the results as a Markdown page."""
    meta, speed, honest, goals = report["meta"], report["throughput"], report["honesty"], report["goals"]
    lines = [
        "# Load generator benchmark: ours vs hey, wrk, Locust",
        "",
        f"{meta['date']}, {meta['cpus']} CPUs shared with other work (load average {meta['load_average']} at"
        f" start), {meta['python']}. Server pinned to CPU {SERVER_CPU}, every generator to CPU {CLIENT_CPU}"
        f" (taskset); {meta['duration_s']} s per run. Single runs on a shared machine: expect +-15% noise.",
        "",
        f"## Maximum throughput against nginx on loopback ({CONNECTIONS} connections, closed loop, one core)",
        "",
        "| generator | requests/s | ours / it |",
        "|---|---|---|",
    ]
    for name, values in speed.items():
        ratio = speed["ours"]["requests_per_s"] / values["requests_per_s"]
        lines.append(f"| {name} | {values['requests_per_s']:.0f} | {ratio:.2f} |")
    for rate, results in honest.items():
        lines += [
            "",
            f"## Reported p99 against a server that stalls 300 ms every 2 s ({rate} requests/s offered)",
            "",
            "| generator | how it sends | requests/s achieved | reported p99 (ms) | true p99 (ms) | error |",
            "|---|---|---|---|---|---|",
        ]
        per_worker = int(rate) // STALL_WORKERS
        how = {
            "ours": "open model, fixed schedule",
            "ours_closed": f"closed loop, {STALL_WORKERS} workers, capped at {rate}/s",
            "hey": f"{STALL_WORKERS} workers x {per_worker}/s (-q)",
            "wrk": f"{STALL_WORKERS} connections, flat out (cannot pace)",
            "locust": f"{STALL_WORKERS} users x {per_worker}/s (constant_throughput)",
        }
        for name, values in results.items():
            lines.append(
                f"| {name} | {how[name]} | {values['requests_per_s']:.0f} | {values['p99_ms']:.1f} |"
                f" {values['true_p99_ms']:.1f} | {values['error']:+.1%} |"
            )
    lines += [
        "",
        "Notes: ours measures each request from its scheduled start, so the stall is in its percentiles by",
        "construction. The closed loops (ours_closed, hey, Locust) send one request per worker and wait, so",
        "a stall delays only one request per worker: their p99 is right only while the workers make up at",
        "least 1% of the requests in a stall period. wrk 4.1 does not pace but corrects its histogram after",
        "the run (`stats_correct`): it adds synthetic samples as if requests had kept coming at its observed",
        "per-connection interval; that estimate can land near the truth, for a load it never actually sent.",
        "",
        "## Goals",
        "",
    ]
    lines += [f"- {goal}: {'yes' if met else 'NO'}" for goal, met in goals.items()]
    lines += [
        "",
        "Reproduce: `.venv/bin/python benchmarks/loadgen/run.py` (needs nginx-light, hey, wrk, locust).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run both parts and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    args = parser.parse_args()
    for binary in ("nginx", "hey", "wrk", "taskset"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            sys.exit(f"{binary} is not installed: apt-get install -y nginx-light hey wrk util-linux")
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "python": f"Python {platform.python_version()}",
        "duration_s": args.duration,
    }
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as tmp:
        speed = throughput(args.duration, Path(tmp))
        honest = {str(rate): honesty(args.duration, Path(tmp), rate) for rate in STALL_RATES}
    ours_rps = speed["ours"]["requests_per_s"]
    within = {
        rate: [name for name, values in results.items() if abs(values["error"]) <= 0.10]
        for rate, results in honest.items()
    }
    report = {
        "meta": meta,
        "throughput": speed,
        "ratios": {
            f"ours/{name}": round(ours_rps / v["requests_per_s"], 3)
            for name, v in speed.items()
            if name != "ours"
        },
        "honesty": honest,
        "within_10_percent_of_true_p99": within,
        "goals": {
            "at least half of hey's requests/s per core": ours_rps >= 0.5 * speed["hey"]["requests_per_s"],
            "more requests/s than Locust": ours_rps > speed["locust"]["requests_per_s"],
            **{
                f"ours within 10% of the true p99 at {rate}/s": "ours" in names
                for rate, names in within.items()
            },
            **{
                f"the only one within 10% of the true p99 at {rate}/s": names == ["ours"]
                for rate, names in within.items()
            },
        },
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "loadgen.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS_DIR / "loadgen.md").write_text(markdown(report))
    print(markdown(report))
    from benchmarks.loadgen import histogram

    histogram.main([])


if __name__ == "__main__":
    main()
