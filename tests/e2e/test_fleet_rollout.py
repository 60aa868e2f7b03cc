"""dags/fleet_rollout.py on the Celery stack: five Services in one run, one failure rolled back on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from knative_rollout.resources import state_from_annotations
from local_airflow import AirflowStack

pytestmark = pytest.mark.e2e

FLEET_TIMEOUT = 240.0
SERVICES = [f"fleet-{n}" for n in range(5)]
# Lands in the last wave (first: fleet-0, second: fleet-1, rest: fleet-2..4), so it cannot stop the fleet.
BROKEN = "fleet-3"


def _api(kubeconfig: Path) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))


def _service(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        _api(kubeconfig).get_namespaced_custom_object(
            "serving.knative.dev", "v1", namespace, "services", name
        )
    )


def test_fleet_rolls_out_each_service_independently(
    airflow_stack: AirflowStack, kube_namespace: str, kubeconfig_path: Path
) -> None:
    # A Service the provider does not manage (no managed-by label): its rollout must fail, and only it.
    _api(kubeconfig_path).create_namespaced_custom_object(
        "serving.knative.dev",
        "v1",
        kube_namespace,
        "services",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": BROKEN, "namespace": kube_namespace},
            "spec": {
                "template": {
                    "spec": {"containers": [{"image": "registry.example.com/knative-rollout/echo:v1"}]}
                }
            },
        },
    )
    conf = {"services": SERVICES, "namespace": kube_namespace, "wave_percent": 25, "max_failures": 1}
    result = airflow_stack.run_dag("fleet_rollout", conf, timeout=FLEET_TIMEOUT)
    diagnostics = airflow_stack.diagnostics(result.dag_id, result.run_id)
    instances = airflow_stack.task_instances(result.dag_id, result.run_id)
    outcome = {
        (ti["task_id"].split(".")[0], ti["map_index"]): ti["state"]
        for ti in instances
        if ti["task_id"].endswith(".rollout.outcome")
    }
    assert outcome == {
        ("first", 0): "success",
        ("second", 0): "success",
        ("rest", 0): "success",
        ("rest", 1): "failed",
        ("rest", 2): "success",
    }, diagnostics
    # The run tells the truth: one Service was not rolled out, so the summary (the leaf) failed.
    assert result.state == "failed", diagnostics
    assert result.task_states["summary"] == "failed", diagnostics
    assert result.task_states["gate_second"] == result.task_states["gate_rest"] == "success", diagnostics
    summary_log = airflow_stack.task_log(result.dag_id, result.run_id, "summary")
    assert f"rolled back or failed ['{BROKEN}']" in summary_log, summary_log

    for name in SERVICES:
        service = _service(kubeconfig_path, kube_namespace, name)
        served = [
            (t["revisionName"], t["percent"], t.get("tag")) for t in service["status"].get("traffic", [])
        ]
        image = service["spec"]["template"]["spec"]["containers"][0]["image"]
        if name == BROKEN:
            # Untouched: still v1, and nothing of a rollout was written on it.
            assert image.endswith("echo:v1"), service
            assert "rollout.knative-rollout.dev/phase" not in service["metadata"].get("annotations", {})
            continue
        state = state_from_annotations(service["metadata"]["annotations"])
        assert image.endswith("echo:v2"), (name, image)
        assert served == [(state.stable, 100, "stable")], (name, served)
        assert state.previous_stable and state.previous_stable != state.stable, (name, state)
        # Each Service had a rollout of its own: the identity names its wave and map index.
        assert state.rollout_id and state.rollout_id.startswith(f"fleet_rollout/{result.run_id}/"), state
