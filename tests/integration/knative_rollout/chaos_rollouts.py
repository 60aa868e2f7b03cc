"""Seeded chaos: rollouts of one Service under random API, watch, ingress and pod faults, checked after each.

Usage: ``python chaos_rollouts.py --trials N --seed S --work DIR --namespace NS --kubeconfig K --data-dir D``
in the environment of a fresh Airflow home whose ``kubernetes_default`` connection points at a
local_knative started with ``--fault-injection`` (``D`` is its data directory; see ``test_chaos.py``;
``make chaos`` runs 200). ``--replay SEED[,SEED...]`` runs only those trials (their seeds are printed
with every broken trial).

Each trial is one ``dag.test()`` of the DAG in :data:`DAG_SOURCE` (real Airflow, real echo pods, a real
load-test gate), rolling out a random candidate (good, slow, erroring, never Ready, Ready late, or the
spec that is stable now) while random faults scoped to the trial's namespace fire: API 500/503/504/429/409,
slow answers, dropped connections, watches cut or expired, ingress errors and delays, and pods killed.
Some trials start a second run of the DAG at the same time, in a process of its own. A thread reads the
Service all along and keeps every revision that served. After the run the faults are cleared and the
invariants of ``rollout_invariants`` must hold (allowing a few seconds to settle): traffic sums to 100 on
Ready revisions only, a Ready stable is recorded and no rollout is left mid-way, production is 100% on the
recorded stable, no revision that served was deleted, no spec was deployed twice, the history names this
DAG's runs, the lock is free or expiring; plus a bad candidate never became production, and the DAG run is
green exactly when its candidate was promoted or there was nothing to roll out.

Prints one JSON line per trial and a summary last (trials, faults fired by kind, outcomes, broken
invariants, the seeds of broken trials); exits 1 when any trial broke an invariant.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from airflow_test_db import prepare_airflow_db
from loadtest_dag_runner import DagProcess
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
from service_poller import ServicePoller

DAG_ID = "chaos_rollout"
SERVICE = "echo"
ECHO = "registry.example.com/knative-rollout/echo"
LOCK_SECONDS = 30
GOOD_SLO = "p99<=1500ms,error_rate<=0.2"
DAG_SOURCE = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param
from knative_rollout.operators import KnativeDeployRevisionOperator, KnativeTeardownOperator
from knative_rollout.task_groups import progressive_rollout

target = dict(service_name="{service}", namespace="{namespace}", wait_timeout=45)
env = {{
    "ECHO_VERSION": "{{{{ params.version }}}}",
    "ECHO_DELAY_MS": "{{{{ params.delay_ms }}}}",
    "ECHO_FAIL_AT_START": "{{{{ params.fail_at_start }}}}",
    "ECHO_STARTUP_DELAY_S": "{{{{ params.startup_delay_s }}}}",
}}
params = {{
    "version": Param("v1", type="string"),
    "delay_ms": Param("0", type="string"),
    "fail_at_start": Param("", type="string"),
    "startup_delay_s": Param("0", type="string"),
    "slo": Param("{slo}", type="string"),
}}
with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), params=params,
         default_args={{"retries": 2, "retry_delay": timedelta(seconds=1)}}) as dag:
    stable = KnativeDeployRevisionOperator(
        task_id="deploy_stable", image="{echo}:v1", only_if_missing=True, **target
    )
    stable >> progressive_rollout(
        group_id="rollout", image="{echo}:v2", env=env, steps=(25, 75),
        load_test=dict(rate=10, duration="{gate}", timeout="2s", slo="{{{{ params.slo }}}}"),
        lock_duration={lock}, lock_timeout=150,{extra} **target
    ){after}
"""
TEARDOWN = ' >> KnativeTeardownOperator(task_id="teardown", keep=0, **target)'
"""What ``dag_source(teardown=True)`` puts after the rollout: delete every revision nothing protects."""

CANDIDATES = ("good", "good", "late_ready", "slow", "erroring", "never_ready", "stable_again")
# Candidates that must never become production, whatever the faults.
BAD = {"slow", "erroring", "never_ready"}
API_FAULTS = ("api-500", "api-503", "api-504", "api-429", "api-409", "api-delay", "api-reset")
WATCH_FAULTS = ("watch-cut", "watch-expired")
INGRESS_FAULTS = ("ingress-error", "ingress-delay")
FAULT_KINDS = (*API_FAULTS, *WATCH_FAULTS, *INGRESS_FAULTS, "pod-kill")


