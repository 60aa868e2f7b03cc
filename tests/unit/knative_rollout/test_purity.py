"""The pure modules (resources, policy, loadtest, the analysis statistics) load without Airflow or
Kubernetes and pass mypy --strict."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

PURE_MODULES = (
    "knative_rollout.resources",
    "knative_rollout.policy",
    "knative_rollout.loadtest",
    "knative_rollout.analysis.judge",
    "knative_rollout.analysis.series",
    "knative_rollout.analysis.checks",
    "knative_rollout.analysis.config",
    "knative_rollout.analysis.ab",
)
FORBIDDEN_ROOTS = ("airflow", "kubernetes", "kubernetes_asyncio")


def test_pure_modules_import_neither_airflow_nor_kubernetes() -> None:
    # A fresh interpreter: this test process has long imported Airflow through other tests.
    probe = (
        "import json, sys\n"
        + "".join(f"import {module}\n" for module in PURE_MODULES)
        + f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN_ROOTS!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT / "plugins"
    )
    assert json.loads(result.stdout) == []


def test_pure_modules_pass_mypy_strict() -> None:
    package = REPO_ROOT / "plugins" / "knative_rollout"
    paths = [str(package / "resources"), str(package / "policy.py"), str(package / "loadtest")]
    analysis = ("judge.py", "series.py", "checks.py", "config.py", "ab.py")
    paths += [str(package / "analysis" / name) for name in analysis]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *paths],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
