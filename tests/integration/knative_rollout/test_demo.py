"""`make demo` in a real Airflow: four retrain-and-rollout runs (first, bad, good, worse), KEEP=1, --stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from kubernetes import client, config

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DEMO = REPO_ROOT / "include" / "demo.py"
DEMO_TIMEOUT = 420
DAG_ID = "retrain_and_rollout"


@dataclass(frozen=True)
class Run:
    """One run as the demo printed it."""

    state: str
    tasks: dict[str, tuple[str, str]]  # task id -> (state, what it returned or why it failed)
    not_run: dict[str, set[str]]  # "skipped" / "upstream_failed" -> task ids
    deferred: list[str]


def _runs(output: str) -> list[Run]:
    """Return each run's DAG run state, its task lines, the tasks that did not run and those that deferred."""
    runs = []
    for block in output.split("\nRun ")[1:]:
        lines = block.split("\n\n")[0].splitlines()
        state = next(line for line in lines if line.startswith("DAG run ")).split()[2]
        tasks: dict[str, tuple[str, str]] = {}
        not_run: dict[str, set[str]] = {"skipped": set(), "upstream_failed": set()}
        deferred: list[str] = []
        for line in lines:
            head, _, rest = line.strip().partition(": ")
            if head in not_run:
                not_run[head] = set(rest.split(", "))
            elif head == "deferred":
                deferred = [] if rest == "none" else rest.split(", ")
            elif line.startswith("  ") and not line.startswith("  http") and len(line.split()) >= 2:
                task_id, task_state, *detail = line.split(maxsplit=2)
                tasks[task_id] = (task_state, detail[0] if detail else "")
        runs.append(Run(state, tasks, not_run, deferred))
    return runs


def _line(output: str, prefix: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(prefix))


def _rest(api_url: str, path: str) -> Any:
    with urllib.request.urlopen(api_url + path, timeout=30) as response:
        return json.loads(response.read())


