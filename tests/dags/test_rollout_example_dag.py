"""The DAGs in dags/ import cleanly and fast, with owners, retries, tags and docs; the examples' shapes."""

from __future__ import annotations

import gc
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag


def _dagbag(path: Path) -> DagBag:
    """Parse DAGs with warnings captured, after finalising what earlier tests left for the garbage collector.

    Otherwise another test's unclosed socket can raise a ResourceWarning while the DagBag records warnings.
    """
    from airflow.dag_processing.dagbag import DagBag

    gc.collect()
    return DagBag(dag_folder=path)


def test_rollout_example_imports_cleanly() -> None:

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        dagbag = _dagbag(REPO_ROOT / "dags" / "rollout_example.py")
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    dag = dagbag.dags["rollout_example"]
    assert [task.task_id for task in dag.topological_sort()] == [
        "deploy_v1",
        "rollout.lock",
        "rollout.deploy_candidate",
        "rollout.load_test",
        "rollout.traffic_10",
        "rollout.traffic_50",
        "rollout.traffic_100",
        "rollout.promote",
        "rollout.rollback",
        "rollout.outcome",
        "stable_ready",
        "teardown",
    ]
    assert dag.task_dict["rollout.deploy_candidate"].traffic_percent == 0
    assert dag.task_dict["rollout.traffic_50"].traffic == {"@stable": 50, "@candidate": 50}
    gate = dag.task_dict["rollout.load_test"]
    assert (gate.tag, gate.slo, gate.expect_json_field) == ("candidate", "{{ params.slo }}", "predictions")
    # The tasks after the rollout wait for its outcome, so they never run after a rollback.
    assert dag.task_dict["stable_ready"].upstream_task_ids == {"rollout.outcome"}


EXAMPLE_DAGS = ("rollout_example", "retrain_and_rollout", "manual_rollout", "teardown")


def test_every_dag_in_the_folder_imports_cleanly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        dagbag = _dagbag(REPO_ROOT / "dags")
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    assert set(EXAMPLE_DAGS) <= set(dagbag.dags)
    for dag in dagbag.dags.values():
        assert dag.owner not in ("", "airflow"), f"{dag.dag_id} names no owner"
        assert dag.tags and "knative-rollout" in dag.tags, dag.dag_id
        assert dag.doc_md and dag.description, f"{dag.dag_id} has no doc"
        for task in dag.tasks:
            # Checking Params fails for good: retrying a bad value cannot help.
            assert task.retries >= (0 if task.task_id == "check_params" else 1), (dag.dag_id, task.task_id)


def test_every_param_default_is_valid_or_left_for_the_user() -> None:
    """A default the Param's own schema refuses (say ``""`` for a required text) disables the trigger form."""
    from airflow.sdk.definitions.param import ParamsDict

    dagbag = _dagbag(REPO_ROOT / "dags")
    for dag in dagbag.dags.values():
        params: ParamsDict = dag.params
        for name in params:
            param = params.get_param(name)
            if param.value is not None:
                param.resolve()  # raises ParamValidationError naming the value and the schema


def test_each_dag_file_parses_in_under_a_second() -> None:
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=REPO_ROOT / "dags" / "rollout_example.py")  # imports Airflow and the provider once
    for path in sorted((REPO_ROOT / "dags").glob("*.py")):
        started = time.perf_counter()
        dagbag = DagBag(dag_folder=path)
        elapsed = time.perf_counter() - started
        assert dagbag.dags and elapsed < 1.0, f"{path.name} took {elapsed:.2f}s to parse"


