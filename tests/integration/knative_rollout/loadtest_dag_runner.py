"""Run one DAG with ``dag.test()`` in a fresh Airflow home and print its outcome as JSON (a test helper).

Usage: ``python loadtest_dag_runner.py DAGS_FOLDER DAG_ID``; the environment must point AIRFLOW_HOME,
AIRFLOW__CORE__DAGS_FOLDER and the database at a fresh temporary directory (see :func:`run_dag`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_dag(
    tmp_path: Path, dag_id: str, dag_source: str, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write ``dag_source`` to a DAGs folder, run the DAG in its own process, return states and XComs."""
    home, dags = tmp_path / "airflow-home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / f"{dag_id}.py").write_text(dag_source)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        **(extra_env or {}),
    }
    done = subprocess.run(
        [sys.executable, __file__, str(dags), dag_id], env=env, capture_output=True, text=True, timeout=240
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"DAG run crashed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    outcome: dict[str, Any] = json.loads(lines[-1])
    outcome["log"] = done.stdout + done.stderr
    return outcome


def main(dags_folder: str, dag_id: str) -> None:
    """Initialise the database, run the DAG and print ``{"state", "tasks", "xcom"}`` as the last line."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.initdb()
    dag = DagBag(dags_folder).get_dag(dag_id)
    assert dag is not None, f"DAG {dag_id} did not load from {dags_folder}"
    run = dag.test()
    outcome: dict[str, Any] = {"state": str(run.state), "tasks": {}, "xcom": {}}
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            outcome["tasks"][ti.task_id] = {"state": str(ti.state), "try_number": ti.try_number}
        for xcom in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id):
            outcome["xcom"].setdefault(xcom.task_id, {})[xcom.key] = xcom.value
    print(json.dumps(outcome, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
