"""``make demo``: the first five minutes of a new user, on one machine, with no Docker and no cloud account.

Starts a local_knative and a real Airflow 3 in ``.demo/``: api-server, scheduler, dag-processor and
triggerer as separate processes (LocalExecutor on SQLite, :mod:`local_airflow`, the launcher the
end-to-end tests use), the DAGs of ``dags/`` and a ``kubernetes_default`` connection to the cluster (its
kubeconfig, and the ingress as ``ingress_address``: the demo's ``*.example.com`` hosts have no DNS). It
triggers ``retrain_and_rollout`` four times over the REST API, each run with a training batch of its
own in the run's Params, and waits for each:

1. a first model, trained on noisy labels, becomes the Service (nothing serves yet);
2. a better model whose server is slow (``serving_faults``): it passes the offline evaluation; its
   server also starts slowly, so ``rollout.deploy_candidate`` waits for it in the triggerer, not in a
   worker (deferred, then resumed); the load-test gate on its tag URL fails, it is rolled back and the
   run fails;
3. a better model: canary at 0%, load test, 10% -> 50% -> 100% (each step judged on a 4 s analysis
   window of live metrics, :data:`ANALYSIS`), promoted, old revisions torn down;
4. a worse model (more label noise): stopped by the offline evaluation, production untouched.

What it prints comes from Airflow's REST API (task states, XComs, task logs) and the cluster's API: per
run one line per task (offline metrics, the gate's percentiles and verdict, each step's traffic and its
analysis verdict, why a step failed) and the tasks that deferred; then the final traffic, a prediction
through the ingress, where the files are, the URLs of the Airflow UI and the Rollouts page, and the
time it took.

The scheduler runs with ``use_job_schedule`` off: unpausing the DAG would otherwise also start its daily
run (on the day's batch) in the middle of the scenario. Only triggered runs run, the demo's and yours.

``KEEP=1`` leaves Airflow and local_knative running; ``python include/demo.py --stop`` (or the next
demo) stops them. Run it as ``.venv/bin/python include/demo.py`` from the repository root
(``KNATIVE_ROLLOUT_DEMO_DIR`` overrides where its files go).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_airflow import deferred_and_resumed

if TYPE_CHECKING:
    from local_airflow import AirflowStack
    from local_knative.testing import LocalKnative

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tests run the demo in a directory of their own.
DEMO_DIR = Path(os.environ.get("KNATIVE_ROLLOUT_DEMO_DIR", REPO_ROOT / ".demo")).resolve()
# What the demo runs (KEEP=1 leaves it, a killed demo too): name -> [pid, start time], in stop order.
RUNNING = DEMO_DIR / "running.json"
DAG_ID = "retrain_and_rollout"
SERVICE = "iris"
NAMESPACE = "default"
SAMPLE = [[5.9, 3.0, 5.1, 1.8]]
UI_PORT = 8080
RUN_TIMEOUT = 240.0
# The Variable knative_rollout_analysis, as a user sets it: 4 s windows rather than the DAG's 10 s. At the
# synthetic 20 requests/s that is 80 answers a revision, plenty to judge; a window under 10 s is judged in
# the worker rather than deferred, which makes the good run about 30 s shorter.
ANALYSIS = {"window": "4s", "interval": "800ms"}
# How the demo's processes are stopped, a phase at a time, each phase's together (every one takes seconds
# to shut down): the api-server and the cluster last, as in AirflowStack.stop(), since the others report
# to the one and watch the other while they stop.
STOP_PHASES = (("scheduler", "triggerer", "dag-processor"), ("api-server", "local_knative"))


@dataclass(frozen=True)
class Scenario:
    """One run of the demo: what it shows, the run's Params, and the state the DAG run must end in."""

    what: str
    conf: dict[str, Any]
    expected: str


SCENARIOS = (
    Scenario("a first model, trained on noisy labels", {"batch": 2, "label_noise": 0.4}, "success"),
    Scenario(
        "a better model with a slow server (passes offline, fails online)",
        {
            "batch": 1,
            "label_noise": 0.0,
            # 400 ms a prediction breaks the gate's p99<=300ms; the slow start makes the deploy defer.
            "serving_faults": {"FAULT_LATENCY_MS": "400", "FAULT_SLOW_START_S": "6"},
        },
        "failed",
    ),
    Scenario("a better model", {"batch": 3, "label_noise": 0.0}, "success"),
    Scenario("a worse model (half the labels broken)", {"batch": 2, "label_noise": 0.5}, "success"),
)


