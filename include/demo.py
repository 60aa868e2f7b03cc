"""``make demo``: the first five minutes of a new user, on one machine, with no Docker and no cloud account.

Starts a local_knative in ``.demo/`` and runs ``dags/retrain_and_rollout.py`` with ``dag.test()`` four
times, each on a new training batch:

1. a first model, trained on noisy labels, becomes the Service (nothing serves yet);
2. a better model whose server is slow (``serving_faults``): it passes the offline evaluation, then
   fails the load-test gate on its tag URL and is rolled back, so that run fails;
3. a better model: canary at 0%, load test, 10% -> 50% -> 100%, promoted, old revisions torn down;
4. a worse model (more label noise): stopped by the offline evaluation, production untouched.

For each run it prints one line per task (offline metrics, load-test percentiles, each step's traffic),
then the final traffic and a prediction served through the ingress, and stops the cluster.

Run it as ``.venv/bin/python include/demo.py`` from the repository root (``KNATIVE_ROLLOUT_DEMO_DIR``
overrides where its files go).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tests run the demo in a directory of their own.
DEMO_DIR = Path(os.environ.get("KNATIVE_ROLLOUT_DEMO_DIR", REPO_ROOT / ".demo"))
SERVICE = "iris"
IMAGE = "registry.example.com/knative-rollout/model-server:v1"
SAMPLE = [[5.9, 3.0, 5.1, 1.8]]


def configure_airflow(kubeconfig: Path, ingress_url: str) -> None:
    """Give Airflow its own home in .demo/ and a ``kubernetes_default`` connection to the demo cluster.

    Airflow reads its configuration when first imported, so this runs before any Airflow import. The
    demo's Knative hosts (``*.example.com``) have no DNS, so the load-test gate reaches them through the
    ingress named in the connection.
    """
    home = DEMO_DIR / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(
                {
                    "conn_type": "kubernetes",
                    "extra": {"kube_config_path": str(kubeconfig), "ingress_address": ingress_url},
                }
            ),
        }
    )


# (what the run shows, its conf, the DAG run state it must end in)
RUNS: list[tuple[str, dict[str, Any], str]] = [
    ("a first model, trained on noisy labels", {"batch": 2, "label_noise": 0.4}, "success"),
    (
        "a better model with a slow server (passes offline, fails online)",
        {"batch": 1, "label_noise": 0.0, "serving_faults": {"FAULT_LATENCY_MS": "400"}},
        "failed",
    ),
    ("a better model", {"batch": 3, "label_noise": 0.0}, "success"),
    ("a worse model (half the labels broken)", {"batch": 2, "label_noise": 0.5}, "success"),
]


def predict(ingress_url: str, service_url: str) -> Any:
    """Send one prediction to the Service through the ingress (Host header = the Service's host)."""
    request = urllib.request.Request(
        f"{ingress_url}/v1/models/{SERVICE}:predict",
        data=json.dumps({"instances": SAMPLE}).encode(),
        headers={"Host": urlparse(service_url).netloc, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def summarize(dagrun: Any, task_order: list[str]) -> dict[str, Any]:
    """Print one line per task: its state and what it returned (for a failed gate, its measurements)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        results: dict[str, Any] = {}
        # The gate pushes its summary under "loadtest" even when it fails and so returns nothing.
        for key in ("return_value", "loadtest"):
            rows = session.scalars(XComModel.get_many(run_id=dagrun.run_id, dag_ids=dagrun.dag_id, key=key))
            for row in rows.all():
                results.setdefault(row.task_id, XComModel.deserialize_value(row))
    order = {task_id: index for index, task_id in enumerate(task_order)}
    for ti in sorted(dagrun.get_task_instances(), key=lambda ti: order.get(ti.task_id, 0)):
        print(f"  {ti.task_id:<26} {ti.state!s:<16} {describe(results.get(ti.task_id))}"[:220].rstrip())
    return results


def describe(result: Any) -> str:
    """Return a short human summary of a task's return value."""
    if not isinstance(result, dict):
        return ""
    if "roll_out" in result:  # the offline evaluation
        return str(result["reason"])
    if "version" in result and "metrics" in result:  # the trained model
        return f"model {result['version']}: holdout accuracy {result['metrics']['accuracy']:.3f}"
    if "model_uri" in result:
        return f"published {result['model_uri']}"
    if "status" in result:  # a sensor's event
        return str(result.get("message", ""))
    if "verdict" in result:  # a load-test gate's summary
        latency = result["latency_ms"]
        verdict = result["verdict"]
        outcome = (
            "SLO passed"
            if verdict["passed"]
            else "SLO failed: " + "; ".join(check["message"] for check in verdict["failed"])
        )
        return (
            f"{result['completed']}/{result['requests']} requests at {result['achieved_rate']:.1f}/s, "
            f"p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, "
            f"error rate {result['error_rate']:.2%}: {outcome}"
        )
    if "tag_url" in result:
        return (
            f"revision {result['revision']} (stable {result['stable_revision']}), tag URL {result['tag_url']}"
        )
    if "traffic" in result:
        return ", ".join(f"{name}={percent}%" for name, percent in result["traffic"].items())
    if "previous_stable_revision" in result:
        return (
            f"stable is now {result['stable_revision']}, rollback target {result['previous_stable_revision']}"
        )
    if "deleted_revisions" in result:
        return f"deleted {result['deleted_revisions'] or 'nothing'} (stable and rollback target are kept)"
    return ""


def main() -> int:
    """Run the demo end to end; return the process exit code."""
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    sys.path[:0] = [str(REPO_ROOT / "include"), str(REPO_ROOT / "plugins")]
    from local_knative.testing import LocalKnative

    print(f"Starting local_knative in {DEMO_DIR / 'cluster'} ...")
    cluster = LocalKnative.start(DEMO_DIR / "cluster")
    try:
        print(f"  API {cluster.api_url}, ingress {cluster.ingress_url}, kubeconfig {cluster.kubeconfig}")
        configure_airflow(cluster.kubeconfig, cluster.ingress_url)

        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils.db import initdb

        initdb()
        dag = DagBag(dag_folder=REPO_ROOT / "dags" / "retrain_and_rollout.py").dags["retrain_and_rollout"]
        # dag.test() warns "No tasks to run" for the one loop in which the skipped rollback has not yet
        # released the outcome task; the next loop runs it (as a scheduler would), so the warning is noise.
        logging.getLogger("airflow.sdk.definitions.dag").setLevel(logging.ERROR)
        as_expected = True
        for number, (what, conf, expected) in enumerate(RUNS, start=1):
            print(f"Run {number}: {what}: dags/retrain_and_rollout.py with dag.test() ...")
            # Every Param is given: dag.test() keeps the last run's conf as the defaults of the next one.
            dagrun = dag.test(
                run_conf={"service_name": SERVICE, "image": IMAGE, "serving_faults": {}, **conf}
            )
            print(f"DAG run {dagrun.state} (expected {expected}). Steps:")
            summarize(dagrun, [task.task_id for task in dag.topological_sort()])
            as_expected = as_expected and str(dagrun.state) == expected

        from knative_rollout.hooks import KnativeServingHook

        service = KnativeServingHook().get_service(SERVICE, "default")
        print("Final traffic:")
        for target in service["status"].get("traffic", []):
            tag = f"tag {target['tag']}: {target.get('url', '')}" if target.get("tag") else ""
            print(f"  {target['revisionName']}: {target['percent']}%  {tag}")
        url = service["status"]["url"]
        print(f"Prediction from {url} for {SAMPLE}: {predict(cluster.ingress_url, url)}")
        print(f"Artifacts, batches and load-test reports: {DEMO_DIR / 'airflow' / 'knative-rollout'}")
        print("All runs ended as expected." if as_expected else "Some runs did NOT end as expected.")
        return 0 if as_expected else 1
    finally:
        print("Stopping local_knative.")
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
