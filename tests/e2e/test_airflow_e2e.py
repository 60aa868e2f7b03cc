"""DAGs triggered on a real Airflow scheduler + triggerer deploy to a real local_knative and wait deferred."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from kubernetes import client, config

from knative_rollout.resources import state_from_annotations
from local_airflow import AirflowStack
from local_knative.testing import LocalKnative
from model.train import train

pytestmark = pytest.mark.e2e

# pytest-timeout (300 s) counts the stack start-up too; a run that takes longer fails with its logs.
RUN_TIMEOUT = 120.0
ROLLOUT_TIMEOUT = 180.0
DEFERRED_MESSAGE = "Pausing task as DEFERRED."


def _knative_service(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
    """Read a Knative Service with the kubernetes client, as any cluster user would."""
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    return dict(api.get_namespaced_custom_object("serving.knative.dev", "v1", namespace, "services", name))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def _fired_events(events: list[dict[str, Any]]) -> list[str]:
    """Return the results of the triggers that fired for a task, as the triggerer logged them."""
    return [str(record.get("result")) for record in events if record.get("event") == "Trigger fired event"]


def _model_version(ingress_url: str, service_url: str) -> str:
    """GET the model server's root through the ingress and return the model version that answered."""
    request = urllib.request.Request(ingress_url + "/", headers={"Host": urlparse(service_url).netloc})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.headers["X-Model-Version"])


def test_deploy_and_sensor_wait_in_the_triggerer(
    airflow_stack: AirflowStack, kube_namespace: str, kubeconfig_path: Path
) -> None:
    result = airflow_stack.run_dag("e2e_deploy_echo", {"namespace": kube_namespace}, timeout=RUN_TIMEOUT)
    diagnostics = airflow_stack.diagnostics(result.dag_id, result.run_id)
    assert result.state == "success", diagnostics
    assert result.task_states == {"deploy": "success", "service_ready": "success"}, diagnostics

    # The deploy left its worker twice (revision Ready, then traffic served) and was resumed each time by
    # a new worker from the trigger's event. The triggerer names its log file after the trigger's row id,
    # which SQLite reuses once the first trigger is deleted, so only the last trigger's log is certain.
    deploy_log = airflow_stack.task_log_events(result.dag_id, result.run_id, "deploy")
    deploy_messages = [str(record.get("event", "")).strip() for record in deploy_log]
    assert deploy_messages.count(DEFERRED_MESSAGE) == 2, diagnostics
    assert any(message.startswith("Deployed: revision") for message in deploy_messages), diagnostics
    deploy_events = _fired_events(deploy_log)
    assert deploy_events and "serves the requested traffic" in deploy_events[-1], diagnostics
    # The sensor started with the deploy, found no Ready Service, and waited in the triggerer.
    sensor_log = airflow_stack.task_log_events(result.dag_id, result.run_id, "service_ready")
    assert [str(r.get("event", "")).strip() for r in sensor_log].count(DEFERRED_MESSAGE) == 1, diagnostics
    sensor_events = _fired_events(sensor_log)
    assert len(sensor_events) == 1 and "is Ready" in sensor_events[0], diagnostics

    deployed = airflow_stack.xcom(result.dag_id, result.run_id, "deploy")
    revision = deployed["revision"]
    assert deployed == {
        "revision": revision,
        "url": f"http://echo.{kube_namespace}.example.com",
        "tag_url": f"http://stable-echo.{kube_namespace}.example.com",
        "stable_revision": revision,
        "unchanged": False,
    }

    service = _knative_service(kubeconfig_path, kube_namespace, "echo")
    assert _condition(service, "Ready").get("status") == "True", service["status"]
    assert service["status"]["latestReadyRevisionName"] == revision
    served = [(t["revisionName"], t["percent"], t.get("tag")) for t in service["status"]["traffic"]]
    assert served == [(revision, 100, "stable")]
    image = service["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/knative-rollout/echo:v1"


def test_rollout_example_promotes_the_canary(
    airflow_stack: AirflowStack,
    kube_namespace: str,
    kubeconfig_path: Path,
    local_knative: LocalKnative,
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    conf = {
        "namespace": kube_namespace,
        "service_name": "iris",
        "model_v1_uri": str(train(models, "v1", seed=0)),
        "model_v2_uri": str(train(models, "v2", seed=1)),
    }
    result = airflow_stack.run_dag("rollout_example", conf, timeout=ROLLOUT_TIMEOUT)
    diagnostics = airflow_stack.diagnostics(result.dag_id, result.run_id)
    assert result.state == "success", diagnostics
    steps = [
        "lock",
        "deploy_candidate",
        "load_test",
        "traffic_10",
        "traffic_50",
        "traffic_100",
        "promote",
        "outcome",
    ]
    assert result.task_states == {
        "deploy_v1": "success",
        **{f"rollout.{step}": "success" for step in steps},
        # Nothing failed, so nothing was rolled back.
        "rollout.rollback": "skipped",
        "stable_ready": "success",
        "teardown": "success",
    }, diagnostics
    # The DAG retries failed tasks; a rollout that only succeeded thanks to a retry is a failure here.
    tries = {task_id: tries for task_id, tries in result.task_tries.items() if task_id != "rollout.rollback"}
    assert set(tries.values()) == {1}, diagnostics

    # The gate loaded v2's tag URL through the ingress of the connection and every prediction succeeded.
    gate = airflow_stack.xcom(result.dag_id, result.run_id, "rollout.load_test", key="loadtest")
    assert gate["verdict"]["passed"] is True, gate
    assert gate["requests"] == gate["completed"] > 0 and gate["errors"] == {}, gate

    v1 = airflow_stack.xcom(result.dag_id, result.run_id, "deploy_v1")["revision"]
    v2 = airflow_stack.xcom(result.dag_id, result.run_id, "rollout.deploy_candidate")["revision"]
    assert v1 != v2
    service = _knative_service(kubeconfig_path, kube_namespace, "iris")
    assert _condition(service, "Ready").get("status") == "True", service["status"]
    served = [(t["revisionName"], t["percent"], t.get("tag")) for t in service["status"]["traffic"]]
    assert served == [(v2, 100, "stable")]
    state = state_from_annotations(service["metadata"]["annotations"])
    assert (state.stable, state.previous_stable, state.candidate) == (v2, v1, None)
    # The teardown keeps the previous stable revision: it is the rollback target.
    assert airflow_stack.xcom(result.dag_id, result.run_id, "teardown") == {
        "deleted_revisions": [],
        "deleted_service": False,
    }

    # Real requests through the ingress are all answered by model v2.
    versions = {_model_version(local_knative.ingress_url, service["status"]["url"]) for _ in range(5)}
    assert versions == {"v2"}
