"""KnativeCanaryRolloutOperator(baseline=True) on local_knative: a fresh baseline judged, routed, deleted.

The candidate is judged against a new revision of the stable's spec (tagged ``baseline``, the canary's
weight) under real load through the ingress; whatever the outcome, the baseline leaves the traffic and
is deleted, and production ends at 100% on one revision. The resumed run is the cheap variant: the
operator is called as a worker would call it, the first run is dropped at its first analysis (as if the
worker died), and a second one of the same rollout drives every deferral's real trigger to its stop for
approval (the baseline deleted first), which a separate promote then ends. A killed rollout's baseline
is deleted by the next rollout, which takes its expired lock over.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from rollout_invariants import ClusterView, check_no_duplicate_specs, check_serving
from task_context import task_context
from test_canary_rollout import ECHO, SERVICE, Load, analysis, canary_dag, lease_holder, service_state

from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration


def judge_only(metrics_url: str, window: str = "6s") -> dict[str, Any]:
    """The judge alone, no slo: the 100% step has nothing to check, so a rollout spends one window.

    :param window: 6 s by default: a window under ``inline_wait_seconds`` + 5 s is judged in the worker, so
        a test that stops a rollout at its deferred analysis (``inline_wait_seconds=0``) needs 5 s or more.
    """
    config = analysis(metrics_url, window=window)
    del config["slo"]
    return config


def baseline_of(state: Any) -> str:
    """Return the baseline the rollout deployed, from its history (the record forgets it at the end)."""
    details = [entry.detail for entry in state.history if entry.action == "BaselineDeploying"]
    assert len(details) == 1, f"one baseline per rollout: {details}"
    return details[0].split()[2].rstrip(":")


def assert_gone(cluster: Any, namespace: str, baseline: str) -> ClusterView:
    """The baseline is out of traffic, deleted, forgotten; what serves is Ready and sums to 100."""
    view = ClusterView.read(str(cluster.kubeconfig), namespace, SERVICE)
    assert baseline not in view.revisions, "the baseline revision was deleted"
    assert baseline not in view.routed() and baseline not in view.served()
    assert view.state.baseline is None
    assert (view.service or {})["spec"]["template"]["metadata"]["name"] != baseline
    assert check_serving(view) == [] and check_no_duplicate_specs(view) == []
    return view


def test_a_good_candidate_judged_against_a_fresh_baseline_is_promoted_and_the_baseline_deleted(
    run_dag: Any, cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    # 3 s windows under 80 requests/s: as many requests as 6 s of the usual 40/s.
    analysis_args = judge_only(local_knative.metrics_url, window="3s")
    tasks = canary_dag(kube_namespace, f"{ECHO}:v2", {}, analysis_args, baseline=True)
    tasks[1][2]["steps"] = [25]
    with Load(local_knative, kube_namespace, rate=80.0) as load:
        outcome = run_dag("canary_baseline_good", tasks)
    assert outcome.state == "success", outcome.task_states
    summary = outcome.results["canary"]
    stable, candidate = outcome.results["deploy_stable"]["revision"], summary["revision"]
    state, served = service_state(cluster, kube_namespace)
    baseline = baseline_of(state)
    assert baseline not in (stable, candidate) and baseline.startswith(f"{SERVICE}-")
    assert [(step["percent"], step["verdict"], step["baseline"]) for step in summary["steps"]] == [
        (25, "pass", baseline),  # judged against the fresh baseline, not the stable
        (100, "pass", None),  # nothing to compare with at 100%
    ]
    assert served == [(candidate, 100, "stable")] and state.phase.value == "Promoted"
    assert (state.stable, state.previous_stable) == (candidate, stable), "the baseline is never stable"
    # At 25% the stable kept 50 and the baseline had the canary's 25, and answered real requests.
    assert any(
        f"{baseline}=25%" in entry.detail and f"{stable}=50%" in entry.detail for entry in state.history
    )
    # Its 25% of 80/s through a 3 s window is ~60 answers, fewer when the window starts late: 25 or more.
    assert load.by_revision(baseline)[0] >= 25, load.answers
    actions = [entry.action for entry in state.history]
    assert actions.index("BaselineDeploying") < actions.index("BaselineReady") < actions.index("Promoted")
    assert actions[-1] == "BaselineDeleted"
    assert_gone(cluster, kube_namespace, baseline)
    assert lease_holder(cluster, kube_namespace) is None


def test_a_slow_candidate_is_rolled_back_and_its_baseline_deleted(
    run_dag: Any, cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    tasks = canary_dag(
        kube_namespace,
        f"{ECHO}:v2",
        {"ECHO_DELAY_MS": "250"},
        analysis(local_knative.metrics_url, window="3s"),  # at 80 requests/s: the requests of 6 s at 40/s
        baseline="{{ 'true' }}",  # templated text, parsed
    )
    tasks[1][2]["steps"] = [25]
    with Load(local_knative, kube_namespace, rate=80.0) as load:
        outcome = run_dag("canary_baseline_slow", tasks)
    assert outcome.task_states == {"deploy_stable": "success", "canary": "failed"}
    stable = outcome.results["deploy_stable"]["revision"]
    state, served = service_state(cluster, kube_namespace)
    baseline = baseline_of(state)
    assert served == [(stable, 100, "stable")], "a failed rollout ends at 100% on the stable"
    assert (state.phase.value, state.stable, state.candidate) == ("RolledBack", stable, None)
    assert load.by_revision(baseline)[0] > 0, "the baseline served while the candidate was judged"
    actions = [entry.action for entry in state.history]
    assert actions[-2:] == ["RolledBack", "BaselineDeleted"]
    assert_gone(cluster, kube_namespace, baseline)
    assert lease_holder(cluster, kube_namespace) is None


def drive(operator: Any, context: dict[str, Any], stop_at: str | None = None) -> Any:
    """Run ``operator`` as worker and triggerer would: each deferral's real trigger, its event to the method.

    :param stop_at: drop the task at its first deferral into this method, as if its worker died there.
    """
    from airflow.sdk.exceptions import TaskDeferred

    from knative_rollout.triggers import run_inline

    step = functools.partial(operator.execute, context)
    while True:
        try:
            return step()
        except TaskDeferred as deferred:
            if deferred.method_name == stop_at:
                return None
            event = run_inline(deferred.trigger)
            step = functools.partial(getattr(operator, deferred.method_name), context, event)


def test_a_resumed_rollout_finds_its_baseline_and_deletes_it_before_stopping_for_approval(
    cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    from knative_rollout.operators import (
        KnativeCanaryRolloutOperator,
        KnativeDeployRevisionOperator,
        KnativePromoteOperator,
    )

    target = {"service_name": SERVICE, "namespace": kube_namespace, "wait_timeout": 90}
    rollout = {"rollout_id": "baseline-test/one-rollout", **target}
    stable = KnativeDeployRevisionOperator(
        task_id="deploy_stable", image=f"{ECHO}:v1", deferrable=False, **target
    ).execute(task_context("deploy_stable"))["revision"]

    def canary() -> KnativeCanaryRolloutOperator:
        return KnativeCanaryRolloutOperator(
            task_id="canary",
            image=f"{ECHO}:v2",
            steps=[25],
            analysis=judge_only(local_knative.metrics_url),
            baseline=True,
            promote=False,
            # Deferred for the analysis (a window under inline_wait_seconds + 5 s runs in the worker), so
            # the test can stop there, as a killed worker does.
            inline_wait_seconds=0,
            **rollout,
        )

    context = task_context("canary")
    with Load(local_knative, kube_namespace):
        assert drive(canary(), context, stop_at="analysis_complete") is None
        killed, served = service_state(cluster, kube_namespace)
        assert (killed.phase.value, killed.step) == ("Canary", 25), "left mid-rollout"
        assert killed.baseline and (killed.baseline, 25, "baseline") in served, served
        summary = drive(canary(), context)  # the same rollout, run again
    assert summary["awaiting_promotion"] is True, summary
    assert summary["steps"][0]["baseline"] == killed.baseline, "judged against the baseline it found"
    candidate = summary["revision"]
    state, served = service_state(cluster, kube_namespace)
    assert sorted(served) == sorted([(stable, 75, "stable"), (candidate, 25, "candidate")])
    assert baseline_of(state) == killed.baseline, "no second baseline was made"
    assert_gone(cluster, kube_namespace, killed.baseline)
    assert lease_holder(cluster, kube_namespace) == rollout["rollout_id"], "held for the approval"

    # What the approval's promote task then does, with no baseline left to mistake for anything.
    KnativePromoteOperator(task_id="promote", revision=candidate, deferrable=False, **rollout).execute(
        task_context("promote")
    )
    state, served = service_state(cluster, kube_namespace)
    assert served == [(candidate, 100, "stable")] and (state.stable, state.previous_stable) == (
        candidate,
        stable,
    )
    assert lease_holder(cluster, kube_namespace) is None


def test_a_killed_rollouts_baseline_is_deleted_by_the_rollout_that_takes_its_lock_over(
    cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    from knative_rollout.operators import KnativeCanaryRolloutOperator, KnativeDeployRevisionOperator

    target = {"service_name": SERVICE, "namespace": kube_namespace, "wait_timeout": 90}
    KnativeDeployRevisionOperator(
        task_id="deploy_stable", image=f"{ECHO}:v1", deferrable=False, **target
    ).execute(task_context("deploy_stable"))
    killed_rollout = KnativeCanaryRolloutOperator(
        task_id="canary",
        image=f"{ECHO}:v2",
        steps=[25],
        analysis=judge_only(local_knative.metrics_url),
        baseline=True,
        rollout_id="killed/rollout",
        lock_duration=3,  # expires 3 s after its worker died
        inline_wait_seconds=0,  # deferred for the analysis, where the test stops it
        **target,
    )
    with Load(local_knative, kube_namespace):
        assert drive(killed_rollout, task_context("canary"), stop_at="analysis_complete") is None
    killed, _ = service_state(cluster, kube_namespace)
    assert killed.baseline and killed.rollout_id == "killed/rollout"
    # The next rollout (no baseline of its own, straight to 100%: nothing to measure) waits for the lock,
    # takes it over, rolls the abandoned one back, and at its end deletes the baseline it left.
    summary = drive(
        KnativeCanaryRolloutOperator(
            task_id="canary",
            image=f"{ECHO}:v2",
            env={"RUN": "2"},
            steps=[100],
            analysis=judge_only(local_knative.metrics_url),
            rollout_id="next/rollout",
            **target,
        ),
        task_context("canary"),
    )
    assert summary["promoted"] is True, summary
    state, served = service_state(cluster, kube_namespace)
    assert served == [(summary["revision"], 100, "stable")]
    actions = [entry.action for entry in state.history]
    assert "LockTakenOver" in actions and actions[-1] == "BaselineDeleted", actions
    assert_gone(cluster, kube_namespace, killed.baseline)
