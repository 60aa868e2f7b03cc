"""Run the chaos DAG once with ``dag.test()`` in an Airflow home that persists between runs (a test helper).

Usage: ``python chaos_dag_run.py DAGS_FOLDER DAG_ID CONF_JSON LOGICAL_DATE [PAGE_NAMESPACE]``. Runs
sharing one home share one metadata database, and the run is named after LOGICAL_DATE (``run_after``
too), so a second run with the same date is the same DAG run cleared and run again (same run id, so the
same rollout id), as a user clearing a run after its worker died; another date is the next run. Prints
``{"state", "run_id", "tasks", "xcom"}`` as the last line.
:class:`CrashableRun` starts it in a session of its own so a test can SIGKILL it mid-step.
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


class CrashableRun:
    """One run of a DAG in a process of its own, in a shared Airflow home; ``kill()`` is a worker dying."""

    def __init__(
        self,
        home: Path,
        dag_id: str,
        conf: dict[str, Any],
        logical_date: str,
        env: dict[str, str],
        name: str,
        page: str | None = None,
    ) -> None:
        self.stdout_path, self.stderr_path = home / f"{name}.out", home / f"{name}.err"
        command = [sys.executable, __file__, str(home / "dags"), dag_id, json.dumps(conf), logical_date]
        command += [page] if page else []
        # Output goes to files: nobody reads a pipe while the test polls the cluster.
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                command, env=env, stdout=stdout, stderr=stderr, text=True, start_new_session=True
            )

    def log(self) -> str:
        """Return what the run printed so far."""
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def outcome(self, timeout: float = 300) -> dict[str, Any]:
        """Wait for the run and return its outcome (states per task, XComs, the log)."""
        self.process.wait(timeout=timeout)
        # The outcome line, not log lines printed after it (at exit, with DEBUG logging).
        lines = [line for line in self.stdout_path.read_text().splitlines() if line.startswith('{"state"')]
        assert self.process.returncode == 0 and lines, f"DAG run crashed:\n{self.log()[-6000:]}"
        outcome: dict[str, Any] = json.loads(lines[-1])
        outcome["log"] = self.log()
        return outcome

    def kill(self) -> None:
        """SIGKILL the run and everything it started: no clean-up, no lock released."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def main(dags_folder: str, dag_id: str, conf: dict[str, Any], logical_date: str, page: str | None) -> None:
    """Run the DAG for ``logical_date`` (clearing an earlier run of it) and print the outcome.

    With ``page`` (a namespace), the outcome also has the run's rendered template fields (as Airflow
    stored them) and what the Rollouts page's JSON endpoint serves for that namespace, read in this
    process so that the page finds the run's XComs in its database.
    """
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.sdk import timezone
    from airflow.utils.session import create_session

    prepare_airflow_db()
    dag = DagBag(dags_folder).get_dag(dag_id)
    assert dag is not None, f"DAG {dag_id} did not load from {dags_folder}"
    # dag.test() names the run after run_after (default: now) and deletes an earlier run of the same
    # logical date; with run_after fixed too, the new run has the old one's run id: cleared and rerun.
    date = timezone.parse(logical_date)
    run = dag.test(run_conf=conf or None, logical_date=date, run_after=date)
    outcome: dict[str, Any] = {"state": str(run.state), "run_id": run.run_id, "tasks": {}, "xcom": {}}
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            outcome["tasks"][ti.task_id] = str(ti.state)
        for xcom in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id):
            outcome["xcom"].setdefault(xcom.task_id, {})[xcom.key] = xcom.value
        if page is not None:
            from airflow.models.renderedtifields import RenderedTaskInstanceFields

            rows = session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag_id, run_id=run.run_id)
            outcome["rendered"] = {row.task_id: row.rendered_fields for row in rows}
    if page is not None:
        from knative_rollout.hooks import KnativeServingHook
        from knative_rollout.rollouts_page import collect_rollouts

        outcome["page"] = collect_rollouts(KnativeServingHook(), [page])
    print(json.dumps(outcome, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], (sys.argv[5:] or [None])[0])
