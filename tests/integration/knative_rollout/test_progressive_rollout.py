"""progressive_rollout with a load-test gate on local_knative: good candidate promoted, slow rolled back."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from loadtest_dag_runner import run_dag

from knative_rollout.resources import state_from_annotations
from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"

DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.operators import KnativeDeployRevisionOperator
from knative_rollout.task_groups import progressive_rollout

target = dict(service_name="echo", namespace="{namespace}", wait_timeout=90)
gate = dict(rate=20, duration="2s", timeout="5s", expect_json_field="revision",
            slo="p50<=100ms,error_rate<=0.01")

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         default_args={{"retries": 0}}) as dag:
    stable = KnativeDeployRevisionOperator(task_id="deploy_stable", image="{echo}:v1", **target)
    stable >> progressive_rollout(
        group_id="rollout", image="{echo}:v2", env={{"ECHO_DELAY_MS": "{delay_ms}"}}, load_test=gate, **target
    )
"""


def rollout(local_knative: LocalKnative, tmp_path: Path, namespace: str, delay_ms: int) -> dict[str, Any]:
    """Run deploy_stable >> progressive_rollout for an echo candidate answering ``delay_ms`` slower."""
    dag_id = f"rollout_{delay_ms}"
    source = DAG.format(namespace=namespace, dag_id=dag_id, echo=ECHO, delay_ms=delay_ms)
    extra = {"kube_config_path": str(local_knative.kubeconfig), "ingress_address": local_knative.ingress_url}
    connection = json.dumps({"conn_type": "kubernetes", "extra": extra})
    return run_dag(tmp_path, dag_id, source, {"AIRFLOW_CONN_KUBERNETES_DEFAULT": connection})


def served(cluster: Any, namespace: str) -> tuple[dict[str, Any], list[tuple[str, int, str | None]]]:
    """Return the Service and what its status says is served: (revision, percent, tag)."""
    service = json.loads(cluster.kubectl("-n", namespace, "get", "ksvc/echo", "-o", "json"))
    targets = service["status"]["traffic"]
    return service, [(target["revisionName"], target["percent"], target.get("tag")) for target in targets]


def test_good_candidate_passes_the_gate_and_is_promoted(
    local_knative: LocalKnative, kube_namespace: str, cluster: Any, tmp_path: Path
) -> None:
    outcome = rollout(local_knative, tmp_path, kube_namespace, delay_ms=0)

    states = {task_id: task["state"] for task_id, task in outcome["tasks"].items()}
    assert outcome["state"] == "success", (states, outcome["log"][-4000:])
    assert states == {
        "deploy_stable": "success",
        "rollout.lock": "success",
        "rollout.deploy_candidate": "success",
        "rollout.load_test": "success",
        "rollout.traffic_10": "success",
        "rollout.traffic_50": "success",
        "rollout.traffic_100": "success",
        "rollout.promote": "success",
        "rollout.rollback": "skipped",
        "rollout.outcome": "success",
    }
    xcom = outcome["xcom"]
    stable = xcom["deploy_stable"]["return_value"]["revision"]
    candidate = xcom["rollout.deploy_candidate"]["return_value"]["revision"]
    assert xcom["rollout.load_test"]["loadtest"]["verdict"]["passed"] is True
    splits = [xcom[f"rollout.traffic_{step}"]["return_value"]["traffic"] for step in (10, 50, 100)]
    assert splits == [
        {stable: 90, candidate: 10},
        {stable: 50, candidate: 50},
        {stable: 0, candidate: 100},
    ]
    promoted = xcom["rollout.outcome"]["return_value"]
    assert (promoted["stable_revision"], promoted["previous_stable_revision"]) == (candidate, stable)
    service, traffic = served(cluster, kube_namespace)
    assert traffic == [(candidate, 100, "stable")]
    assert state_from_annotations(service["metadata"]["annotations"]).stable == candidate


def test_slow_candidate_fails_the_gate_and_is_rolled_back(
    local_knative: LocalKnative, kube_namespace: str, cluster: Any, tmp_path: Path
) -> None:
    outcome = rollout(local_knative, tmp_path, kube_namespace, delay_ms=250)

    states = {task_id: task["state"] for task_id, task in outcome["tasks"].items()}
    assert outcome["state"] == "failed", (states, outcome["log"][-4000:])
    assert states == {
        "deploy_stable": "success",
        "rollout.lock": "success",
        "rollout.deploy_candidate": "success",
        "rollout.load_test": "failed",
        "rollout.traffic_10": "upstream_failed",
        "rollout.traffic_50": "upstream_failed",
        "rollout.traffic_100": "upstream_failed",
        "rollout.promote": "upstream_failed",
        "rollout.rollback": "success",
        "rollout.outcome": "failed",
    }
    xcom = outcome["xcom"]
    stable = xcom["deploy_stable"]["return_value"]["revision"]
    candidate_url = xcom["rollout.deploy_candidate"]["return_value"]["tag_url"]
    gate = xcom["rollout.load_test"]["loadtest"]
    assert [check["metric"] for check in gate["verdict"]["failed"]] == ["p50"]
    assert gate["latency_ms"]["p50"] >= 250
    # The run says why in the outcome task's error: the gate's violated threshold and where traffic went.
    assert "was not promoted: rollout.load_test failed the SLO (p50" in outcome["log"]
    assert f"traffic was rolled back: {stable} serves 100%" in outcome["log"]
    # ... and shows the candidate's conditions and pod log lines, so nobody has to reach for kubectl.
    candidate = xcom["rollout.deploy_candidate"]["return_value"]["revision"]
    assert f"Diagnostics of revision {kube_namespace}/{candidate}" in outcome["log"]

    service, traffic = served(cluster, kube_namespace)
    assert traffic == [(stable, 100, "stable")]
    state = state_from_annotations(service["metadata"]["annotations"])
    assert (state.stable, state.candidate, state.phase.value) == (stable, None, "RolledBack")
    # The candidate lost its tag, so its tag URL no longer routes anywhere.
    with pytest.raises(urllib.error.HTTPError) as missing:
        cluster.get(candidate_url)
    assert missing.value.code == 404
