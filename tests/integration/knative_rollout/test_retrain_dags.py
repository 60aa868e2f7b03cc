"""The example DAGs (retrain_and_rollout, manual_rollout, teardown) run with dag.test() on local_knative.

Each DAG runs twice with the same inputs (the second run is "nothing to roll out": green, production
unchanged), a run is cleared and run again (same run id: it resumes its own rollout and deploys nothing
twice), and the cluster is read with kubectl afterwards.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from knative_rollout.resources import state_from_annotations
from tests.conftest import REPO_ROOT
from tests.integration.knative_rollout.conftest import DagResult, _return_values

pytestmark = pytest.mark.integration

IMAGE = "registry.example.com/knative-rollout/model-server:v1"
Runner = Callable[..., DagResult]
"""``run(dag_id, conf, logical_date=None)``, with ``.dags`` (parsed from dags/) and ``.defaults`` (Params)."""


@pytest.fixture
def run_example(
    airflow_db: None, cluster: Any, local_knative: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Runner:
    """Return ``run(dag_id, conf, logical_date=None)``: run a DAG of ``dags/`` with dag.test()."""
    from airflow.dag_processing.dagbag import DagBag

    # After ``cluster``'s connection, which has no ingress address: the gate needs one for example.com.
    extra = {"kube_config_path": str(local_knative.kubeconfig), "ingress_address": local_knative.ingress_url}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes", "extra": extra})
    )
    monkeypatch.setenv("AIRFLOW_VAR_KNATIVE_ROLLOUT_ARTIFACT_STORE", f"file://{tmp_path / 'store'}")
    bundle = {
        "name": "example-dags",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(REPO_ROOT / "dags")},
    }
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
    dags = DagBag(dag_folder=REPO_ROOT / "dags").dags
    # Every Param is given in each run: dag.test() keeps one run's conf as the next run's defaults.
    defaults = {dag_id: copy.deepcopy(dag.params.dump()) for dag_id, dag in dags.items()}

    def run(dag_id: str, conf: dict[str, Any], logical_date: pendulum.DateTime | None = None) -> DagResult:
        full = copy.deepcopy(defaults[dag_id]) | conf
        dagrun = dags[dag_id].test(run_conf=full, logical_date=logical_date or pendulum.now("UTC"))
        return DagResult(
            state=str(dagrun.state),
            task_states={ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()},
            results=_return_values(dagrun),
        )

    run.dags = dags  # type: ignore[attr-defined]
    run.defaults = defaults  # type: ignore[attr-defined]
    return run


def production(cluster: Any, namespace: str, name: str) -> tuple[str, list[tuple[str, int]]]:
    """Return the Service's spec and rollout record as kubectl shows them, and the traffic it serves."""
    service = json.loads(cluster.kubectl("-n", namespace, "get", f"ksvc/{name}", "-o", "json"))
    written = json.dumps([service["spec"], service["metadata"]["annotations"]], sort_keys=True)
    return written, [(target["revisionName"], target["percent"]) for target in service["status"]["traffic"]]


def test_retrain_and_rollout_promotes_better_models_only(
    run_example: Runner, kube_namespace: str, cluster
) -> None:
    target = {"service_name": "iris", "namespace": kube_namespace, "image": IMAGE, "serving_faults": {}}
    first = {**target, "batch": 2, "label_noise": 0.4}

    created = run_example("retrain_and_rollout", first)
    assert created.state == "success", created.task_states
    assert created.task_states["bootstrap"] == "success"
    assert created.results["evaluate"]["reason"] == "no model serves yet: the first one is deployed"
    assert created.results["rollout.outcome"]["unchanged"] is True
    before, traffic = production(cluster, kube_namespace, "iris")
    stable = created.results["bootstrap"]["revision"]
    assert traffic == [(stable, 100)]

    # The same inputs again: the same model, so nothing to roll out; green and production unchanged.
    again = run_example("retrain_and_rollout", first)
    assert again.state == "success", again.task_states
    assert "serves already" in again.results["evaluate"]["reason"]
    assert again.task_states["rollout.deploy_candidate"] == "skipped"
    assert again.results["rollout.outcome"]["unchanged"] is True
    assert production(cluster, kube_namespace, "iris")[0] == before

    # A better model is rolled out step by step and promoted.
    when = pendulum.datetime(2026, 3, 1, tz="UTC")
    better = run_example("retrain_and_rollout", {**target, "batch": 3}, logical_date=when)
    assert better.state == "success", better.task_states
    assert better.results["evaluate"]["roll_out"] is True
    candidate = better.results["rollout.deploy_candidate"]["revision"]
    assert better.results["rollout.outcome"]["stable_revision"] == candidate
    promoted, traffic = production(cluster, kube_namespace, "iris")
    assert traffic == [(candidate, 100)]

    # The same run cleared and run again: it finds its model serving and deploys nothing twice.
    rerun = run_example("retrain_and_rollout", {**target, "batch": 3}, logical_date=when)
    assert rerun.state == "success", rerun.task_states
    assert rerun.task_states["rollout.deploy_candidate"] == "skipped"
    assert production(cluster, kube_namespace, "iris")[0] == promoted

    # A worse model stops at the offline evaluation: green, nothing after it ran, production untouched.
    worse = run_example("retrain_and_rollout", {**target, "batch": 2, "label_noise": 0.5})
    assert worse.state == "success", worse.task_states
    assert worse.results["evaluate"]["roll_out"] is False
    assert worse.results["evaluate"]["reason"].startswith("not rolled out: new model iris-b2-n50-d0 scores")
    assert {worse.task_states[task] for task in ("publish", "bootstrap", "rollout.outcome")} == {"skipped"}
    assert production(cluster, kube_namespace, "iris")[0] == promoted


