"""Benchmark the latency histogram on the load generator's hot path: hdrhistogram vs the hand-written one.

The load generator records one value per request. This measures whether the pinned ``hdrhistogram``
library is fast enough there, two ways:

1. Cost per recorded value: ``LatencyHistogram.record`` (our thin wrapper over ``HdrHistogram``) and the
   hand-written histogram it replaced, read from git history (``--baseline``, the last commit that had
   ``plugins/knative_rollout/loadtest/histogram.py``), on the same 200,000 log-normal latencies.
2. The generator's maximum throughput, before (the baseline commit's whole package, extracted with
   ``git archive`` into a temporary directory) and now: closed loop, 50 connections, one core (taskset),
   against nginx on the other core, ``--rounds`` alternating runs of ``--duration`` seconds; the best run
   (the least disturbed by other work on a shared machine) and the median.

From (1) and (2): the share of one core that recording takes at the best rate; this is the decision figure,
since on a shared machine the throughput runs vary by more than the histogram can cost. The library is
"too slow on the hot path" if it costs more than 10% more of a core than the hand-written one did.
Results go to ``benchmarks/results/loadgen_histogram.json`` and ``.md``. Needs nginx-light. Run:
``.venv/bin/python benchmarks/loadgen/histogram.py [--duration 4] [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "plugins"))

from benchmarks.loadgen.run import CLIENT_CPU, CONNECTIONS, nginx, pinned  # noqa: E402
from knative_rollout.loadtest.latency import LatencyHistogram  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
BASELINE = "896daa6"  # the last commit with the hand-written loadtest/histogram.py
HAND_WRITTEN = "plugins/knative_rollout/loadtest/histogram.py"
VALUES = 200_000
TOO_SLOW = 0.10  # of the generator's maximum throughput


def per_value_ns(record: Callable[[int], None], values: list[int], repeats: int = 5) -> float:
    """Return the best of ``repeats`` timings of recording every value, in nanoseconds per value."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for value in values:
            record(value)
        best = min(best, time.perf_counter() - started)
    return best / len(values) * 1e9


def hand_written(baseline: str) -> ModuleType:
    """Return the hand-written histogram module as it was at ``baseline``."""
    source = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "show", f"{baseline}:{HAND_WRITTEN}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader("hand_written_histogram", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, HAND_WRITTEN, "exec"), module.__dict__)
    return module


def recording(baseline: str) -> dict[str, float]:
    """Part 1: nanoseconds per recorded value, hdrhistogram (through our wrapper) and hand-written."""
    rng = random.Random(1)
    values = [int(rng.lognormvariate(8, 1.2)) for _ in range(VALUES)]
    return {
        "hdrhistogram_ns": round(per_value_ns(LatencyHistogram().record, values), 1),
        "hand_written_ns": round(per_value_ns(hand_written(baseline).LatencyHistogram().record, values), 1),
    }


def extract(baseline: str, into: Path) -> Path:
    """Extract the baseline commit's ``plugins`` folder into ``into``; return its path."""
    archive = into / "baseline.tar"
    with archive.open("wb") as file:
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", baseline, "plugins/knative_rollout"],
            stdout=file,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "plugins"


def max_rate(url: str, duration: int, plugins: Path, workdir: Path) -> float:
    """Run the generator from ``plugins`` flat out on one core; return answered requests per second."""
    report = workdir / "report.json"
    command = [sys.executable, "-m", "knative_rollout.loadtest", "--url", url, "--duration", f"{duration}s"]
    command += ["--model", "closed", "--concurrency", str(CONNECTIONS), "--quiet", "--json", str(report)]
    env = {**os.environ, "PYTHONPATH": str(plugins)}
    subprocess.run(pinned(CLIENT_CPU, command), env=env, cwd=workdir, capture_output=True, timeout=300)
    result: dict[str, Any] = json.loads(report.read_text())
    return float(result["throughput"])