def test_retrain_and_rollout_runs_on_a_schedule_and_on_new_data_and_stops_when_not_better() -> None:
    from airflow.sdk import AssetOrTimeSchedule

    dag = _dagbag(REPO_ROOT / "dags" / "retrain_and_rollout.py").dags["retrain_and_rollout"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert [task.task_id for task in dag.topological_sort()][:7] == [
        "prepare_data",
        "train",
        "evaluate",
        "worth_rolling_out",
        "rollout_settings",
        "publish",
        "bootstrap",
    ]
    # The short circuit skips everything after it, the rollout's all_done outcome included.
    assert dag.task_dict["worth_rolling_out"].ignore_downstream_trigger_rules is True
    assert dag.task_dict["rollout.deploy_candidate"].upstream_task_ids == {"rollout.lock", "publish"}
    assert dag.task_dict["teardown"].upstream_task_ids == {"rollout.outcome"}
    # Every traffic step is judged with the analysis the settings task read from the Variables.
    assert dag.task_dict["rollout.analysis_50"].upstream_task_ids == {
        "rollout.traffic_50",
        "rollout_settings",
    }


def test_manual_rollout_params_have_types_limits_and_descriptions() -> None:
    dag = _dagbag(REPO_ROOT / "dags" / "manual_rollout.py").dags["manual_rollout"]
    for name, param in dag.params.items():
        param = dag.params.get_param(name)
        assert param.description and param.schema.get("type"), name
    assert dag.params.get_param("model_uri").schema["minLength"] == 1
    assert dag.params.get_param("p99_ms").schema["minimum"] == 1
    assert not dag.is_paused_upon_creation
    first = [task for task in dag.tasks if not task.upstream_task_ids]
    assert [task.task_id for task in first] == ["check_params"]


def test_the_training_batch_comes_from_the_asset_event_then_the_params_then_the_day() -> None:
    import importlib.util

    import pendulum
    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    spec = importlib.util.spec_from_file_location("retrain", REPO_ROOT / "dags" / "retrain_and_rollout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = {"batch": None, "label_noise": 0.1, "drift": 0.0}
    day = pendulum.datetime(2026, 3, 2, 4, tz="UTC")
    assert module.batch_spec(params, {}, day).batch == int(day.timestamp() // 86400)
    assert module.batch_spec({**params, "batch": 3}, {}, day).name == "iris-b3-n10-d0"
    assert module.batch_spec(params, {"batch": "7", "label_noise": 0.5}, day).name == "iris-b7-n50-d0"
    with pytest.raises(AirflowFailException, match="label_noise must be between 0 and 1"):
        module.batch_spec(params, {"batch": 1, "label_noise": 2}, day)
    assert module.gcs_path("gs://models") == ("models", "")
    assert module.gcs_path("gs://models/ml/iris/") == ("models", "ml/iris/")


def test_the_retrain_analysis_and_alerts_come_from_variables_checked_by_name(monkeypatch) -> None:
    import importlib.util
    import json

    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    spec = importlib.util.spec_from_file_location("retrain", REPO_ROOT / "dags" / "retrain_and_rollout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    connection = {"conn_type": "kubernetes", "extra": {"ingress_address": "http://127.0.0.1:8081/"}}
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(connection))
    # By default: local_knative's /metrics at the ingress, load on the Service's predict path.
    analysis = module.analysis_settings("iris")
    assert analysis["scrape_urls"] == ["http://127.0.0.1:8081/metrics"]
    assert analysis["load"]["path"] == "/v1/models/iris:predict" and analysis["window"] == "10s"
    prometheus = {"prometheus_url": "http://prometheus:9090", "window": "2m", "interval": "10s"}
    monkeypatch.setenv("AIRFLOW_VAR_KNATIVE_ROLLOUT_ANALYSIS", json.dumps(prometheus))
    analysis = module.analysis_settings("iris")
    assert "scrape_urls" not in analysis and analysis["prometheus_url"] == "http://prometheus:9090"
    monkeypatch.setenv("AIRFLOW_VAR_KNATIVE_ROLLOUT_ANALYSIS", '{"window": "soon"}')
    with pytest.raises(AirflowFailException, match="Variable knative_rollout_analysis: analysis: window="):
        module.analysis_settings("iris")
    assert module.ALERTS.notifiers() == []  # no Variable: no alerts
    monkeypatch.setenv("AIRFLOW_VAR_KNATIVE_ROLLOUT_ALERTS", '{"webhook_url": "http://alerts/hook"}')
    assert [type(notifier).__name__ for notifier in module.ALERTS.notifiers()] == [
        "KnativeRolloutWebhookNotifier"
    ]
    monkeypatch.setenv("AIRFLOW_VAR_KNATIVE_ROLLOUT_ALERTS", '{"pager": "x"}')
    with pytest.raises(ValueError, match=r"Variable knative_rollout_alerts: .*unknown keys \['pager'\]"):
        module.ALERTS.notifiers()
