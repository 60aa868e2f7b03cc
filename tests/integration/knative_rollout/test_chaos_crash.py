"""Resume after a crash: the rollout's process is SIGKILLed at every step, then the run is cleared and run
again (same run id, same rollout) or the next run comes; either way the Service ends safe.

Kill points: right after the lock is taken, during the deploy's wait for a slow candidate, during the
load-test gate, right after each traffic step, and during the promote write (held open by an injected
API delay). The cleared run must resume its own rollout and promote the same revision (no second
revision of that spec); the next run must wait out the dead run's Lease, take it over, put production
back on the stable revision and roll out its own candidate. After the kill and after the recovery the
invariants of ``rollout_invariants`` hold. ``make test`` runs a seeded sample of two cases (one per
recovery; ``CHAOS_SEED``); ``make chaos`` (``CHAOS_FULL=1``) runs every kill point with both.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaos_dag_run import CrashableRun
from chaos_rollouts import DAG_ID, SERVICE, airflow_env, candidate_conf, dag_source
from rollout_invariants import (
    ClusterView,
    check_history,
    check_kept,
    check_lock,
    check_no_duplicate_specs,
    check_production,
    check_serving,
    check_way_back,
)

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.locks import RolloutLock
from knative_rollout.resources import state_from_annotations
from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

LOCK_SECONDS = 20
BOOTSTRAP_DATE = "2026-03-01T00:00:00+00:00"
DOOMED_DATE = "2026-03-02T00:00:00+00:00"
NEXT_DATE = "2026-03-03T00:00:00+00:00"
KILL_POINTS = ("after_lock", "deploy_wait", "gate", "after_traffic_25", "after_traffic_75", "promote")
FULL = [(point, mode) for point in KILL_POINTS for mode in ("rerun", "next")]
# make test: a seeded sample of two (one of each recovery; CHAOS_SEED picks them), to keep its time down;
# make chaos: every pair.
_SAMPLER = random.Random(int(os.environ.get("CHAOS_SEED", "1")))
SAMPLE = [_SAMPLER.choice([case for case in FULL if case[1] == recovery]) for recovery in ("rerun", "next")]
CASES = FULL if os.environ.get("CHAOS_FULL") else SAMPLE


def _record(namespace: str) -> tuple[Any, str | None]:
    """Return the rollout state on the Service and the Lease's holder."""
    hook = KnativeServingHook()
    service = hook.get_service(SERVICE, namespace)
    holder = RolloutLock(hook, SERVICE, namespace).holding().holder
    return state_from_annotations(service["metadata"].get("annotations")), holder


def _deployed_at_zero(namespace: str) -> bool:
    state = _record(namespace)[0]
    return state.phase.value == "Canary" and state.step == 0 and state.candidate is not None