@dataclass(frozen=True)
class RunOutcome:
    """How one run of the demo went: as expected or not, the tasks that deferred, the gate's report file."""

    as_expected: bool
    deferred: list[str]
    reports: list[str]


@dataclass(frozen=True)
class TaskSummary:
    """One task of a finished run, as the REST API tells it."""

    task_id: str
    state: str
    detail: str
    deferred: bool
    value: Any


def describe(result: Any) -> str:
    """Return a short human summary of what a task returned (or, for the gate, pushed as ``loadtest``)."""
    if not isinstance(result, dict):
        return ""
    if "roll_out" in result:  # the offline evaluation
        return str(result["reason"])
    if "version" in result and "metrics" in result:  # the trained model
        return f"model {result['version']}: holdout accuracy {result['metrics']['accuracy']:.3f}"
    if "batch_file" in result:
        return f"batch {result['name']}"
    if "model_uri" in result:
        return f"published {result['model_uri']}"
    if "percent" in result and "verdict" in result:  # a traffic step's analysis
        return f"{result['percent']}% step: {result['verdict']} -> {result.get('action')}: {result['reason']}"
    if "slo" in result and "window" in result:  # the rollout's analysis settings
        return f"analysis windows of {result['window']} at each step, SLO {json.dumps(result['slo'])}"
    if "latency_ms" in result and "verdict" in result:  # a load-test gate's summary
        latency = result["latency_ms"]
        verdict = result["verdict"]
        outcome = (
            "SLO passed"
            if verdict["passed"]
            else "SLO failed: " + "; ".join(check["message"] for check in verdict["failed"])
        )
        percentiles = ", ".join(
            f"{name} {latency[name]:.0f} ms"
            for name in ("p50", "p90", "p99")
            if latency.get(name) is not None
        )
        return (
            f"{result['completed']}/{result['requests']} requests at {result['achieved_rate']:.1f}/s, "
            f"{percentiles}, error rate {result['error_rate']:.2%}: {outcome}"
        )
    if "tag_url" in result:
        if result.get("unchanged"):
            return f"revision {result['revision']} serves already"
        return (
            f"revision {result['revision']} (stable {result['stable_revision']}), tag URL {result['tag_url']}"
        )
    if "traffic" in result:
        return ", ".join(f"{name}={percent}%" for name, percent in result["traffic"].items())
    if "previous_stable_revision" in result:
        return (
            f"stable is now {result['stable_revision']}, rollback target {result['previous_stable_revision']}"
        )
    if "rolled_back" in result:
        if result["rolled_back"]:
            return f"rolled back: {result['stable_revision']} serves 100%"
        return f"nothing to undo ({result.get('reason')})"
    if "deleted_revisions" in result:
        return f"deleted {', '.join(result['deleted_revisions']) or 'no revision'}"
    return ""


def run_path(run_id: str) -> str:
    """Return the REST path of a run of the demo's DAG."""
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def task_log(stack: AirflowStack, run_id: str, task_id: str, try_number: int) -> list[dict[str, Any]]:
    """Return a task's structured log records over the REST API (the worker's and the triggerer's)."""
    path = f"{run_path(run_id)}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
    return [record for record in stack.api("GET", path).get("content") or [] if isinstance(record, dict)]


def failure(records: list[dict[str, Any]]) -> str:
    """Return the message of the last exception in a task's log."""
    messages = [
        str(error.get("exc_value"))
        for record in records
        for error in record.get("error_detail") or []
        if isinstance(error, dict) and error.get("exc_value")
    ]
    return messages[-1] if messages else "(its log says why)"


