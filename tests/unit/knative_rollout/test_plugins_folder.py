"""The provider works when its folder is just copied into an Airflow plugins folder (Cloud Composer)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_copied_folder_is_importable_from_the_plugins_folder(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(
        REPO_ROOT / "plugins" / "knative_rollout",
        plugins / "knative_rollout",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    probe = (
        "import json, knative_rollout\n"
        "import knative_rollout.operators as operators, knative_rollout.plugin as plugin\n"
        "print(json.dumps([knative_rollout.__file__, operators.__all__, plugin.KnativeRolloutPlugin.name]))"
    )
    # Airflow puts the plugins folder on sys.path; PYTHONPATH does the same ahead of the installed copy.
    environment = {**os.environ, "PYTHONPATH": str(plugins)}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, operators, plugin_name = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(module_file).is_relative_to(plugins)
    assert "KnativeDeployRevisionOperator" in operators and "LoadTestGateOperator" in operators
    assert plugin_name == "knative_rollout"
