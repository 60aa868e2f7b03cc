"""Resume after a crash: the rollout's process is SIGKILLed at every step, then the run is cleared and run
again (same run id, same rollout) or the next run comes; either way the Service ends safe.

Kill points: right after the lock is taken; between the deploy's two writes of the Service (the template
and record are written, the candidate is Ready, and the write that tags it and pins the traffic is held
open by an injected API delay that then refuses it); during the deploy's wait for a slow candidate; during
the load-test gate; right after each traffic step; while ``analysis_25`` measures its window (the DAG
then has a direct-scrape analysis after every step); during the promote write (held open the same way);
and after the promotion, before the teardown that follows the rollout deleted anything (its first
revision delete is held). The cleared run must resume its own rollout and promote the same revision (no
second revision of that spec; when the kill came after the promotion it finds nothing to roll out); the
next run must wait out the dead run's Lease, take it over, put production back on the stable revision and
roll out its own candidate. After the kill and after the recovery the invariants of ``rollout_invariants``
hold. ``make test`` runs a seeded sample of two cases (one per recovery; ``CHAOS_SEED``); ``make chaos``
(``CHAOS_FULL=1``) runs every kill point with both.
"""

from __future__ import annotations

import os
import random
import sqlite3
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
    check_promoted_once,
    check_serving,
    check_way_back,
)

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.locks import RolloutLock
from knative_rollout.resources import state_from_annotations
from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

# The next run waits this out after the kill; renewed every third of it, so 12 s leaves 4 s between renewals.
LOCK_SECONDS = 12
DOOMED_DATE = "2026-03-02T00:00:00+00:00"
NEXT_DATE = "2026-03-03T00:00:00+00:00"
KILL_POINTS = (
    "after_lock",
    "deploy_between_writes",
    "deploy_wait",
    "gate",
    "after_traffic_25",
    "analysis",
    "after_traffic_75",
    "promote",
    "before_teardown",
)
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


def _analysis(metrics_url: str) -> dict[str, Any]:
    """Return a short direct-scrape analysis with its own load: SLO only, so a good echo always passes."""
    return {
        "scrape_urls": [metrics_url],
        "window": "6s",
        "interval": "1s",
        "compare": False,
        "slo": {"max_error_rate": 0.2, "min_requests": 10},
        "load": {"rate": 10},
    }


