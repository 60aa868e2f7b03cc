"""The ``python -m knative_rollout.loadtest`` command: exit codes, report, plot, progress; engine purity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.loadgen.stall_server import StallPattern

REPORT_KEYS = {
    "requests",
    "completed",
    "succeeded",
    "timeouts",
    "offered_rate",
    "achieved_rate",
    "errors",
    "latency_ms",
    "latency_ms_ok",
    "above_timeout",
    "verdict",
}


def loadtest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knative_rollout.loadtest", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("slo", "exit_code", "failed"),
    [
        ("p50<=100ms,error_rate<=0.01,achieved_rate>=95", 0, []),
        ("p99<=100ms,error_rate<=0.01,p50<=100ms", 1, ["p99"]),
    ],
)
def test_exit_code_and_report_follow_the_verdict(
    stall_server: tuple[str, StallPattern], tmp_path: Path, slo: str, exit_code: int, failed: list[str]
) -> None:
    url, _ = stall_server
    report_path, plot_path = tmp_path / "report.json", tmp_path / "latency.png"
    done = loadtest(
        *("--url", url, "--rate", "100", "--duration", "2s", "--slo", slo),
        *("--json", str(report_path), "--plot", str(plot_path), "--progress-interval", "500ms"),
        cwd=tmp_path,
    )
    assert done.returncode == exit_code, done.stderr
    report = json.loads(report_path.read_text())
    assert report.keys() >= REPORT_KEYS
    assert set(report["latency_ms"]) == {"p50", "p90", "p95", "p99", "p999", "max", "mean"}
    assert report["requests"] == report["completed"] == report["succeeded"] == 200 and report["errors"] == {}
    assert report["latency_ms"] == report["latency_ms_ok"] and report["above_timeout"] == []
    assert report["verdict"]["passed"] is (exit_code == 0)
    assert [item["metric"] for item in report["verdict"]["failed"]] == failed
    for item in report["verdict"]["failed"]:
        assert item["measured"] == report["latency_ms"][item["metric"]] and item["by"] > 0
    # One 300 ms stall in 2 s at 100/s: 15% of requests wait; p99 is near 280 ms.
    assert report["latency_ms"]["p99"] > 200
    assert plot_path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    progress = [line for line in done.stderr.splitlines() if "completed" in line]
    assert len(progress) >= 4
    assert ("SLO passed" if exit_code == 0 else "SLO failed: p99") in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "10"], "the following arguments are required: --url"),
        (["--url", "http://127.0.0.1:9/", "--duration", "5s"], "positive rate"),
        (["--url", "http://127.0.0.1:9/", "--rate", "10", "--slo", "p99=5ms"], "METRIC OP VALUE"),
        (["--url", "http://127.0.0.1:9/", "--rate", "10", "--duration", "soon"], "invalid duration"),
        (["--url", "http://127.0.0.1:9/", "--rate", "10", "--header", "novalue"], "NAME:VALUE"),
        (["--url", "http://127.0.0.1:9/", "--rate", "10", "--body", "/nonexistent/body.json"], "cannot read"),
        (["--url", "http://127.0.0.1:9/", "--stage", "10s:fast"], "invalid stage"),
        (["--url", "http://127.0.0.1:9/", "--rate", "10", "--warmup=-1s"], "invalid duration"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_wrong(tmp_path: Path, args: list[str], message: str) -> None:
    done = loadtest(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr


def test_unreachable_target_is_inconclusive_and_fails(tmp_path: Path) -> None:
    done = loadtest(
        *("--url", "http://127.0.0.1:9/", "--rate", "20", "--duration", "500ms", "--quiet", "--warmup", "0"),
        *("--slo", "error_rate<=0.01", "--json", str(tmp_path / "r.json")),
        cwd=tmp_path,
    )
    assert done.returncode == 3
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["errors"] == {"connection_refused": 10}
    answered, error_rate = report["verdict"]["failed"]
    assert answered["message"] == "no request of 10 was answered (10 connection_refused)"
    assert error_rate["metric"] == "error_rate" and error_rate["measured"] == 1.0
    assert done.stderr == ""


def test_engine_imports_neither_airflow_nor_kubernetes() -> None:
    code = (
        "import sys, knative_rollout.loadtest, knative_rollout.loadtest.cli;"
        "roots = {m.split('.')[0] for m in sys.modules};"
        "bad = sorted(roots & {'airflow', 'kubernetes', 'kubernetes_asyncio'});"
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
