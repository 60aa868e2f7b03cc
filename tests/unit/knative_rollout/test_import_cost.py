"""Parsing a DAG that uses the operators does not import scipy: every task process pays that import."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_operators_and_task_groups_load_without_scipy() -> None:
    # A fresh interpreter, as a worker's task process parses the DAG file (dags/fleet_rollout.py: ~800
    # task instances at 100 Services, each importing these modules once).
    probe = (
        "import json, sys\n"
        "import knative_rollout.operators, knative_rollout.task_groups, knative_rollout.analysis\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT / "plugins"
    )
    # Airflow may log a warning to stdout first; the answer is the last line.
    assert json.loads(result.stdout.splitlines()[-1]) == []
