"""Seeded soak of the example rollout DAG on one Service, checking the cluster after every run.

Usage: ``python rollout_soak.py --runs N --seed S --work DIR --namespace NS`` with the environment of a
fresh Airflow home whose ``kubernetes_default`` connection points at a local_knative (see
``test_rollout_soak.py``; ``make soak`` runs 30). Each run of ``dags/rollout_example.py`` (real Airflow,
``dag.test()``, real model-server pods, a real load test) rolls out one of: a new good model, the model
now stable (a rerun), the previous model (refused, or allowed on purpose), a model that never becomes
Ready, a model that fails the gate, or the previous run cleared and run again. After every run the
cluster must show:

- production (status and spec) 100% on the revision the last successful promotion chose, or unchanged
  after a failed or rolled-back run, and never an older revision unless the run asked for it;
- the DAG run's state telling the truth: green only when it promoted or found nothing to roll out;
- the revisions production and its rollback target need still there and Ready;
- no two revisions with the same spec;
- every history entry naming a run of this soak;
- the Service's rollout lock free.

Prints one JSON line per run and the counts per scenario last; exits 1 on any broken invariant.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_test_db import prepare_airflow_db
from rollout_invariants import (
    ClusterView,
    check_history,
    check_kept,
    check_lock,
    check_no_duplicate_specs,
    check_production,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICE = "iris"
IMAGE = "registry.example.com/knative-rollout/model-server:v1"
DEFAULT_SLO = "p99<=800ms,error_rate<=0.01"
# 20 requests/s are sent: no revision can answer 1000/s of them.
FAILING_SLO = "achieved_rate>=1000"
SCENARIOS = ("new", "rerun", "previous", "previous_allowed", "never_ready", "fails_gate", "cleared")
# What the run must end as, and whether the rollout's candidate becomes production.
PROMOTES = {"new", "previous_allowed"}
GREEN = {"new", "rerun", "previous_allowed"}


def scenario_order(runs: int, seed: int) -> list[str]:
    """Return the scenarios of ``runs`` runs: a new model, each other scenario once, then at random.

    Every scenario needs only the first run before it (it promotes, so there is a stable, a previous and a
    run to clear): ``len(SCENARIOS)`` runs cover them all.
    """
    chooser = random.Random(seed)
    covering = [scenario for scenario in SCENARIOS if scenario != "new"]
    chooser.shuffle(covering)
    order = ["new", *covering]
    while len(order) < runs:
        order.append(chooser.choice(SCENARIOS))
    return order[:runs]


def check_cluster(
    kubeconfig: str, namespace: str, expected: str, keep: set[str], run_ids: set[str]
) -> list[str]:
    """Return every invariant the cluster breaks now (empty when all hold)."""
    view = ClusterView.read(kubeconfig, namespace, SERVICE)
    return [
        *check_production(view, expected),
        *check_kept(view, keep),
        *check_no_duplicate_specs(view),
        *check_history(view, ["rollout_example"], run_ids),
        *check_lock(view),
    ]


def candidate_uri(
    scenario: str, fresh: Path, good: Path, uris: dict[str, str], stable: str | None, previous: str | None
) -> str:
    """Return the model URI a scenario rolls out (``fresh`` is a new, unused path)."""
    if scenario in ("new", "fails_gate"):
        return str(shutil.copytree(good, fresh))
    if scenario == "never_ready":
        return str(fresh)  # nothing there: the model server exits, the revision fails
    return uris[str(stable if scenario == "rerun" else previous)]


def main() -> int:
    """Run the soak; print one line per run and the counts per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--namespace", default="soak")
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from model.train import train

    prepare_airflow_db()
    dag = DagBag(str(REPO_ROOT / "dags")).get_dag("rollout_example")
    assert dag is not None, "dags/rollout_example.py did not load"
    models = args.work / "models"
    v1 = str(train(models, "v1", seed=0))
    good = train(models, "good", seed=1)

    uris: dict[str, str] = {}  # revision -> the model URI it serves
    stable: str | None = None
    previous: str | None = None
    run_ids: set[str] = set()
    last: tuple[Any, dict[str, Any], str] | None = None
    counts: Counter[str] = Counter()
    broken = 0
    for number, scenario in enumerate(scenario_order(args.runs, args.seed), start=1):
        if scenario in ("previous", "previous_allowed") and previous is None:
            scenario = "new"
        if scenario == "cleared" and last is None:
            scenario = "new"
        if scenario == "rerun" and stable is None:
            scenario = "new"
        logical_date = None
        if scenario == "cleared":
            assert last is not None
            logical_date, conf, cleared_of = last
            expect_green = cleared_of in GREEN
        else:
            candidate = candidate_uri(scenario, models / f"{scenario}-{number}", good, uris, stable, previous)
            conf = {
                "service_name": SERVICE,
                "namespace": args.namespace,
                "image": IMAGE,
                "model_v1_uri": v1,
                "model_v2_uri": candidate,
                "slo": FAILING_SLO if scenario == "fails_gate" else DEFAULT_SLO,
                "allow_older": scenario == "previous_allowed",
                "attempt": 0,
            }
            expect_green = scenario in GREEN
        before = stable
        # Every run names its logical date and run_after: given the same two, dag.test() clears that very
        # run and runs it again (same run id, so the same rollout id); a logical date alone makes a new run.
        if logical_date is None:
            logical_date = datetime.now(UTC)
        run = dag.test(run_conf=conf, logical_date=logical_date, run_after=logical_date)
        new_run_id = run.run_id not in run_ids
        run_ids.add(run.run_id)
        with create_session() as session:
            xcoms = {
                (row.task_id, row.key): row.value
                for row in session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=run.run_id)
            }
            states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
            logical = session.query(DagRun).filter_by(run_id=run.run_id).one().logical_date
        deployed = (xcoms.get(("deploy_v1", "return_value")) or {}).get("revision")
        if stable is None and deployed:
            stable = deployed
            uris[deployed] = v1
            before = stable
        promoted = xcoms.get(("rollout.promote", "return_value"))
        if promoted and states.get("rollout.promote") == "success":
            candidate_revision = promoted["stable_revision"]
            if candidate_revision != stable:
                previous, stable = stable, candidate_revision
                uris.setdefault(candidate_revision, conf["model_v2_uri"])
        deploy_result = xcoms.get(("rollout.deploy_candidate", "return_value")) or {}
        if deploy_result.get("revision"):
            uris.setdefault(deploy_result["revision"], conf["model_v2_uri"])
        green = str(run.state) == "success"
        problems = check_cluster(
            args.kubeconfig, args.namespace, str(stable), {name for name in (stable, before) if name}, run_ids
        )
        if scenario == "cleared" and new_run_id:
            problems.append(f"the cleared run came back as a new run {run.run_id}, not the same run again")
        if green != expect_green:
            problems.append(f"the run ended {run.state}, expected {'success' if expect_green else 'failed'}")
        if scenario not in PROMOTES and scenario != "cleared" and stable != before:
            problems.append(f"{scenario} moved production from {before} to {stable}")
        counts[scenario] += 1
        broken += bool(problems)
        print(
            json.dumps(
                {
                    "run": number,
                    "scenario": scenario,
                    "state": str(run.state),
                    "stable": stable,
                    "problems": problems,
                }
            ),
            flush=True,
        )
        if scenario != "cleared":
            last = (logical, conf, scenario)
    print(json.dumps({"counts": dict(sorted(counts.items())), "runs": args.runs, "broken_runs": broken}))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
