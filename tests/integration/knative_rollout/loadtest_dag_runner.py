"""Run one DAG with ``dag.test()`` in a fresh Airflow home and print its outcome as JSON (a test helper).

Usage: ``python loadtest_dag_runner.py DAGS_FOLDER DAG_ID [CONF_JSON]``; the environment must point
AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER and the database at a fresh temporary directory (see
:func:`run_dag`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from airflow_test_db import prepare_airflow_db


class DagProcess:
    """One DAG run in a process of its own (so a test can run several at once, or kill one)."""

    def __init__(
        self,
        tmp_path: Path,
        dag_id: str,
        dag_source: str,
        extra_env: dict[str, str] | None = None,
        conf: dict[str, Any] | None = None,
    ) -> None:
        home, dags = tmp_path / "airflow-home", tmp_path / "dags"
        home.mkdir(parents=True)
        dags.mkdir(parents=True)
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
        command = [sys.executable, __file__, str(dags), dag_id, json.dumps(conf or {})]
        # Output goes to files: a pipe nobody reads while another run is awaited would stall this one.
        self.stdout_path, self.stderr_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            # A session of its own, so that kill() ends the run and everything it started.
            self.process = subprocess.Popen(
                command, env=env, stdout=stdout, stderr=stderr, text=True, start_new_session=True
            )

    def outcome(self, timeout: float = 240) -> dict[str, Any]:
        """Wait for the run and return ``{"state", "tasks", "xcom", "log"}``."""
        self.process.wait(timeout=timeout)
        stdout, stderr = self.stdout_path.read_text(), self.stderr_path.read_text()
        lines = stdout.strip().splitlines()
        assert self.process.returncode == 0 and lines, f"DAG run crashed:\n{stdout[-3000:]}\n{stderr[-5000:]}"
        outcome: dict[str, Any] = json.loads(lines[-1])
        outcome["log"] = stdout + stderr
        return outcome

    def kill(self) -> None:
        """Kill the run as a worker dies: SIGKILL, no clean-up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def run_dag(
    tmp_path: Path, dag_id: str, dag_source: str, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write ``dag_source`` to a DAGs folder, run the DAG in its own process, return states and XComs."""
    return DagProcess(tmp_path, dag_id, dag_source, extra_env).outcome()


def main(dags_folder: str, dag_id: str, conf: dict[str, Any]) -> None:
    """Initialise the database, run the DAG and print ``{"state", "tasks", "xcom"}`` as the last line."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    prepare_airflow_db()
    dag = DagBag(dags_folder).get_dag(dag_id)
    assert dag is not None, f"DAG {dag_id} did not load from {dags_folder}"
    run = dag.test(run_conf=conf or None)
    outcome: dict[str, Any] = {"state": str(run.state), "tasks": {}, "xcom": {}}
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            outcome["tasks"][ti.task_id] = {"state": str(ti.state), "try_number": ti.try_number}
        for xcom in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id):
            outcome["xcom"].setdefault(xcom.task_id, {})[xcom.key] = xcom.value
    print(json.dumps(outcome, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