def throughput(baseline: str, duration: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """Part 2: the generator's maximum requests/s before and now, alternating runs."""
    plugins = {"before": extract(baseline, workdir), "now": REPO_ROOT / "plugins"}
    runs: dict[str, list[float]] = {"before": [], "now": []}
    with nginx(workdir) as url:
        for _ in range(rounds):
            for name, path in plugins.items():
                runs[name].append(round(max_rate(url, duration, path, workdir), 1))
    return {
        name: {"runs": values, "median": statistics.median(values), "best": max(values)}
        for name, values in runs.items()
    }


def markdown(report: dict[str, Any]) -> str:
    """Return the results as a Markdown page."""
    meta, record, speed, verdict = (
        report["meta"],
        report["recording"],
        report["throughput"],
        report["verdict"],
    )
    lines = [
        "# Latency histogram on the load generator's hot path: hdrhistogram vs hand-written",
        "",
        f"{meta['date']}, {meta['cpus']} CPUs shared with other work (load average {meta['load_average']} at"
        f" start), {meta['python']}, hdrhistogram {meta['hdrhistogram']}. Baseline: commit {meta['baseline']}"
        " (hand-written histogram).",
        "",
        f"## Cost per recorded value ({VALUES:,} log-normal latencies, best of 5)",
        "",
        "| histogram | ns per value |",
        "|---|---|",
        f"| hdrhistogram (LatencyHistogram.record) | {record['hdrhistogram_ns']:.0f} |",
        f"| hand-written (baseline) | {record['hand_written_ns']:.0f} |",
        "",
        f"## Maximum throughput, closed loop, {CONNECTIONS} connections, one core, against nginx",
        "",
        "| generator | runs (requests/s) | median | best |",
        "|---|---|---|---|",
    ]
    for name, values in speed.items():
        runs = ", ".join(f"{value:.0f}" for value in values["runs"])
        lines.append(f"| {name} | {runs} | {values['median']:.0f} | {values['best']:.0f} |")
    lines += [
        "",
        "## Verdict",
        "",
        f"- recording with hdrhistogram at the maximum rate takes {verdict['record_share_of_core']:.1%} of a"
        f" core ({verdict['extra_record_share_of_core']:.1%} more than the hand-written histogram)",
        f"- throughput now / before, best runs: {verdict['throughput_ratio']:.2f} (the whole change, which"
        " also records every failed request; on a shared machine the runs vary by more than this)",
        f"- too slow (costs more than {TOO_SLOW:.0%} more of a core than the hand-written one):"
        f" {'YES' if verdict['too_slow'] else 'no'}",
        "",
        "Reproduce: `.venv/bin/python benchmarks/loadgen/histogram.py` (needs nginx-light).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run both parts and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per throughput run (default 4)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating runs of each (default 7)")
    parser.add_argument("--baseline", default=BASELINE, help=f"commit with the hand-written one ({BASELINE})")
    args = parser.parse_args(argv)

    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "python": f"Python {platform.python_version()}",
        "hdrhistogram": version("hdrhistogram"),
        "baseline": args.baseline,
        "duration_s": args.duration,
        "rounds": args.rounds,
    }
    record = recording(args.baseline)
    with tempfile.TemporaryDirectory(prefix="loadgen-histogram-") as tmp:
        speed = throughput(args.baseline, args.duration, args.rounds, Path(tmp))
    now = speed["now"]["best"]
    share = record["hdrhistogram_ns"] * now / 1e9
    extra = (record["hdrhistogram_ns"] - record["hand_written_ns"]) * now / 1e9
    ratio = now / speed["before"]["best"]
    report = {
        "meta": meta,
        "recording": record,
        "throughput": speed,
        "verdict": {
            "record_share_of_core": round(share, 4),
            "extra_record_share_of_core": round(extra, 4),
            "throughput_ratio": round(ratio, 3),
            "too_slow": extra > TOO_SLOW,
        },
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "loadgen_histogram.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS_DIR / "loadgen_histogram.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