def _train(tmp_path: Path, version: str, seed: int) -> str:
    from model.train import train

    return str(train(tmp_path / "models", version=version, seed=seed))


def test_manual_rollout_checks_params_rolls_out_and_rolls_back(
    run_example: Runner, kube_namespace: str, cluster, tmp_path: Path
) -> None:
    target = {"service_name": "iris", "namespace": kube_namespace}
    v1, v2 = _train(tmp_path, "v1", seed=0), _train(tmp_path, "v2", seed=1)

    # Airflow refuses a run whose conf fails the Params' schemas; check_params, its first task, applies
    # the same schemas again for whatever reaches a run without them, naming the field.
    check = run_example.dags["manual_rollout"].task_dict["check_params"].python_callable
    with pytest.raises(AirflowFailException, match=r"Param 'model_uri' is invalid: '' should be non-empty"):
        check(params={**run_example.defaults["manual_rollout"], **target, "model_uri": ""})
    with pytest.raises(AirflowFailException, match=r"Param 'p99_ms' is invalid: 0 is less than the minimum"):
        check(params={**run_example.defaults["manual_rollout"], **target, "model_uri": v1, "p99_ms": 0})
    with pytest.raises(ParamValidationError, match="model_uri"):
        run_example("manual_rollout", {**target, "model_uri": "relative/path"})
    assert "iris" not in cluster.kubectl("-n", kube_namespace, "get", "ksvc", "-o", "name")

    first = run_example("manual_rollout", {**target, "model_uri": v1})
    assert first.state == "success", first.task_states
    assert first.task_states["rollback_now"] == "skipped"
    old = first.results["bootstrap"]["revision"]

    rolled_out = run_example("manual_rollout", {**target, "model_uri": v2})
    assert rolled_out.state == "success", rolled_out.task_states
    new = rolled_out.results["rollout.promote"]["stable_revision"]
    assert rolled_out.results["rollout.traffic_50"]["traffic"] == {old: 50, new: 50}
    promoted, traffic = production(cluster, kube_namespace, "iris")
    assert traffic == [(new, 100)]

    same = run_example("manual_rollout", {**target, "model_uri": v2})
    assert same.state == "success", same.task_states
    assert same.results["rollout.outcome"]["unchanged"] is True
    assert production(cluster, kube_namespace, "iris")[0] == promoted

    # Going back to v1 by a rollout is refused unless asked for on purpose.
    older = run_example("manual_rollout", {**target, "model_uri": v1})
    assert older.state == "failed"
    assert older.task_states["rollout.deploy_candidate"] == "failed"
    assert production(cluster, kube_namespace, "iris")[1] == [(new, 100)]

    back = run_example("manual_rollout", {**target, "model_uri": v1, "rollback_now": True})
    assert back.state == "success", back.task_states
    assert back.task_states["bootstrap"] == back.task_states["rollout.outcome"] == "skipped"
    assert back.results["rollback_now"]["stable_revision"] == old
    service, traffic = production(cluster, kube_namespace, "iris")
    assert traffic == [(old, 100)]
    assert state_from_annotations(json.loads(service)[1]).stable == old


def test_teardown_dry_run_lists_what_the_real_run_deletes(
    run_example: Runner, kube_namespace: str, cluster, tmp_path: Path
) -> None:
    target = {"service_name": "iris", "namespace": kube_namespace}
    for number in range(3):
        model = _train(tmp_path, f"v{number}", seed=number)
        assert run_example("manual_rollout", {**target, "model_uri": model}).state == "success"
    revisions = set(cluster.kubectl("-n", kube_namespace, "get", "revisions", "-o", "name").split())
    assert len(revisions) == 3

    prune = {**target, "mode": "prune_revisions", "keep": 0}
    dry = run_example("teardown", {**prune, "dry_run": True})
    assert dry.state == "success", dry.task_states
    would_go = dry.results["teardown"]["deleted_revisions"]
    assert dry.results["teardown"]["dry_run"] is True
    assert len(would_go) == 1  # the stable revision and the rollback target stay
    assert set(cluster.kubectl("-n", kube_namespace, "get", "revisions", "-o", "name").split()) == revisions

    pruned = run_example("teardown", {**prune, "dry_run": False})
    assert pruned.results["teardown"]["deleted_revisions"] == would_go
    assert run_example("teardown", {**prune, "dry_run": False}).results["teardown"]["deleted_revisions"] == []

    delete = {**target, "mode": "delete_service"}
    assert run_example("teardown", {**delete, "dry_run": True}).results["teardown"]["deleted_service"] is True
    assert "iris" in cluster.kubectl("-n", kube_namespace, "get", "ksvc", "-o", "name")
    assert (
        run_example("teardown", {**delete, "dry_run": False}).results["teardown"]["deleted_service"] is True
    )
    assert "iris" not in cluster.kubectl("-n", kube_namespace, "get", "ksvc", "-o", "name")
