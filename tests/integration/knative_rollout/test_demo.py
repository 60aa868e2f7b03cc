"""`make demo` end to end: start a cluster, train two models, run the example DAG, stop the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def test_demo_runs_the_example_rollout(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    environment["KNATIVE_ROLLOUT_DEMO_DIR"] = str(tmp_path / "demo")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "include" / "demo.py")],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout
    assert result.returncode == 0, output[-3000:] + result.stderr[-3000:]
    assert "DAG run success" in output
    # One line per task: "  TASK_ID  STATE  SUMMARY" (the DAG's exact shape is tests/dags' business).
    steps = output.split("Steps:\n")[1].split("Final traffic:")[0].splitlines()
    states = {line.split()[0]: line.split()[1] for line in steps}
    assert {"deploy_v1", "rollout.load_test", "rollout.promote", "rollout.outcome", "teardown"} <= set(states)
    assert {task_id for task_id, state in states.items() if state != "success"} == {"rollout.rollback"}
    assert states["rollout.rollback"] == "skipped"
    gate = next(line for line in steps if line.split()[0] == "rollout.load_test")
    assert "100/100 requests at" in gate and "error rate 0.00%: SLO passed" in gate
    assert "tag URL http://candidate-iris.default.example.com" in output
    final = output.split("Final traffic:")[1]
    assert "100%  tag stable" in final
    assert "'predictions': [" in final
    assert "Stopping local_knative." in output
