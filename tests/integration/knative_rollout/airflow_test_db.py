"""The Airflow metadata database of a DAG-running test process: one ``initdb`` per session, copied after.

The test helpers that run DAGs in processes of their own (``loadtest_dag_runner``, ``chaos_dag_run``,
``chaos_rollouts``, ``rollout_soak``) each start from a fresh SQLite database. ``initdb`` takes seconds
each time, the same for every one of them, and as long again on a database that is already there, so the
first process keeps its new database as the session's template (``KNATIVE_ROLLOUT_TEST_AIRFLOW_DB_TEMPLATE``
in the session's Airflow home, see ``tests/conftest.py``) and the others copy it.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path


def prepare_airflow_db() -> None:
    """Give this process's Airflow home its database: the one there, else the template's copy, else initdb."""
    from airflow.configuration import conf
    from airflow.utils import db

    url = conf.get("database", "sql_alchemy_conn")
    if not url.startswith("sqlite:///"):
        db.initdb()
        return
    database = Path(url.removeprefix("sqlite:///"))
    if database.exists():
        return  # another run in this home made it (a cleared run, the next run after a crash)
    template = os.environ.get("KNATIVE_ROLLOUT_TEST_AIRFLOW_DB_TEMPLATE")
    if template and Path(template).exists():
        _copy(Path(template), database)
        return
    db.initdb()
    if template:
        _copy(database, Path(template))


def _copy(source: Path, target: Path) -> None:
    """Copy a database with SQLite's backup (what is still in its write-ahead log too), then rename it in
    place, so that no reader ever opens half of one (two runs may race to write the template)."""
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    with closing(sqlite3.connect(source)) as reader, closing(sqlite3.connect(partial)) as writer:
        reader.backup(writer)
    os.replace(partial, target)
