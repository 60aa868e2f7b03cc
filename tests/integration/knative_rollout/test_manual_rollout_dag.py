"""manual_rollout with dag.test() on local_knative: its Params checked, canary, approval, A/B, rollback.

Every run gives every Param (``run_example``); the cluster is read with kubectl. The approval's timeout is
the real scheduler's sweep (``SchedulerJobRunner.check_awaiting_input_timeouts``), run in a thread, since
dag.test() leaves a task awaiting input to the world outside.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from knative_rollout.resources import state_from_annotations
from tests.integration.knative_rollout.conftest import Runner, production, train_model

pytestmark = pytest.mark.integration


def _writes(cluster: Any, namespace: str) -> tuple[str, list[str]]:
    """Return the Service's resourceVersion and its revisions: both change with any write."""
    service = json.loads(cluster.kubectl("-n", namespace, "get", "ksvc/iris", "-o", "json"))
    revisions = cluster.kubectl("-n", namespace, "get", "revisions", "-o", "name").split()
    return service["metadata"]["resourceVersion"], sorted(revisions)


@pytest.fixture
def bootstrapped(run_example: Runner, kube_namespace: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """Return the target Params and the stable revision of a Service bootstrapped with model v1."""
    target = {
        "service_name": "iris",
        "namespace": kube_namespace,
        "model_uri": train_model(tmp_path, "v1", 0),
    }
    first = run_example("manual_rollout", target)
    assert first.state == "success", first.task_states
    assert first.task_states["rollback_now"] == "skipped"
    assert first.results["rollout.outcome"]["unchanged"] is True
    return target, first.results["bootstrap"]["revision"]


# One of each kind of Param: pattern, enum, array items and order, integer and number limits, boolean,
# the product's own parsers (image), and the checks across Params.
REFUSED = [
    ({"service_name": "Iris"}, r"Param 'service_name' is invalid: 'Iris' does not match"),
    (
        {"strategy": "blue-green"},
        r"Param 'strategy' is invalid: 'blue-green' is not one of \['canary', 'ab'\]",
    ),
    ({"steps": [0, 100]}, r"Param 'steps' is invalid: 0 is less than the minimum of 1"),
    ({"steps": [50, 20]}, r"Param 'steps' is invalid: traffic steps \[50, 20\] must be strictly increasing"),
    ({"interval": 1}, r"Param 'interval' is invalid: 1 is less than the minimum of 5"),
    ({"max_error_rate": 2}, r"Param 'max_error_rate' is invalid: 2 is greater than the maximum of 1"),
    ({"approval": "yes"}, r"Param 'approval' is invalid: 'yes' is not of type 'boolean'"),
    (
        {"image": "registry.example.com/../evil:v1"},
        r"Param 'image' is invalid: image .* is not a valid image",
    ),
    ({"strategy": "ab", "approval": True}, r"Param 'approval' is invalid: an approval is part of the canary"),
    ({"approval": True, "steps": [100]}, r"Param 'steps' is invalid: with approval, give at least one step"),
    ({"metrics_url": "ftp://x"}, r"Param 'metrics_url' is invalid: 'ftp://x' does not match"),
]


def test_bad_params_fail_the_first_task_naming_the_field_before_any_write(
    run_example: Runner, bootstrapped: tuple[dict[str, Any], str], cluster: Any
) -> None:
    target, _ = bootstrapped
    before = _writes(cluster, target["namespace"])
    # What reaches a run without the form's checks: check_params, the first task, refuses it.
    check = run_example.dags["manual_rollout"].task_dict["check_params"].python_callable
    for bad, message in REFUSED:
        with pytest.raises(AirflowFailException, match=message + r".*Nothing was changed"):
            check(params={**run_example.defaults["manual_rollout"], **target, **bad})
    # Airflow itself refuses a conf that fails the schemas; the product's parsers fail check_params.
    with pytest.raises(ParamValidationError, match="interval"):
        run_example("manual_rollout", {**target, "interval": 1})
    for bad in ({"steps": [50, 20]}, {"strategy": "ab", "approval": True}):
        refused = run_example("manual_rollout", {**target, **bad})
        assert refused.state == "failed"
        assert refused.task_states["check_params"] == "failed"
        # Nothing else failed or ran: no rollback, no outcome of a path that never started.
        states = refused.task_states
        assert [task for task, state in states.items() if state == "failed"] == ["check_params"]
        assert {state for task, state in states.items() if "." in task} == {"skipped"}
    assert _writes(cluster, target["namespace"]) == before


def test_canary_with_runtime_steps_promotes_then_nothing_to_do_then_rolls_back(
    run_example: Runner, bootstrapped: tuple[dict[str, Any], str], cluster: Any, tmp_path: Path
) -> None:
    target, old = bootstrapped
    namespace = target["namespace"]
    v2 = train_model(tmp_path, "v2", 1)
    canary = {**target, "model_uri": v2, "steps": [20, 100], "interval": 5, "p99_ms": 5000}

    rolled_out = run_example("manual_rollout", canary)
    assert rolled_out.state == "success", rolled_out.task_states
    assert rolled_out.task_states["approval.canary"] == rolled_out.task_states["ab.lock"] == "skipped"
    result = rolled_out.results["rollout.outcome"]
    new = result["stable_revision"]
    assert result["promoted"] is True and new != old
    assert [step["percent"] for step in result["steps"]] == [20, 100]
    assert {step["verdict"] for step in result["steps"]} == {"pass"}
    assert rolled_out.results["rollout.load_test"]["verdict"]["passed"] is True
    promoted, traffic = production(cluster, namespace, "iris")
    assert traffic == [(new, 100)]

    same = run_example("manual_rollout", canary)
    assert same.state == "success", same.task_states
    assert same.results["rollout.outcome"]["unchanged"] is True
    assert production(cluster, namespace, "iris")[0] == promoted

    # Going back to v1 by a rollout is refused unless asked for on purpose.
    older = run_example("manual_rollout", {**canary, "model_uri": target["model_uri"]})
    assert older.state == "failed"
    assert older.task_states["rollout.deploy_candidate"] == "failed"
    assert production(cluster, namespace, "iris")[1] == [(new, 100)]

    back = run_example("manual_rollout", {**target, "rollback_now": True})
    assert back.state == "success", back.task_states
    assert back.task_states["bootstrap"] == back.task_states["rollout.outcome"] == "skipped"
    assert back.results["rollback_now"]["stable_revision"] == old
    service, traffic = production(cluster, namespace, "iris")
    assert traffic == [(old, 100)]
    assert state_from_annotations(json.loads(service)[1]).stable == old


def test_ab_test_names_the_winner_and_promotes_only_a_better_b(
    run_example: Runner, bootstrapped: tuple[dict[str, Any], str], cluster: Any, tmp_path: Path
) -> None:
    target, old = bootstrapped
    v2 = train_model(tmp_path, "v2", 1)
    ab = run_example(
        "manual_rollout",
        # The Params' shortest window, with the synthetic load raised so each side gets the 80 requests
        # of 8 s at the default 10/s.
        {
            **target,
            "model_uri": v2,
            "strategy": "ab",
            "ab_split": 50,
            "ab_window": 5,
            "load_rate": 16,
            "p99_ms": 5000,
        },
    )
    result = ab.results["ab.ab_test"]
    assert result["a"] == old and result["split"] == 50
    assert result["winner"] in ("a", "b", "no significant difference"), result["summary"]
    if result["winner"] == "b":
        assert ab.state == "success", ab.task_states
        assert production(cluster, target["namespace"], "iris")[1] == [(result["b"], 100)]
    else:
        # B did not win: not promoted, traffic back on A, and the run says so by failing.
        assert ab.state == "failed"
        assert ab.task_states["ab.b_wins"] == "failed"
        assert (
            ab.task_states["ab.rollback"] == "success" and ab.task_states["ab.promote"] == "upstream_failed"
        )
        assert production(cluster, target["namespace"], "iris")[1] == [(old, 100)]


def test_approval_unanswered_times_out_and_rolls_back(
    run_example: Runner, bootstrapped: tuple[dict[str, Any], str], cluster: Any, tmp_path: Path
) -> None:
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    target, old = bootstrapped
    conf = {
        **target,
        "model_uri": train_model(tmp_path, "v2", 1),
        "approval": True,
        "approval_timeout": 10,
        "steps": [30],
        "interval": 5,
        "p99_ms": 5000,
    }
    scheduler = SchedulerJobRunner(job=Job())
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(1):
            scheduler.check_awaiting_input_timeouts()

    sweeping = threading.Thread(target=sweep, daemon=True)
    sweeping.start()
    try:
        waited = run_example("manual_rollout", conf)
    finally:
        stop.set()
        sweeping.join(timeout=30)
    assert waited.state == "failed", waited.task_states
    canary = waited.results["approval.canary"]
    assert canary["awaiting_promotion"] is True and canary["percent"] == 30
    # The first step is the Param's even though the candidate's deploy waited in the trigger.
    assert [(step["percent"], step["verdict"]) for step in canary["steps"]] == [(30, "pass")]
    # Nobody answered: after approval_timeout the scheduler's sweep gave the default answer, Reject.
    assert waited.task_states["approval.approve"] == "success"
    assert waited.task_states["approval.promote"] == "skipped"
    assert waited.task_states["approval.rollback"] == "success"
    assert production(cluster, target["namespace"], "iris")[1] == [(old, 100)]
