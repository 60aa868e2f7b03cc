"""`make demo` end to end: four retrain-and-rollout runs (first, bad, good, worse) on a fresh cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def _runs(output: str) -> list[tuple[str, dict[str, str], list[str]]]:
    """Return each run's DAG run state, its task states and its step lines, in order."""
    runs = []
    for block in output.split("\nRun ")[1:]:
        head, _, steps = block.partition("Steps:\n")
        lines = [line for line in steps.splitlines() if line.startswith("  ") and len(line.split()) >= 2]
        lines = lines[: next((i for i, line in enumerate(lines) if line.startswith("  iris-")), len(lines))]
        state = next(line for line in head.splitlines() if line.startswith("DAG run ")).split()[2]
        runs.append((state, {line.split()[0]: line.split()[1] for line in lines}, lines))
    return runs


def test_demo_promotes_a_good_model_and_rolls_back_a_bad_one(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    environment["KNATIVE_ROLLOUT_DEMO_DIR"] = str(tmp_path / "demo")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "include" / "demo.py")],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=420,
    )
    output = result.stdout
    assert result.returncode == 0, output[-4000:] + result.stderr[-3000:]
    assert "All runs ended as expected." in output
    first, bad, good, worse = _runs(output)

    # The first model becomes the Service; the rollout after it finds nothing to roll out.
    assert first[0] == "success"
    assert (first[1]["bootstrap"], first[1]["rollout.deploy_candidate"]) == ("success", "skipped")
    # The bad one is better offline, fails the gate on its tag URL, and is rolled back.
    assert bad[0] == "failed"
    assert (bad[1]["rollout.load_test"], bad[1]["rollout.rollback"]) == ("failed", "success")
    gate = next(line for line in bad[2] if line.split()[0] == "rollout.load_test")
    assert "SLO failed: p99" in gate
    # The good one is promoted step by step.
    assert good[0] == "success"
    assert {good[1][task] for task in ("rollout.load_test", "rollout.promote", "teardown")} == {"success"}
    assert good[1]["rollout.rollback"] == "skipped"
    assert "SLO passed" in next(line for line in good[2] if line.split()[0] == "rollout.load_test")
    # The worse one stops at the offline evaluation: green, nothing after it ran.
    assert worse[0] == "success"
    assert "not rolled out" in next(line for line in worse[2] if line.split()[0] == "evaluate")
    assert worse[1]["publish"] == worse[1]["rollout.deploy_candidate"] == "skipped"

    final = output.split("Final traffic:")[1]
    assert "100%  tag stable" in final
    assert "'predictions': [" in final
    assert "Stopping local_knative." in output
