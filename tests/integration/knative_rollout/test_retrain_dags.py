"""The example DAGs retrain_and_rollout and teardown run with dag.test() on local_knative.

The retrain runs twice with the same inputs (the second run is "nothing to roll out": green, production
unchanged), a run is cleared and run again (same run id: it resumes its own rollout and deploys nothing
twice), and the cluster is read with kubectl afterwards. The teardown runs on the Service the retrains
leave (stable, rollback target and a rolled-back candidate): the revisions it needs, with no rollouts of
its own. This module keeps the "better promoted, worse stopped" scenario with every check of its
outcome; the demo (test_demo) and the Celery end-to-end test (test_rollouts_console) check only what is
theirs.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pendulum
import pytest
from test_canary_rollout import Webhook

from tests.integration.knative_rollout.conftest import IMAGE, Runner, production

pytestmark = pytest.mark.integration


def test_retrain_and_rollout_promotes_better_models_only_and_teardown_deletes_what_its_dry_run_lists(
    run_example: Runner, kube_namespace: str, cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Webhook()
    monkeypatch.setenv("AIRFLOW_VAR_KNATIVE_ROLLOUT_ALERTS", json.dumps({"webhook_url": hook.url}))
    # Shorter analysis windows than the DAG's default, through its Variable (the rest stays default).
    monkeypatch.setenv(
        "AIRFLOW_VAR_KNATIVE_ROLLOUT_ANALYSIS", json.dumps({"window": "4s", "interval": "800ms"})
    )
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

    # A better model on a server 60 ms slower: it passes the offline evaluation and the load-test gate
    # (p99 <= 300 ms), but the analysis at 10% finds it slower than the stable, so it is rolled back.
    slower = {**target, "batch": 3, "serving_faults": {"FAULT_LATENCY_MS": "60"}}
    rejected = run_example("retrain_and_rollout", slower)
    assert rejected.state == "failed", rejected.task_states
    assert rejected.task_states["rollout.load_test"] == "success"
    # The gate's report (and its plot) lands in the artifact store, where the run's summary points.
    report = Path(urlparse(rejected.xcom["rollout.load_test"]["loadtest"]["report"]).path)
    assert json.loads(report.read_text())["verdict"]["passed"] is True
    assert report.with_suffix(".png").exists()
    assert rejected.task_states["rollout.analysis_10"] == "failed"
    assert rejected.task_states["rollout.traffic_50"] == "upstream_failed"
    assert rejected.task_states["rollout.rollback"] == "success"
    assert rejected.xcom["rollout.analysis_10"]["step"]["verdict"] == "fail"
    assert production(cluster, kube_namespace, "iris")[1] == [(stable, 100)]
    assert hook.events() == ["analysis_failed", "rolled_back"]
    assert "rollout.analysis_10 judged the candidate fail at 10%" in hook.posted[-1]["reason"]

    # A better model is rolled out step by step, each step judged on live metrics, and promoted.
    when = pendulum.datetime(2026, 3, 1, tz="UTC")
    better = run_example("retrain_and_rollout", {**target, "batch": 3}, logical_date=when)
    assert better.state == "success", better.task_states
    assert better.results["evaluate"]["roll_out"] is True
    candidate = better.results["rollout.deploy_candidate"]["revision"]
    assert better.results["rollout.outcome"]["stable_revision"] == candidate
    steps = [better.results[f"rollout.analysis_{percent}"] for percent in (10, 50, 100)]
    assert [(step["percent"], step["verdict"]) for step in steps] == [
        (10, "pass"),
        (50, "pass"),
        (100, "pass"),
    ]
    # Synthetic load in every window: both revisions answered it, with no other traffic.
    load = better.xcom["rollout.analysis_10"]["analysis"]["load"]
    assert {entry["revision"] for entry in load} == {stable, candidate}
    assert all(entry["succeeded"] >= 60 for entry in load), load
    promoted, traffic = production(cluster, kube_namespace, "iris")
    assert traffic == [(candidate, 100)]
    assert hook.events()[2:] == ["promoted"]

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

    # Teardown, on the Service the retrains left: its stable, the rollback target (the first model) and
    # the candidate rolled back above, which the retrain's own teardown (keep=1) kept.
    service = {"service_name": "iris", "namespace": kube_namespace}
    revisions = set(cluster.kubectl("-n", kube_namespace, "get", "revisions", "-o", "name").split())
    assert len(revisions) == 3
    prune = {**service, "mode": "prune_revisions", "keep": 0}
    dry = run_example("teardown", {**prune, "dry_run": True})
    assert dry.state == "success", dry.task_states
    would_go = dry.results["teardown"]["deleted_revisions"]
    assert dry.results["teardown"]["dry_run"] is True
    # The stable revision and the rollback target stay.
    assert would_go == [rejected.results["rollout.deploy_candidate"]["revision"]], would_go
    assert set(cluster.kubectl("-n", kube_namespace, "get", "revisions", "-o", "name").split()) == revisions

    pruned = run_example("teardown", {**prune, "dry_run": False})
    assert pruned.results["teardown"]["deleted_revisions"] == would_go
    assert run_example("teardown", {**prune, "dry_run": False}).results["teardown"]["deleted_revisions"] == []

    delete = {**service, "mode": "delete_service"}
    assert run_example("teardown", {**delete, "dry_run": True}).results["teardown"]["deleted_service"] is True
    assert "iris" in cluster.kubectl("-n", kube_namespace, "get", "ksvc", "-o", "name")
    assert (
        run_example("teardown", {**delete, "dry_run": False}).results["teardown"]["deleted_service"] is True
    )
    assert "iris" not in cluster.kubectl("-n", kube_namespace, "get", "ksvc", "-o", "name")