def dag_source(
    namespace: str,
    *,
    lock_seconds: int = LOCK_SECONDS,
    gate: str = "2s",
    analysis: dict[str, Any] | None = None,
    teardown: bool = False,
) -> str:
    """Return the chaos DAG for ``namespace``.

    :param lock_seconds: the rollout's lock duration.
    :param gate: the load-test gate's duration.
    :param analysis: the rollout's ``analysis`` mapping (an ``analysis_<percent>`` task after each step).
    :param teardown: tear down (``keep=0``) after the rollout.
    """
    return DAG_SOURCE.format(
        extra=f" analysis={analysis!r}," if analysis else "",
        after=TEARDOWN if teardown else "",
        service=SERVICE,
        namespace=namespace,
        dag_id=DAG_ID,
        echo=ECHO,
        lock=lock_seconds,
        slo=GOOD_SLO,
        gate=gate,
    )


def airflow_env(kubeconfig: str, ingress_url: str, home: Path) -> dict[str, str]:
    """Return the environment of a fresh Airflow home whose default connection is the local_knative."""
    home.mkdir(parents=True, exist_ok=True)
    extra = {"kube_config_path": kubeconfig, "ingress_address": ingress_url}
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes", "extra": extra}),
    }


def fault_rules(kind: str, rng: random.Random, namespace: str, index: int) -> list[dict[str, Any]]:
    """Return the fault rules of one kind, scoped to ``namespace`` and limited in count (faults pass)."""
    rule: dict[str, Any] = {"id": f"{kind}-{index}", "namespaces": [namespace]}
    resources = rng.choice(
        [["services"], ["revisions"], ["leases"], ["events"], ["services", "leases"], ["*"]]
    )
    verbs = rng.choice([["get"], ["update"], ["create"], ["get", "update"], ["*"]])
    common = {"resources": resources, "verbs": verbs, "after": rng.randint(0, 4)}
    if kind in ("api-500", "api-503", "api-504"):
        error = int(kind[-3:])
        rule |= common | {"error": error, "count": rng.randint(1, 3), "probability": rng.choice([0.3, 1.0])}
    elif kind == "api-429":
        rule |= common | {"error": 429, "retryAfter": 1, "count": rng.randint(1, 2)}
    elif kind == "api-409":
        rule |= {
            "verbs": ["update"],
            "resources": rng.choice([["services"], ["leases"]]),
            "after": rng.randint(0, 6),
            "error": 409,
            "count": rng.randint(1, 2),
        }
    elif kind == "api-delay":
        rule |= common | {
            "delay": rng.choice([0.3, 0.8, 1.5]),
            "count": rng.randint(2, 6),
            "probability": 0.5,
        }
    elif kind == "api-reset":
        rule |= common | {"reset": True, "count": rng.randint(1, 2)}
    elif kind == "watch-cut":
        rule |= {
            "verbs": ["watch"],
            "resources": rng.choice([["services"], ["revisions"], ["leases"], ["*"]]),
            "watchEvents": rng.randint(0, 2),
            "count": rng.randint(1, 4),
        }
    elif kind == "watch-expired":
        rule |= {"verbs": ["watch"], "error": 410, "count": 1, "after": rng.randint(0, 3)}
    elif kind == "ingress-error":
        # Sometimes enough to fail the gate (the rollout must then roll back), sometimes not.
        rule |= {
            "layer": "ingress",
            "names": [SERVICE],
            "error": rng.choice([500, 503]),
            "probability": rng.choice([0.02, 0.05, 0.5]),
        }
    elif kind == "ingress-delay":
        rule |= {"layer": "ingress", "names": [SERVICE], "delay": rng.choice([0.05, 0.2]), "probability": 0.5}
    else:
        raise ValueError(f"no rules for fault kind {kind!r}")
    return [rule]


def trial_plan(seed: int) -> dict[str, Any]:
    """Return what a trial does, from its seed alone (so it can be replayed)."""
    rng = random.Random(seed)
    candidate = rng.choice(CANDIDATES)
    kinds = rng.sample(FAULT_KINDS, rng.randint(1, 4))
    return {
        "seed": seed,
        "candidate": candidate,
        "faults": sorted(kinds),
        "concurrent": rng.random() < 0.12,
        "kill_after": rng.uniform(0.5, 8.0),
        "kill_target": rng.choice(["candidate", "stable"]),
    }


