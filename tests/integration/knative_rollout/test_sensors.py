"""The readiness sensors on a real local_knative: deferred (trigger run inline by dag.test()) and poking."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "poking"])
def test_sensors_wait_for_ready_revision_and_service(run_dag, kube_namespace, deferrable) -> None:
    target = {"namespace": kube_namespace}
    result = run_dag(
        f"sensors_{deferrable}_{kube_namespace}".replace("-", "_"),
        [
            (
                "v1",
                "KnativeDeployRevisionOperator",
                {**target, "service_name": "echo", "image": f"{ECHO}:v1"},
            ),
            (
                "revision_ready",
                "KnativeRevisionReadySensor",
                {
                    **target,
                    "revision_name": "{{ ti.xcom_pull('v1')['revision'] }}",
                    "deferrable": deferrable,
                    "poke_interval": 1,
                    "timeout": 60,
                },
            ),
            (
                "service_ready",
                "KnativeServiceReadySensor",
                {
                    **target,
                    "service_name": "echo",
                    "deferrable": deferrable,
                    "poke_interval": 1,
                    "timeout": 60,
                },
            ),
        ],
    )
    assert result.state == "success", result.task_states
    assert result.results["revision_ready"]["status"] == "success"
    assert result.results["revision_ready"]["name"] == result.results["v1"]["revision"]
    assert result.results["service_ready"]["url"] == f"http://echo.{kube_namespace}.example.com"


def test_revision_sensor_fails_at_once_with_knatives_reason(run_dag, kube_namespace) -> None:
    from knative_rollout.resources import RevisionSpec, render_template

    missing = "registry.example.com/knative-rollout/missing:v1"
    revision = render_template("echo", RevisionSpec.build(image=missing))["metadata"]["name"]
    result = run_dag(
        f"sensor_fails_{kube_namespace}".replace("-", "_"),
        [
            (
                "v1",
                "KnativeDeployRevisionOperator",
                {"namespace": kube_namespace, "service_name": "echo", "image": f"{ECHO}:v1"},
            ),
            (
                "broken",
                "KnativeDeployRevisionOperator",
                {"namespace": kube_namespace, "service_name": "echo", "image": missing, "wait_timeout": 5},
            ),
        ],
    )
    assert result.task_states["broken"] == "failed"
    # The revision exists and has failed: the sensor must fail, not wait for its timeout.
    again = run_dag(
        f"sensor_on_failed_{kube_namespace}".replace("-", "_"),
        [
            (
                "ready",
                "KnativeRevisionReadySensor",
                {"namespace": kube_namespace, "revision_name": revision, "timeout": 600},
            )
        ],
    )
    assert again.task_states == {"ready": "failed"}
