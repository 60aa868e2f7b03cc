"""The pure modules (resources, policy, loadtest, the analysis statistics) load without Airflow or
Kubernetes, also through imports that import-linter cannot see (by name at import time, or inside a
third-party package).

They are listed once, in pyproject.toml's import-linter contract; `make lint` checks the same contract
statically and runs mypy --strict on the same modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from tests.conftest import REPO_ROOT

CONTRACT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]


def test_pure_modules_import_neither_airflow_nor_kubernetes() -> None:
    # A fresh interpreter: this test process has long imported Airflow through other tests.
    forbidden = set(CONTRACT["forbidden_modules"])
    probe = (
        "import json, sys\n"
        + "".join(f"import {module}\n" for module in CONTRACT["source_modules"])
        + f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {forbidden!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT / "plugins"
    )
    assert json.loads(result.stdout) == []
    # The docstring's modules are still under the contract.
    named = {"knative_rollout.resources", "knative_rollout.policy", "knative_rollout.loadtest"}
    assert named <= set(CONTRACT["source_modules"]), CONTRACT