def _task_running(home: Path, task_id: str) -> bool:
    """Return whether the Airflow database shows ``task_id`` running or deferred (in any run).

    False while the run's process has not created its database yet (the bootstrap runs in this process).
    """
    database = home / "airflow.db"
    if not database.exists():
        return False
    with sqlite3.connect(database, timeout=10) as db:
        try:
            rows = db.execute(
                "SELECT count(*) FROM task_instance WHERE task_id = ? AND state IN ('running', 'deferred')",
                (task_id,),
            ).fetchone()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return False
            raise
    return bool(rows[0])


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
    run_dag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
    recovery: str,
) -> None:
    require_binary("kubectl")
    kubeconfig = str(local_knative.kubeconfig)
    home = tmp_path / "airflow-home"
    env = airflow_env(kubeconfig, local_knative.ingress_url, home)
    (home / "dags").mkdir()
    analysis = _analysis(local_knative.metrics_url) if point == "analysis" else None
    # The gate lasts long enough to be killed inside only where that is the point: every other case runs
    # it three times (bootstrap, doomed, recovery), each a wait for nothing.
    gate = "6s" if point == "gate" else "2s"
    source = dag_source(
        kube_namespace, lock_seconds=LOCK_SECONDS, gate=gate, analysis=analysis, teardown=True
    )
    (home / "dags" / f"{DAG_ID}.py").write_text(source)

    def run(conf: dict[str, str], date: str, name: str) -> CrashableRun:
        return CrashableRun(home, DAG_ID, conf, date, env, name)

    # The Service and its stable, in the test's process (no crash here: a process of its own would only
    # pay Airflow's start-up once more), with the gate's ingress address. The runs' environment is
    # airflow_env's, none of this process' Airflow settings.
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    bootstrap = run_dag(DAG_ID, source=source)
    assert bootstrap.state == "success", bootstrap.task_states
    stable = _record(kube_namespace)[0].stable
    conf = candidate_conf("good", 1, None)
    if point == "deploy_wait":
        conf["startup_delay_s"] = "8"  # the deploy waits (deferred, renewing the lock) for readiness
    faults = local_knative.faults
    # A write held open by the API server for 10 s, then refused: the kill lands while it is in flight.
    hold = {"namespaces": [kube_namespace], "delay": 10, "error": 503, "count": 1}
    held: dict[str, Any] | None = None
    if point == "before_teardown":
        # Only the teardown deletes revisions: its first delete comes after the promotion and the lock's
        # release, before anything was torn down.
        held = faults.add(verbs=["delete"], resources=["revisions"], **hold)
    elif point == "deploy_between_writes":
        # The run's writes of the Service are the deploy's: the template and record (let through), then
        # the one that tags the Ready candidate and pins the traffic (held). No startup delay here: a
        # candidate slow to start would scale to zero after the kill and cold-start into the rerun's gate.
        held = faults.add(verbs=["update", "patch"], resources=["services"], names=[SERVICE], after=1, **hold)
    doomed = run(conf, DOOMED_DATE, "doomed")
    try:
        if point == "after_lock":
            _wait_for(doomed, lambda: _record(kube_namespace)[1] is not None, "the lock")
        elif point in ("deploy_between_writes", "before_teardown"):
            assert held is not None
            _wait_for(doomed, lambda: faults.rule(held["id"])["fired"] == 1, f"the held write ({point})")
            time.sleep(1)
        elif point == "deploy_wait":
            _wait_for(doomed, lambda: _record(kube_namespace)[0].phase.value == "Deploying", "the deploy")
            time.sleep(1)
        elif point == "gate":
            # Deployed at 0% (Canary, step 0): the gate loads it now, for 6 s.
            _wait_for(doomed, lambda: _deployed_at_zero(kube_namespace), "the gate")
            time.sleep(2)
        elif point == "analysis":
            _wait_for(doomed, lambda: _task_running(home, "rollout.analysis_25"), "the 25% analysis")
            time.sleep(3)  # inside its 6 s window
        elif point.startswith("after_traffic_"):
            percent = int(point.rsplit("_", 1)[1])
            _wait_for(doomed, lambda: _record(kube_namespace)[0].step == percent, f"the {percent}% step")
        else:
            _wait_for(doomed, lambda: _record(kube_namespace)[0].step == 75, "the last traffic step")
            # The next write of the Service is the promotion: hold it open, then kill the run mid-write.
            held = faults.add(
                verbs=["update", "patch"],
                resources=["services"],
                namespaces=[kube_namespace],
                names=[SERVICE],
                delay=10,
                count=1,
            )
            _wait_for(doomed, lambda: faults.rule(held["id"])["fired"] == 1, "the promote write")
            time.sleep(1)
        killed_state, killed_holder = _record(kube_namespace)
        doomed.kill()
    finally:
        if held is not None:
            faults.remove(held["id"])
    # Mid-rollout or not, what users get is served by Ready revisions, and the way back is recorded.
    crashed = _settled_problems(kubeconfig, kube_namespace, check_serving)
    assert crashed == [], (point, crashed)
    if point == "deploy_between_writes":
        assert killed_state.phase.value == "Deploying", killed_state  # the tag and traffic write never landed
    elif point == "analysis":
        assert (killed_state.phase.value, killed_state.step) == ("Canary", 25), killed_state
    if point == "before_teardown":
        # Promoted, lock released, nothing torn down yet.
        assert killed_state.stable != stable and not killed_state.is_active(), killed_state
        assert killed_holder is None and "TornDown" not in [e.action for e in killed_state.history]
    else:
        assert _record(kube_namespace)[0].stable == stable or point == "promote"

    if recovery == "rerun":
        outcome = run(conf, DOOMED_DATE, "rerun").outcome()
    else:
        outcome = run(candidate_conf("good", 2, None), NEXT_DATE, "next").outcome()
    assert outcome["state"] == "success", (point, outcome["tasks"], outcome["log"][-6000:])
    if point == "before_teardown" and recovery == "rerun":
        # Its candidate is production already: nothing to roll out, only the teardown left to do.
        assert outcome["tasks"]["rollout.deploy_candidate"] == "skipped", outcome["tasks"]
        promoted = outcome["xcom"]["rollout.deploy_candidate"]["deploy"]["stable_revision"]
        assert promoted == killed_state.stable
    else:
        promoted = outcome["xcom"]["rollout.promote"]["return_value"]["stable_revision"]
    assert outcome["tasks"]["teardown"] == "success", outcome["tasks"]
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
        # The teardown (keep=0) leaves only what it must: production and the way back from it.
        *check_kept(view, {promoted, view.state.previous_stable}),
        *check_no_duplicate_specs(view),
        *check_history(view, [DAG_ID]),
        *check_promoted_once(view),
        *check_lock(view),
    ]
    # ...and the teardown the kill cut short (before_teardown) was done by the recovery's.
    left = sorted(set(view.revisions) - {promoted, view.state.previous_stable})
    assert left == [], (point, recovery, "left by the teardown", left)
    assert problems == [], (point, recovery, problems, history)
