"""Shared test set-up: an isolated Airflow home, and the rule that a missing requirement fails in CI."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration at import time, so the environment is set before any test imports it.
# The home is remembered in the environment so that a second import of this module and the subprocesses
# that tests start share it; the process that made it removes it when the session ends.
if "KNATIVE_ROLLOUT_TEST_AIRFLOW_HOME" not in os.environ:
    os.environ["KNATIVE_ROLLOUT_TEST_AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["KNATIVE_ROLLOUT_TEST_AIRFLOW_HOME_OWNER"] = str(os.getpid())
_AIRFLOW_HOME = Path(os.environ["KNATIVE_ROLLOUT_TEST_AIRFLOW_HOME"])
# The DAG-running test processes copy one initialised database instead of each running initdb
# (tests/integration/knative_rollout/airflow_test_db.py).
os.environ["KNATIVE_ROLLOUT_TEST_AIRFLOW_DB_TEMPLATE"] = str(_AIRFLOW_HOME / "airflow-template.db")
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"

pytest_plugins = ["local_knative.testing"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_unconfigure() -> None:
    """Remove the Airflow home this process made (after every fixture's teardown, which may still use it)."""
    if os.environ.get("KNATIVE_ROLLOUT_TEST_AIRFLOW_HOME_OWNER") == str(os.getpid()):
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def require(condition: bool, reason: str) -> None:
    """Skip when a requirement is missing locally; fail in CI, where a skip is a missing test."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"requirement missing in CI: {reason}")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Return the path of an executable the test needs (see :func:`require`)."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed")
    return str(path)
