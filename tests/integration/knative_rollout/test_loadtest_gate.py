"""LoadTestGateOperator on local_knative tag URLs: a fast stable tag passes, a slow candidate fails."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from loadtest_dag_runner import run_dag

from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo:v1"

DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.operators import LoadTestGateOperator

common = dict(service_name="echo", namespace="{namespace}", rate=40, duration="3s", timeout="5s",
              expect_json_field="revision", slo="p50<=100ms,error_rate<=0.01")

with DAG("loadtest_tags", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
    # The ingress address as an argument ...
    LoadTestGateOperator(task_id="gate_stable", tag="stable", ingress_address="{ingress}",
                         report_path="{reports}/stable.json", **common)
    # ... and from the kubernetes connection's extra.
    LoadTestGateOperator(task_id="gate_candidate", tag="candidate", report_path="{reports}/candidate.json",
                         **common)
"""


def service(
    namespace: str, revision: str, delay_ms: int, traffic: list[dict[str, object]]
) -> dict[str, object]:
    container = {"image": ECHO, "env": [{"name": "ECHO_DELAY_MS", "value": str(delay_ms)}]}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": namespace},
        "spec": {
            "template": {"metadata": {"name": revision}, "spec": {"containers": [container]}},
            "traffic": traffic,
        },
    }


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [require_binary("kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def test_gate_on_tag_urls(local_knative: LocalKnative, kube_namespace: str, tmp_path: Path) -> None:
    kubeconfig = local_knative.kubeconfig
    stable_only = [{"revisionName": "echo-v1", "percent": 100, "tag": "stable"}]
    kubectl(
        kubeconfig, "apply", "-f", "-", stdin=json.dumps(service(kube_namespace, "echo-v1", 0, stable_only))
    )
    kubectl(kubeconfig, "wait", "-n", kube_namespace, "ksvc/echo", "--for=condition=Ready", "--timeout=90s")
    # The candidate answers 250 ms slower on its own tag, with no traffic share.
    canary = [*stable_only, {"revisionName": "echo-v2", "percent": 0, "tag": "candidate"}]
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(service(kube_namespace, "echo-v2", 250, canary)))
    kubectl(kubeconfig, "wait", "-n", kube_namespace, "ksvc/echo", "--for=condition=Ready", "--timeout=90s")
    traffic = json.loads(kubectl(kubeconfig, "get", "-n", kube_namespace, "ksvc/echo", "-o", "json"))[
        "status"
    ]
    assert {target.get("tag") for target in traffic["traffic"]} == {"stable", "candidate"}

    reports = tmp_path / "reports"
    extra = {"kube_config_path": str(kubeconfig), "ingress_address": local_knative.ingress_url}
    connection = {"conn_type": "kubernetes", "extra": extra}
    source = DAG.format(namespace=kube_namespace, ingress=local_knative.ingress_url, reports=reports)
    outcome = run_dag(
        tmp_path, "loadtest_tags", source, {"AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(connection)}
    )

    tasks, xcom = outcome["tasks"], outcome["xcom"]
    assert tasks["gate_stable"]["state"] == "success", outcome["log"][-4000:]
    assert tasks["gate_candidate"] == {"state": "failed", "try_number": 1}
    stable, candidate = xcom["gate_stable"]["loadtest"], xcom["gate_candidate"]["loadtest"]
    assert stable["errors"] == {} and stable["completed"] == 120
    assert candidate["errors"] == {} and candidate["completed"] == 120
    assert [item["metric"] for item in candidate["verdict"]["failed"]] == ["p50"]
    assert candidate["latency_ms"]["p50"] >= 250
    report = json.loads((reports / "candidate.json").read_text())
    host = f"candidate-echo.{kube_namespace}.{local_knative.domain}"
    assert report["config"]["host"] == host
    assert report["config"]["connect_to"] == local_knative.ingress_url.removeprefix("http://")