def _revision(api_url: str, run_id: str) -> str:
    """Return the revision a run's rollout deployed, from the XCom Airflow's REST API serves."""
    path = (
        f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        "/taskInstances/rollout.deploy_candidate/xcomEntries/return_value"
    )
    return str(_rest(api_url, path)["value"]["revision"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Run the demo with KEEP=1 in a directory of its own; stop what it left running afterwards."""
    demo_dir = tmp_path_factory.mktemp("demo")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    environment.update({"KNATIVE_ROLLOUT_DEMO_DIR": str(demo_dir), "KEEP": "1"})
    stop = [sys.executable, str(DEMO), "--stop"]
    try:
        result = subprocess.run(
            [sys.executable, str(DEMO)],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT,
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
        yield result.stdout, demo_dir
    finally:
        running = demo_dir / "running.json"
        pids = [pid for pid, _ in json.loads(running.read_text()).values()] if running.exists() else []
        stopped = subprocess.run(stop, env=environment, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not [pid for pid in pids if psutil.pid_exists(pid)], "--stop left processes running"


@pytest.mark.timeout(DEMO_TIMEOUT + 120)
def test_demo_promotes_a_good_model_and_rolls_back_a_bad_one(demo: tuple[str, Path]) -> None:
    output, demo_dir = demo
    assert "All runs ended as expected." in output
    first, bad, good, worse = _runs(output)

    # The first model becomes the Service; the rollout after it finds nothing to roll out.
    assert first.state == "success"
    assert first.tasks["bootstrap"][0] == "success"
    assert "rollout.deploy_candidate" in first.not_run["skipped"]
    # The bad one is better offline, fails the gate on its tag URL, and is rolled back; its slow start
    # made the deploy wait in the triggerer.
    assert bad.state == "failed"
    assert "better by" in bad.tasks["evaluate"][1]
    assert bad.tasks["rollout.load_test"][0] == "failed"
    assert "SLO failed: p99" in bad.tasks["rollout.load_test"][1]
    rollback_state, rollback = bad.tasks["rollout.rollback"]
    assert rollback_state == "success" and rollback.startswith("rolled back: "), rollback
    assert {"rollout.traffic_10", "rollout.promote"} <= bad.not_run["upstream_failed"]
    assert "rollout.deploy_candidate" in bad.deferred
    # The good one is promoted step by step (every step's analysis, if the DAG has one, passed), after a
    # gate that passed with its percentiles shown.
    assert good.state == "success"
    assert {state for state, _ in good.tasks.values()} == {"success"}, good.tasks
    assert {"rollout.load_test", "rollout.promote", "teardown"} <= set(good.tasks)
    assert good.tasks["train"][1].startswith("model iris-b3-"), good.tasks["train"]
    gate = good.tasks["rollout.load_test"][1]
    assert "SLO passed" in gate and " p50 " in gate and " p99 " in gate
    assert all(f"={p}%" in good.tasks[f"rollout.traffic_{p}"][1] for p in (10, 50, 100)), good.tasks
    assert good.not_run["skipped"] == {"rollout.rollback"}
    # The worse one stops at the offline evaluation: green, nothing after it ran.
    assert worse.state == "success"
    assert worse.tasks["evaluate"][1].startswith("not rolled out")
    assert {"publish", "bootstrap", "rollout.deploy_candidate"} <= worse.not_run["skipped"]

    assert "100%  tag stable" in output.split("Final traffic")[1]
    assert "'predictions': [" in output
    assert (
        _line(output, "Deferred and resumed by the triggerer: ")
        != "Deferred and resumed by the triggerer: none"
    )
    api_url = _line(output, "Airflow UI: ").split()[2].rstrip("/")
    assert _line(output, "Rollouts page: ").split()[2] == f"{api_url}/knative-rollout/"
    assert "Left running (KEEP=1)" in output and "--stop" in output
    # The demo's time is printed, not asserted: a loaded CI machine is no measure of the 5-minute goal.
    assert int(_line(output, "Elapsed: ").split()[1]) > 0

    # Left running: Airflow answers with the four runs, and the cluster shows where they left the Service.
    runs = _rest(api_url, f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=run_after")["dag_runs"]
    assert [run["state"] for run in runs] == ["success", "failed", "success", "success"]
    bad_revision, promoted = (
        _revision(api_url, runs[1]["dag_run_id"]),
        _revision(api_url, runs[2]["dag_run_id"]),
    )
    api = client.CustomObjectsApi(
        config.new_client_from_config(config_file=str(demo_dir / "cluster" / "kubeconfig"))
    )
    service = api.get_namespaced_custom_object("serving.knative.dev", "v1", "default", "services", "iris")
    served = [(t["revisionName"], t["percent"], t.get("tag")) for t in service["status"]["traffic"]]
    assert served == [(promoted, 100, "stable")]
    history = json.loads(service["metadata"]["annotations"]["rollout.knative-rollout.dev/history"])
    # The rollback was written by the bad run's rollback task, back to the stable of that time.
    rollbacks = [entry for entry in history if entry["action"] == "RolledBack"]
    assert len(rollbacks) == 1, history
    assert rollbacks[0]["by"].startswith(f"{DAG_ID}/{runs[1]['dag_run_id']}/rollout.rollback/"), rollbacks
    assert f"creating revision {bad_revision}" in json.dumps(history), history
    # The worse model was never published or deployed: no revision runs it.
    revisions = api.list_namespaced_custom_object("serving.knative.dev", "v1", "default", "revisions")[
        "items"
    ]
    model_uris = [
        variable.get("value", "")
        for revision in revisions
        for container in revision["spec"]["containers"]
        for variable in container.get("env") or []
        if variable["name"] == "MODEL_URI"
    ]
    assert model_uris and not [uri for uri in model_uris if "b2-n50" in uri], model_uris
    assert not (demo_dir / "airflow" / "knative-rollout" / "models" / "iris-b2-n50-d0").exists()
    # The deferral, in the task log files the worker and the triggerer wrote.
    logs = (demo_dir / "airflow" / "logs" / f"dag_id={DAG_ID}").glob("run_id=*/task_id=*/attempt=*.log*")
    texts = [path.read_text(errors="replace") for path in logs]
    assert any("Pausing task as DEFERRED." in text for text in texts)
    assert any("Trigger fired event" in text for text in texts)
