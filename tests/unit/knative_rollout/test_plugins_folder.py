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


def test_airflow_loads_only_the_plugin_module_from_the_copied_folder(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(
        REPO_ROOT / "plugins" / "knative_rollout",
        plugins / "knative_rollout",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    # Airflow imports each .py file it finds under the plugins folder as a top-level module; without the
    # folder's .airflowignore, loadtest/__main__.py would run the load test CLI and exit here.
    environment = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "plugins", "--output", "json"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Log lines may come before the JSON on stdout; the listing is the one line that is a JSON array.
    [listing] = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    listed = json.loads(listing)
    [ours] = [plugin for plugin in listed if plugin["name"] == "knative_rollout"]
    assert ours["source"] == "$PLUGINS_FOLDER/knative_rollout/plugin.py"
    assert [app["url_prefix"] for app in ours["fastapi_apps"]] == ["/knative-rollout"]
