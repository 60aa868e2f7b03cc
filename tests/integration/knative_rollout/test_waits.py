"""Waits on a real local_knative: quick ones end in the worker, slow ones defer, a missing namespace fails."""

from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from task_context import task_context

from knative_rollout.exceptions import KnativeNotFoundError
from knative_rollout.operators import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeSetTrafficOperator,
)
from knative_rollout.sensors import KnativeRevisionReadySensor, KnativeServiceReadySensor
from knative_rollout.triggers import KnativeRevisionReadyTrigger, run_inline

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"


def _run(operator: Any) -> Any:
    """Run ``execute`` as a worker would; a ``TaskDeferred`` escapes to the caller."""
    return operator.execute(task_context())


def test_quick_waits_end_in_the_worker_without_deferring(run_dag, kube_namespace) -> None:
    target = {"service_name": "echo", "namespace": kube_namespace}
    # Every operator below is deferrable (the default); any deferral would raise TaskDeferred here.
    first = _run(KnativeDeployRevisionOperator(task_id="v1", image=f"{ECHO}:v1", **target))
    candidate = _run(KnativeDeployRevisionOperator(task_id="v2", image=f"{ECHO}:v2", **target))
    assert candidate["stable_revision"] == first["revision"]
    split = _run(
        KnativeSetTrafficOperator(task_id="split", traffic={"@stable": 50, "@candidate": 50}, **target)
    )
    assert split["traffic"] == {first["revision"]: 50, candidate["revision"]: 50}
    promoted = _run(KnativePromoteOperator(task_id="promote", **target))
    assert promoted["stable_revision"] == candidate["revision"]
    ready = _run(KnativeServiceReadySensor(task_id="ready", **target))
    assert ready["status"] == "success"


def test_a_slow_revision_still_defers_and_resumes(run_dag, kube_namespace) -> None:
    operator = KnativeDeployRevisionOperator(
        task_id="slow",
        service_name="echo",
        namespace=kube_namespace,
        image=f"{ECHO}:v1",
        env={"ECHO_STARTUP_DELAY_S": "4"},
        inline_wait_seconds=1,
    )
    started = time.monotonic()
    with pytest.raises(TaskDeferred) as deferred:
        _run(operator)
    # It watched in the worker for the bound, not until the revision was Ready.
    assert 1 <= time.monotonic() - started < 4
    assert isinstance(deferred.value.trigger, KnativeRevisionReadyTrigger)
    assert deferred.value.method_name == "execute_complete"
    # What the triggerer would do, then the resumed task: the traffic wait after it is quick.
    event = run_inline(deferred.value.trigger)
    assert event is not None and event["status"] == "success", event
    result = operator.execute_complete(task_context(), event)
    assert result["revision"] == event["name"] and result["stable_revision"] == event["name"]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "poking"])
@pytest.mark.parametrize(
    ("sensor_class", "name_argument"),
    [(KnativeServiceReadySensor, "service_name"), (KnativeRevisionReadySensor, "revision_name")],
)
def test_sensors_in_a_missing_namespace_fail_at_once(
    run_dag, kube_namespace, sensor_class, name_argument, deferrable
) -> None:
    missing = f"{kube_namespace}-gone"
    sensor = sensor_class(
        task_id="ready",
        namespace=missing,
        deferrable=deferrable,
        timeout=600,
        poke_interval=1,
        **{name_argument: "echo-00001"},
    )
    started = time.monotonic()
    with pytest.raises(KnativeNotFoundError, match=f"namespace '{missing}' does not exist"):
        _run(sensor)
    assert time.monotonic() - started < 10