def xcom_entries(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    """Return every XCom entry of a run (task id and key, no value), page by page (at most 100 a page)."""
    entries: list[dict[str, Any]] = []
    while True:
        path = f"{run_path(run_id)}/taskInstances/~/xcomEntries?limit=100&offset={len(entries)}"
        page = stack.api("GET", path)
        entries += page["xcom_entries"]
        if not page["xcom_entries"] or len(entries) >= page["total_entries"]:
            return entries


def summarize_run(stack: AirflowStack, run_id: str) -> list[TaskSummary]:
    """Read a finished run's task states, XComs and logs over the REST API; return them in run order."""
    values: dict[str, Any] = {}
    for entry in xcom_entries(stack, run_id):
        # The gate pushes its summary under "loadtest" even when it fails and so returns nothing.
        if entry["key"] in ("return_value", "loadtest"):
            key = urllib.parse.quote(entry["key"], safe="")
            path = f"{run_path(run_id)}/taskInstances/{entry['task_id']}/xcomEntries/{key}"
            values.setdefault(entry["task_id"], stack.api("GET", path)["value"])
    instances = sorted(
        stack.task_instances(DAG_ID, run_id), key=lambda ti: (ti.get("start_date") or "~", ti["task_id"])
    )
    tasks = []
    for ti in instances:
        state = str(ti["state"])
        records = task_log(stack, run_id, ti["task_id"], ti["try_number"]) if ti["try_number"] else []
        detail = failure(records) if state == "failed" else describe(values.get(ti["task_id"]))
        deferred = deferred_and_resumed(records)
        tasks.append(TaskSummary(ti["task_id"], state, detail, deferred, values.get(ti["task_id"])))
    return tasks


def play(stack: AirflowStack, number: int, scenario: Scenario) -> RunOutcome:
    """Trigger one run over the REST API, wait for it and print its summary."""
    print(f"\nRun {number}/{len(SCENARIOS)}: {scenario.what}; conf {json.dumps(scenario.conf)}", flush=True)
    started = time.monotonic()
    run_id = stack.trigger(DAG_ID, scenario.conf)
    result = stack.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    print(f"DAG run {result.state} (expected {scenario.expected}) in {elapsed:.0f} s")
    print(f"  {stack.api_url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}")
    tasks = summarize_run(stack, run_id)
    not_run = ("skipped", "upstream_failed")
    for task in tasks:
        if task.state not in not_run:
            print(f"  {task.task_id:<26} {task.state:<16} {task.detail}"[:240].rstrip())
    for state in not_run:
        if any(task.state == state for task in tasks):
            print(f"  {state}: {', '.join(task.task_id for task in tasks if task.state == state)}")
    deferred = [task.task_id for task in tasks if task.deferred]
    print(f"  deferred: {', '.join(deferred) or 'none'}")
    reports = [str(t.value["report"]) for t in tasks if isinstance(t.value, dict) and t.value.get("report")]
    return RunOutcome(result.state == scenario.expected, deferred, reports)


def predict(ingress_url: str, service_url: str) -> Any:
    """Send one prediction to the Service through the ingress (Host header = the Service's host)."""
    request = urllib.request.Request(
        f"{ingress_url}/v1/models/{SERVICE}:predict",
        data=json.dumps({"instances": SAMPLE}).encode(),
        headers={"Host": urllib.parse.urlparse(service_url).netloc, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def print_cluster(cluster: LocalKnative) -> None:
    """Print the Service's traffic as the cluster's API reports it, and one prediction it serves."""
    status, service = cluster.request(
        "GET", f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/services/{SERVICE}"
    )
    if status != 200:
        print(f"\nService {NAMESPACE}/{SERVICE} could not be read (HTTP {status}): {service}")
        return
    print(f"\nFinal traffic of Knative Service {NAMESPACE}/{SERVICE}:")
    for target in service["status"].get("traffic", []):
        tag = f"tag {target['tag']}: {target.get('url', '')}" if target.get("tag") else ""
        print(f"  {target['revisionName']}: {target['percent']}%  {tag}")
    url = service["status"]["url"]
    print(f"Prediction from {url} for {SAMPLE}: {predict(cluster.ingress_url, url)}")


def ui_port() -> int | None:
    """Return 8080 when it is free (a URL to remember), else None: the stack takes any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the api-server binds: a port left in TIME_WAIT by the previous demo is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", UI_PORT))
        except OSError:
            return None
    return UI_PORT


def record_running(cluster: LocalKnative, stack: AirflowStack | None) -> None:
    """Write down the processes that run now: the demo's end, ``--stop`` or the next demo ends exactly those.

    Written as soon as they start: a demo killed before its ``finally`` leaves nothing no one can stop.
    """
    import psutil

    processes = stack.processes if stack is not None else {}
    pids = {name: process.pid for name, process in processes.items() if process.poll() is None}
    if cluster.pid is not None:
        pids["local_knative"] = cluster.pid
    RUNNING.write_text(
        json.dumps({name: [pid, psutil.Process(pid).create_time()] for name, pid in pids.items()})
    )


def stop_running() -> bool:
    """Stop the processes written down as running (this demo's at its end, or what a ``KEEP=1`` or a
    killed demo left); return whether there were any.

    Each process is checked by its start time, so a pid reused since by another program is left alone.
    """
    import psutil

    if not RUNNING.exists():
        return False
    running = json.loads(RUNNING.read_text())
    for phase in STOP_PHASES:
        processes, groups = [], []
        for name in (name for name in phase if name in running):
            pid, created = running[name]
            try:
                process = psutil.Process(pid)
                if process.create_time() != created:
                    continue
                process.terminate()
                processes.append(process)
            except psutil.NoSuchProcess:
                pass
            if name != "local_knative":
                # An Airflow component runs in a session of its own, with the workers it forked.
                groups.append(pid)
        _, alive = psutil.wait_procs(processes, timeout=20)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        for pid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    RUNNING.unlink()
    return True


def stop_command() -> str:
    """Return the shell command that stops a kept demo, from any directory."""
    where = f"KNATIVE_ROLLOUT_DEMO_DIR={DEMO_DIR} " if "KNATIVE_ROLLOUT_DEMO_DIR" in os.environ else ""
    return f"{where}{sys.executable} {Path(__file__).resolve()} --stop"


def main(argv: list[str]) -> int:
    """Run the demo end to end (or, with ``--stop``, stop a kept one); return the process exit code."""
    started = time.monotonic()
    sys.path[:0] = [str(REPO_ROOT / "include"), str(REPO_ROOT / "plugins")]
    from knative_rollout.resources import parse_bool

    if argv == ["--stop"]:
        print(
            "Stopped the demo's Airflow and local_knative." if stop_running() else "No demo was left running."
        )
        return 0
    if argv:
        print(f"usage: {sys.argv[0]} [--stop]", file=sys.stderr)
        return 2
    keep = parse_bool(os.environ.get("KEEP") or "false", "KEEP (make demo KEEP=1)")
    if stop_running():
        print("Stopped the demo left running before.")
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    from local_airflow import AirflowStack, kubernetes_connection
    from local_knative.testing import LocalKnative

    print(f"Starting local_knative in {DEMO_DIR / 'cluster'} ...", flush=True)
    cluster = LocalKnative.start(DEMO_DIR / "cluster")
    record_running(cluster, None)
    stack = AirflowStack(
        DEMO_DIR / "airflow",
        dag_bundles={"dags": REPO_ROOT / "dags"},
        connections={"kubernetes_default": kubernetes_connection(cluster.kubeconfig, cluster.ingress_url)},
        extra_env={
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # The scheduler notices a finished task and queues the next one sooner (default: after 1 s).
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "AIRFLOW_VAR_KNATIVE_ROLLOUT_ANALYSIS": json.dumps(ANALYSIS),
        },
        port=ui_port(),
    )
    try:
        print(f"  API {cluster.api_url}, ingress {cluster.ingress_url}, kubeconfig {cluster.kubeconfig}")
        print(
            f"Starting Airflow (api-server, scheduler, dag-processor, triggerer) in {stack.home} ...",
            flush=True,
        )
        stack.start()
        record_running(cluster, stack)
        outcomes = [play(stack, number, scenario) for number, scenario in enumerate(SCENARIOS, start=1)]
        print_cluster(cluster)
        deferred = [
            f"run {number}: {', '.join(outcome.deferred)}"
            for number, outcome in enumerate(outcomes, start=1)
            if outcome.deferred
        ]
        print(f"Deferred and resumed by the triggerer: {'; '.join(deferred) or 'none'}")
        store = stack.home / "knative-rollout"
        print(f"Training batches, staged and published models: {store}/{{data,staging,models}}")
        reports = [report for outcome in outcomes for report in outcome.reports]
        print(
            "Load-test results: the rollout.load_test lines above (its XCom 'loadtest'), plotted per "
            "candidate on the Rollouts page; report files (each with its .png latency plot): "
            + (", ".join(reports) if reports else "none written (see the load_test task's log)")
        )
        print(f"Task logs: {stack.home / 'logs'}; Airflow's own logs: {stack.home}/*.log")
        print(f"Airflow UI: {stack.api_url}/  (no login: this local Airflow lets everyone in as admin)")
        print(f"Rollouts page: {stack.api_url}/knative-rollout/")
        as_expected = all(outcome.as_expected for outcome in outcomes) and bool(deferred)
        print("All runs ended as expected." if as_expected else "Some runs did NOT end as expected.")
        return 0 if as_expected else 1
    finally:
        if keep:
            record_running(cluster, stack)
            print(f"Left running (KEEP=1); stop it with: {stop_command()}")
            print(f"  kubectl --kubeconfig {cluster.kubeconfig} get ksvc,revisions -n {NAMESPACE}")
        else:
            print("Stopping Airflow and local_knative.", flush=True)
            stop_running()
        print(f"Elapsed: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
