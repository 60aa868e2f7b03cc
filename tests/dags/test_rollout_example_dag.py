"""The DAGs in dags/ import without errors or warnings; rollout_example has the documented shape."""

from __future__ import annotations

import warnings

from tests.conftest import REPO_ROOT


def test_rollout_example_imports_cleanly() -> None:
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        dagbag = DagBag(dag_folder=REPO_ROOT / "dags" / "rollout_example.py")
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    dag = dagbag.dags["rollout_example"]
    assert [task.task_id for task in dag.topological_sort()] == [
        "deploy_v1",
        "deploy_v2_canary",
        "traffic_10",
        "traffic_50",
        "traffic_100",
        "promote",
        "service_ready",
        "teardown",
    ]
    assert dag.task_dict["deploy_v2_canary"].traffic_percent == 0
    assert dag.task_dict["traffic_50"].traffic == {"@stable": 50, "@candidate": 50}


def test_every_dag_in_the_folder_imports_cleanly() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=REPO_ROOT / "dags")
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    assert "rollout_example" in dagbag.dags
