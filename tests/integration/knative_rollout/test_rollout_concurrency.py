"""Rollouts of one Service at once: they take turns through its lock, never interleave, and a killed one
frees the Service when its Lease expires (the next rollout takes over and rolls its canary back).

Each run is ``dag.test()`` of the same DAG in a process of its own, against the session's local_knative;
a watcher thread reads the Service all along, so an interleaving would be seen even if undone later.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from loadtest_dag_runner import DagProcess
from service_poller import ServicePoller

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import split_of, state_from_annotations
from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"
DAG_ID = "concurrent_rollout"
DAG = """
import pendulum
from airflow.sdk import DAG, BaseSensorOperator, Param
from knative_rollout.hooks import KnativeServingHook
from knative_rollout.locks import RolloutLock
from knative_rollout.operators import KnativeDeployRevisionOperator
from knative_rollout.task_groups import progressive_rollout

target = dict(service_name="echo", namespace="{namespace}", wait_timeout=90)
gate = dict(rate=10, duration="{gate_seconds}s", timeout="5s", slo="error_rate<=0.01")


class AfterAnotherLocks(BaseSensorOperator):
    def poke(self, context):
        if not context["params"]["after_another_locks"]:
            return True
        return RolloutLock(KnativeServingHook(), "echo", "{namespace}").holding().holder is not None


params = {{"version": Param("v2", type="string"), "after_another_locks": Param(False, type="boolean")}}
with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), params=params,
         default_args={{"retries": 0}}) as dag:
    stable = KnativeDeployRevisionOperator(
        task_id="deploy_stable", image="{echo}:v1", only_if_missing=True, **target
    )
    # A run started with after_another_locks waits (started up already) until another run takes the lock.
    ready = AfterAnotherLocks(task_id="after_another_locks", poke_interval=0.2, timeout=120, mode="poke")
    stable >> ready >> progressive_rollout(
        group_id="rollout", image="{echo}:v2", env={{"ECHO_VERSION": "{{{{ params.version }}}}"}},
        load_test=gate, steps=(50,), on_conflict="{on_conflict}", lock_duration={lock_duration},
        lock_timeout=120, **target
    )
"""


def _connection(local_knative: LocalKnative) -> dict[str, str]:
    extra = {"kube_config_path": str(local_knative.kubeconfig), "ingress_address": local_knative.ingress_url}
    return {"AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes", "extra": extra})}


def _source(
    namespace: str, *, on_conflict: str = "wait", lock_duration: int = 60, gate_seconds: int = 2
) -> str:
    return DAG.format(
        namespace=namespace,
        dag_id=DAG_ID,
        echo=ECHO,
        on_conflict=on_conflict,
        lock_duration=lock_duration,
        gate_seconds=gate_seconds,
    )


class ServiceWatcher(ServicePoller):
    """Read the Service every 100 ms; keep each distinct (split, rollout, candidate, stable) seen."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace, "echo", 0.1)
        self.seen_states: list[tuple[dict[str, int], str | None, str | None, str | None]] = []

    def seen(self, service: dict[str, Any]) -> None:
        state = state_from_annotations(service["metadata"].get("annotations"))
        split = {name: pct for name, pct in split_of(service["spec"].get("traffic") or []).items() if pct}
        sample = (split, state.rollout_id, state.candidate, state.stable)
        if not self.seen_states or self.seen_states[-1] != sample:
            self.seen_states.append(sample)

    def interleavings(self) -> list[str]:
        """Return every moment traffic went to a revision that was not the stable or the owner's candidate."""
        return [
            f"traffic {split} while the record said stable {stable}, candidate {candidate} of {rollout}"
            for split, rollout, candidate, stable in self.seen_states
            if set(split) - {stable, candidate}
        ]


def _history_blocks(namespace: str) -> list[str]:
    """Return the runs that wrote the Service's history, one per uninterrupted block of entries."""
    service = KnativeServingHook().get_service("echo", namespace)
    runs = [
        entry.by.split("/")[1] for entry in state_from_annotations(service["metadata"]["annotations"]).history
    ]
    return [run for index, run in enumerate(runs) if index == 0 or runs[index - 1] != run]


def _record(namespace: str) -> Any:
    """Return the rollout state recorded on the Service now."""
    service = KnativeServingHook().get_service("echo", namespace)
    return state_from_annotations(service["metadata"]["annotations"])


def _start(tmp_path: Path, source: str, local_knative: LocalKnative, version: str) -> DagProcess:
    """Start a run of the DAG rolling out ``version`` of the echo candidate."""
    return DagProcess(tmp_path / version, DAG_ID, source, _connection(local_knative), {"version": version})


def _lease_holder(namespace: str) -> str | None:
    from knative_rollout.locks import RolloutLock

    return RolloutLock(KnativeServingHook(), "echo", namespace).holding().holder