def _wait_for(run: CrashableRun, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            raise AssertionError(f"the run ended before {what}:\n{run.log()[-4000:]}")
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{run.log()[-4000:]}")


def _settled_problems(
    kubeconfig: str, namespace: str, checks: Callable[[ClusterView], list[str]]
) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        problems = checks(ClusterView.read(kubeconfig, namespace, SERVICE))
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(1)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("point", "recovery"), CASES, ids=[f"{p}-{r}" for p, r in CASES])
def test_a_rollout_killed_mid_step_ends_safe(
    local_knative: LocalKnative,
    kube_namespace: str,
    k8s_connection: Path,
    tmp_path: Path,
    point: str,
    recovery: str,
) -> None:
    require_binary("kubectl")
    kubeconfig = str(local_knative.kubeconfig)
    home = tmp_path / "airflow-home"
    env = airflow_env(kubeconfig, local_knative.ingress_url, home)
    (home / "dags").mkdir()
    (home / "dags" / f"{DAG_ID}.py").write_text(
        dag_source(kube_namespace, lock_seconds=LOCK_SECONDS, gate="6s")
    )

    def run(conf: dict[str, str], date: str, name: str) -> CrashableRun:
        return CrashableRun(home, DAG_ID, conf, date, env, name)

    bootstrap = run(candidate_conf("good", 0, None), BOOTSTRAP_DATE, "bootstrap").outcome()
    assert bootstrap["state"] == "success", bootstrap["log"][-4000:]
    stable = _record(kube_namespace)[0].stable
    conf = candidate_conf("good", 1, None)
    if point == "deploy_wait":
        conf["startup_delay_s"] = "8"  # the deploy waits (deferred, renewing the lock) for readiness
    doomed = run(conf, DOOMED_DATE, "doomed")
    faults = local_knative.faults
    held_promote: dict[str, Any] | None = None
    try:
        if point == "after_lock":
            _wait_for(doomed, lambda: _record(kube_namespace)[1] is not None, "the lock")
        elif point == "deploy_wait":
            _wait_for(doomed, lambda: _record(kube_namespace)[0].phase.value == "Deploying", "the deploy")
            time.sleep(1)
        elif point == "gate":
            # Deployed at 0% (Canary, step 0): the gate loads it now, for 6 s.
            _wait_for(doomed, lambda: _deployed_at_zero(kube_namespace), "the gate")
            time.sleep(2)
        elif point.startswith("after_traffic_"):
            percent = int(point.rsplit("_", 1)[1])
            _wait_for(doomed, lambda: _record(kube_namespace)[0].step == percent, f"the {percent}% step")
        else:
            _wait_for(doomed, lambda: _record(kube_namespace)[0].step == 75, "the last traffic step")
            # The next write of the Service is the promotion: hold it open, then kill the run mid-write.
            held_promote = faults.add(
                verbs=["update", "patch"],
                resources=["services"],
                namespaces=[kube_namespace],
                names=[SERVICE],
                delay=10,
                count=1,
            )
            _wait_for(doomed, lambda: faults.rule(held_promote["id"])["fired"] == 1, "the promote write")
            time.sleep(1)
        killed_state, killed_holder = _record(kube_namespace)
        doomed.kill()
    finally:
        if held_promote is not None:
            faults.remove(held_promote["id"])
    # Mid-rollout or not, what users get is served by Ready revisions, and the way back is recorded.
    crashed = _settled_problems(kubeconfig, kube_namespace, check_serving)
    assert crashed == [], (point, crashed)
    assert _record(kube_namespace)[0].stable == stable or point == "promote"

    if recovery == "rerun":
        outcome = run(conf, DOOMED_DATE, "rerun").outcome()
    else:
        outcome = run(candidate_conf("good", 2, None), NEXT_DATE, "next").outcome()
    assert outcome["state"] == "success", (point, outcome["tasks"], outcome["log"][-6000:])
    promoted = outcome["xcom"]["rollout.promote"]["return_value"]["stable_revision"]
    view = ClusterView.read(kubeconfig, kube_namespace, SERVICE)
    history = [(entry.action, entry.detail, entry.by) for entry in view.state.history]
    if recovery == "rerun":
        # The cleared run is the same rollout: it resumed it (no takeover of its own lock).
        assert outcome["xcom"]["rollout.lock"]["return_value"]["taken_over_from"] is None
    elif killed_holder is not None:
        assert outcome["xcom"]["rollout.lock"]["return_value"]["taken_over_from"] == killed_holder
        taken = [detail for action, detail, _ in history if action == "LockTakenOver"]
        assert taken and killed_holder in taken[-1], history
        if killed_state.is_active() and killed_state.rollout_id == killed_holder and point != "promote":
            assert f"back to {stable}" in taken[-1], taken
    problems = [
        *check_serving(view),
        *check_way_back(view),
        *check_production(view, promoted),
        *check_kept(view, {stable, promoted}),
        *check_no_duplicate_specs(view),
        *check_history(view, [DAG_ID]),
        *check_lock(view),
    ]
    assert problems == [], (point, recovery, problems, history)
