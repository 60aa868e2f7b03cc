"""The manual_rollout DAG run with dag.test() on local_knative: its Params checked, rollout and rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from knative_rollout.resources import state_from_annotations
from tests.integration.knative_rollout.conftest import Runner, production, train_model

pytestmark = pytest.mark.integration


def test_manual_rollout_checks_params_rolls_out_and_rolls_back(
    run_example: Runner, kube_namespace: str, cluster, tmp_path: Path
) -> None:
    target = {"service_name": "iris", "namespace": kube_namespace}
    v1, v2 = train_model(tmp_path, "v1", seed=0), train_model(tmp_path, "v2", seed=1)

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