def _bootstrap(
    run_here: Any, local_knative: LocalKnative, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Create the Service with its stable revision, so both runs start from production.

    In the test's process (``run_here`` is the ``run_dag`` fixture): it runs alone, and a process of its
    own would pay Airflow's start-up once more.
    """
    for key, value in _connection(local_knative).items():
        monkeypatch.setenv(key, value)  # with the ingress address: the gate loads the tag URL
    outcome = run_here(DAG_ID, source=_source(namespace))
    assert outcome.state == "success", outcome.task_states
    # The runs' processes inherit this environment: they must find the DAG in their own folder.
    monkeypatch.delenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST")


def _states(outcome: dict[str, Any]) -> dict[str, str]:
    return {task_id: task["state"] for task_id, task in outcome["tasks"].items()}


def test_two_runs_at_once_take_turns(
    local_knative: LocalKnative,
    kube_namespace: str,
    cluster: Any,
    run_dag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bootstrap(run_dag, local_knative, kube_namespace, monkeypatch)
    source = _source(kube_namespace, gate_seconds=3)
    with ServiceWatcher(kube_namespace) as watcher:
        runs = [_start(tmp_path, source, local_knative, version) for version in ("v3", "v4")]
        outcomes = [run.outcome(timeout=300) for run in runs]
    for outcome in outcomes:
        assert outcome["state"] == "success", (_states(outcome), outcome["log"][-4000:])
    promoted = {outcome["xcom"]["rollout.promote"]["return_value"]["stable_revision"] for outcome in outcomes}
    assert len(promoted) == 2, "each run rolled out its own revision, one after the other"
    # One of them waited for the lock: its history block comes after the other's, never inside it.
    # The bootstrap, then one run, then the other: a run's entries never sit inside another's.
    assert len(_history_blocks(kube_namespace)) == 3, _history_blocks(kube_namespace)
    assert watcher.interleavings() == []
    final = KnativeServingHook().get_service("echo", kube_namespace)
    last = _record(kube_namespace)
    assert split_of(final["status"]["traffic"]) == {last.stable: 100}
    assert last.stable in promoted and _lease_holder(kube_namespace) is None


def test_a_second_run_that_must_not_wait_fails_clearly_and_changes_nothing(
    local_knative: LocalKnative,
    kube_namespace: str,
    cluster: Any,
    run_dag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bootstrap(run_dag, local_knative, kube_namespace, monkeypatch)
    # The second run starts up at once and tries the lock as soon as the first holds it, so a short gate
    # keeps the first run holding it well past the second's attempt.
    source = _source(kube_namespace, on_conflict="fail", gate_seconds=6)
    with ServiceWatcher(kube_namespace) as watcher:
        conf = {"version": "v4", "after_another_locks": True}
        second = DagProcess(tmp_path / "second", DAG_ID, source, _connection(local_knative), conf)
        first = _start(tmp_path, source, local_knative, "v3")
        refused, promoted = second.outcome(timeout=300), first.outcome(timeout=300)
    assert promoted["state"] == "success", promoted["log"][-4000:]
    assert refused["state"] == "failed"
    states = _states(refused)
    assert (states["rollout.lock"], states["rollout.deploy_candidate"]) == ("failed", "upstream_failed")
    assert states["rollout.rollback"] == "success"  # ran, found nothing of its own to undo
    assert "is held by another rollout: concurrent_rollout/" in refused["log"]
    # Revision names are hashes of the spec: the refused run's candidate would be a second one seen.
    first_candidate = promoted["xcom"]["rollout.promote"]["return_value"]["stable_revision"]
    candidates = {candidate for _, _, candidate, _ in watcher.seen_states if candidate}
    assert candidates == {first_candidate} and watcher.interleavings() == [], watcher.seen_states
    assert _lease_holder(kube_namespace) is None


@pytest.mark.full  # make test-full; in make test the crash sample's 'next' case takes an expired lease over
def test_a_killed_run_frees_the_service_when_its_lease_expires(
    local_knative: LocalKnative,
    kube_namespace: str,
    cluster: Any,
    run_dag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bootstrap(run_dag, local_knative, kube_namespace, monkeypatch)
    hook = KnativeServingHook()
    stable = state_from_annotations(
        hook.get_service("echo", kube_namespace)["metadata"]["annotations"]
    ).stable
    # A short lease and a long gate: the run dies while its candidate is deployed and the lock held.
    source = _source(kube_namespace, lock_duration=8, gate_seconds=60)
    doomed = _start(tmp_path, source, local_knative, "v3")
    _wait_for(lambda: _record(kube_namespace).candidate is not None, "the doomed run's candidate")
    abandoned = _record(kube_namespace)
    doomed.kill()
    assert _lease_holder(kube_namespace) == abandoned.rollout_id

    started = time.monotonic()
    successor = DagProcess(
        tmp_path / "next",
        DAG_ID,
        _source(kube_namespace, lock_duration=8),
        _connection(local_knative),
        {"version": "v4"},
    )
    outcome = successor.outcome(timeout=300)
    assert outcome["state"] == "success", (_states(outcome), outcome["log"][-4000:])
    assert outcome["xcom"]["rollout.lock"]["return_value"]["taken_over_from"] == abandoned.rollout_id
    assert time.monotonic() - started >= 1  # it had to wait for the expiry, not take a live lock
    service = hook.get_service("echo", kube_namespace)
    record = _record(kube_namespace)
    history = [(entry.action, entry.detail) for entry in record.history]
    taken_over = [detail for action, detail in history if action == "LockTakenOver"]
    assert taken_over and abandoned.rollout_id in taken_over[0] and f"back to {stable}" in taken_over[0]
    assert split_of(service["status"]["traffic"]) == {record.stable: 100}
    assert record.stable == outcome["xcom"]["rollout.promote"]["return_value"]["stable_revision"]
    assert _lease_holder(kube_namespace) is None


def _wait_for(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