def candidate_conf(candidate: str, seed: int, stable_conf: dict[str, str] | None) -> dict[str, str]:
    """Return the run's params for a kind of candidate (a new version each time, so a new revision)."""
    conf = {
        "version": f"t{seed}",
        "delay_ms": "0",
        "fail_at_start": "",
        "startup_delay_s": "0",
        "slo": GOOD_SLO,
    }
    if candidate == "stable_again" and stable_conf is not None:
        return dict(stable_conf)
    if candidate == "late_ready":
        conf["startup_delay_s"] = "4"
    elif candidate == "slow":
        conf |= {"delay_ms": "400", "slo": "p99<=250ms,error_rate<=0.2"}
    elif candidate == "erroring":
        conf["slo"] = "p99<=1500ms,error_rate<=0.01"  # with a 50% ingress error rule on the Service
    elif candidate == "never_ready":
        conf["fail_at_start"] = "1"
    return conf


class ServedWatcher(ServicePoller):
    """Read the Service every 250 ms and keep every revision that served traffic, and every candidate."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace, SERVICE, 0.25)
        self.served: set[str] = set()
        self.candidates: set[str] = set()

    def seen(self, service: dict[str, Any]) -> None:
        from knative_rollout.resources import state_from_annotations

        for target in (service.get("status") or {}).get("traffic") or []:
            if target.get("percent"):
                self.served.add(str(target["revisionName"]))
        candidate = state_from_annotations(service["metadata"].get("annotations")).candidate
        if candidate:
            self.candidates.add(candidate)


def kill_pods_later(
    faults: Any, kubeconfig: str, namespace: str, plan: dict[str, Any], killed: list[str]
) -> threading.Thread:
    """Start a thread that SIGKILLs the pods of the candidate (or the stable) once, mid-run."""

    def kill() -> None:
        time.sleep(plan["kill_after"])
        try:
            state = ClusterView.read(kubeconfig, namespace, SERVICE).state
            target = state.candidate if plan["kill_target"] == "candidate" else state.stable
            if target:
                killed.extend(faults.kill(namespace, target))
        except Exception:  # no running pod (scaled to zero, not started): nothing to kill
            pass

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def settled(read: Any, checks: Any, seconds: float = 30) -> list[str]:
    """Return the problems ``checks`` still finds after up to ``seconds`` of settling (Knative converges)."""
    deadline = time.monotonic() + seconds
    while True:
        problems = checks(read())
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(1)


def run_outcome(dag: Any, run: Any) -> dict[str, Any]:
    """Return the states and return values of one run's tasks."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = {
            (row.task_id, row.key): row.value
            for row in session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=run.run_id)
        }
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
    return {"state": str(run.state), "tasks": states, "xcom": xcoms}


def main() -> int:
    """Run the trials; print one line per trial and the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replay", default="")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--namespace", default="chaos")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()

    from airflow.dag_processing.dagbag import DagBag

    from local_knative.faults.client import FaultClient

    faults = FaultClient.from_data_dir(args.data_dir)
    dags = args.work / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / f"{DAG_ID}.py").write_text(dag_source(args.namespace))
    prepare_airflow_db()
    dag = DagBag(str(dags)).get_dag(DAG_ID)
    assert dag is not None, "the chaos DAG did not load"
    # The Service and its first stable revision, without faults.
    first = dag.test(run_conf=candidate_conf("good", 0, None))
    assert str(first.state) == "success", f"the first rollout failed: {run_outcome(dag, first)}"
    stable_conf: dict[str, str] | None = candidate_conf("good", 0, None)

    seeds = [int(s) for s in args.replay.split(",") if s] or [
        args.seed * 100_000 + number for number in range(1, args.trials + 1)
    ]
    fired: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    broken_invariants: Counter[str] = Counter()
    broken_seeds: list[int] = []
    for number, seed in enumerate(seeds, start=1):
        plan = trial_plan(seed)
        before = ClusterView.read(args.kubeconfig, args.namespace, SERVICE)
        stable_before = before.state.stable
        conf = candidate_conf(plan["candidate"], seed, stable_conf)
        rng = random.Random(seed + 1)
        rules = [
            rule
            for index, kind in enumerate(plan["faults"])
            if kind != "pod-kill"
            for rule in fault_rules(kind, rng, args.namespace, index)
        ]
        if plan["candidate"] == "erroring":
            rules.append(
                {
                    "id": "erroring",
                    "layer": "ingress",
                    "namespaces": [args.namespace],
                    "names": [SERVICE],
                    "error": 503,
                    "probability": 0.5,
                }
            )
        started = time.monotonic()
        other: DagProcess | None = None
        with ServedWatcher(args.namespace) as watcher:
            for rule in rules:
                faults.add(rule)
            killer, killed = None, []
            if "pod-kill" in plan["faults"]:
                killer = kill_pods_later(faults, args.kubeconfig, args.namespace, plan, killed)
            if plan["concurrent"]:
                other_conf = candidate_conf("good", seed + 50_000, None)
                other = DagProcess(
                    args.work / f"concurrent-{seed}", DAG_ID, dag_source(args.namespace), None, other_conf
                )
            run = dag.test(run_conf=conf)
            other_outcome = other.outcome(timeout=400) if other is not None else None
            if killer is not None:
                killer.join()
            status = faults.status()
            for rule in status["rules"]:
                if rule["id"] in {r["id"] for r in rules}:
                    fired[rule["id"].rsplit("-", 1)[0]] += rule["fired"]
            fired["pod-kill"] += len(killed)
            for rule in rules:
                faults.remove(rule["id"])
        outcome = run_outcome(dag, run)
        promoted = outcome["tasks"].get("rollout.promote") == "success"
        unchanged = outcome["tasks"].get("rollout.deploy_candidate") == "skipped"
        deployed = (outcome["xcom"].get(("rollout.deploy_candidate", "return_value")) or {}).get("revision")
        green = outcome["state"] == "success"

        def checks(view: ClusterView, stable_before: str | None = stable_before) -> list[str]:
            return [
                *check_serving(view),
                *check_way_back(view),
                *check_production(view, str(view.state.stable)),
                *check_kept(view, {name for name in (stable_before, view.state.stable) if name}),
                *check_no_duplicate_specs(view),
                *check_history(view, [DAG_ID]),
                *check_lock(view, allow_expiring=True),
            ]

        problems = settled(lambda: ClusterView.read(args.kubeconfig, args.namespace, SERVICE), checks)
        after = ClusterView.read(args.kubeconfig, args.namespace, SERVICE)
        gone = sorted(name for name in watcher.served if name not in after.revisions)
        if gone:
            problems.append(f"revisions that served during the trial were deleted: {gone}")
        stable_now = after.state.stable
        if plan["candidate"] in BAD and deployed and stable_now == deployed:
            problems.append(f"a {plan['candidate']} candidate {deployed} became production")
        if green != (promoted or unchanged):
            problems.append(
                f"the run ended {outcome['state']} but promote is {outcome['tasks'].get('rollout.promote')}"
            )
        if promoted and other_outcome is None and stable_now != deployed:
            problems.append(f"the run promoted {deployed}, but production's stable is {stable_now}")
        if not promoted and other_outcome is None and stable_now != stable_before:
            problems.append(
                f"a run that did not promote moved production from {stable_before} to {stable_now}"
            )
        if other_outcome is not None:
            other_promoted = other_outcome["tasks"].get("rollout.promote", {}).get("state") == "success"
            if (other_outcome["state"] == "success") != (
                other_promoted
                or other_outcome["tasks"].get("rollout.deploy_candidate", {}).get("state") == "skipped"
            ):
                problems.append(f"the concurrent run ended {other_outcome['state']} without promoting")
        if promoted and not plan["concurrent"]:
            stable_conf = conf
        elif plan["concurrent"] and stable_now != stable_before:
            stable_conf = None  # which spec is stable now is not tracked; "stable_again" rolls out a new one
        kind = "promoted" if promoted else ("unchanged" if unchanged else "not promoted")
        outcomes[f"{plan['candidate']}: {kind}"] += 1
        for problem in problems:
            broken_invariants[problem.split(":")[0][:80]] += 1
        if problems:
            broken_seeds.append(seed)
        print(
            json.dumps(
                {
                    "trial": number,
                    **plan,
                    "state": outcome["state"],
                    "outcome": kind,
                    "stable": stable_now,
                    "seconds": round(time.monotonic() - started, 1),
                    "failed_tasks": sorted(t for t, s in outcome["tasks"].items() if s == "failed"),
                    "problems": problems,
                }
            ),
            flush=True,
        )
    summary = {
        "summary": True,
        "trials": len(seeds),
        "faults_fired": dict(sorted(fired.items())),
        "outcomes": dict(sorted(outcomes.items())),
        "broken_invariants": dict(broken_invariants),
        "broken_seeds": broken_seeds,
        "replay": f"CHAOS_REPLAY={','.join(map(str, broken_seeds))} make chaos" if broken_seeds else None,
    }
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary), flush=True)
    return 1 if broken_seeds else 0


if __name__ == "__main__":
    sys.exit(main())
