"""The built wheel holds only knative_rollout and installs into a fresh venv as a provider and plugin.

This is the Cloud Composer situation: an environment whose Airflow 3.3.2, cncf-kubernetes 10.25 and
google 22.8 are fixed, to which the wheel (or the package from PyPI) is added. The wheel is built from a
copy of the files the distribution is made of, so nothing else in the work tree can leak into it, and it
is installed into a new virtualenv, run from a folder outside the repository, with those three pinned as
constraints: the resolver must accept the wheel's requirements without moving any of them. uv installs
it, as ``make install`` installs the development venv (from uv's cache, a fraction of pip's time); its
resolver honours the same constraints and ``uv pip check`` the same requirements as pip's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

# What Composer fixes; the versions are the ones requirements.txt pins for the development venv.
COMPOSER_PINNED = (
    "apache-airflow",
    "apache-airflow-providers-cncf-kubernetes",
    "apache-airflow-providers-google",
)
INSTALL_TIMEOUT = 900


def _pins(names: tuple[str, ...]) -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([^\s#]+).*", line)
        if match and match.group(1).lower() in names:
            pins[match.group(1).lower()] = match.group(2)
    missing = set(names) - set(pins)
    assert not missing, f"requirements.txt pins none of {sorted(missing)}"
    return pins


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "plugins",
        source / "plugins",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    # include/ is there too, as in a checkout: the wheel must leave it out, not merely not find it.
    shutil.copytree(REPO_ROOT / "include", source / "include", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        cwd=tmp_path,
        env=dict(os.environ),
    )
    wheels = list(out.glob("knative_rollout-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_installs_on_composer_pins_as_provider_and_plugin(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"knative_rollout", wheel.name.split("-py3")[0] + ".dist-info"}, sorted(top_level)
    assert not [n for n in names if n.startswith(("local_knative", "model/", "include/"))]
    for subpackage in ("analysis", "loadtest", "operators", "resources"):
        assert f"knative_rollout/{subpackage}/__init__.py" in names
    assert "[apache_airflow_provider]" in entry_points.decode()
    assert "[airflow.plugins]" in entry_points.decode()

    pins = _pins(COMPOSER_PINNED)
    constraints = tmp_path / "composer-constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    venv = tmp_path / "composer-venv"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "PYTHON"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    _run([sys.executable, "-m", "venv", str(venv)], cwd=outside, env=env)
    python = str(venv / "bin" / "python")
    uv = [find_uv_bin(), "pip"]
    # No byte-compiling (uv's default): compiling Airflow and the google SDKs is most of an install and
    # proves nothing.
    _run(
        [
            *uv, "install", "--quiet", "--python", python, "--constraint", str(constraints),
            str(wheel), *(f"{name}=={version}" for name, version in pins.items()),
        ],
        cwd=outside,
        env=env,
        timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    _run([*uv, "check", "--python", python], cwd=outside, env=env)
    installed = {
        package["name"].lower(): package["version"]
        for package in json.loads(
            _run([*uv, "list", "--python", python, "--format", "json"], cwd=outside, env=env)
        )
    }
    assert {name: installed.get(name) for name in pins} == pins
    assert "knative-rollout" in installed and "knative-rollout-dev" not in installed

    # Nothing of include/ came along: the embedded cluster and the example model are not importable.
    probe = "import importlib.util as u; print([m for m in ('local_knative', 'model') if u.find_spec(m)])"
    assert _run([python, "-c", probe], cwd=outside, env=env).strip() == "[]"

    airflow = str(venv / "bin" / "airflow")
    _run([airflow, "db", "migrate"], cwd=outside, env=env)
    providers = json.loads(_run([airflow, "providers", "list", "--output", "json"], cwd=outside, env=env))
    ours = [p for p in providers if p["package_name"] == "knative-rollout"]
    assert ours and ours[0]["version"] == installed["knative-rollout"], providers
    plugins = json.loads(_run([airflow, "plugins", "--output", "json"], cwd=outside, env=env))
    assert "knative_rollout" in [plugin["name"] for plugin in plugins], plugins

    # A DAG that uses the operators and the progressive rollout parses in that environment.
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy2(REPO_ROOT / "dags" / "rollout_example.py", dags)
    parse = textwrap.dedent(
        f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(dags)!r})
        assert not bag.import_errors, bag.import_errors
        print(sorted(bag.dags))
        """
    )
    # Airflow logs to stdout while it fills the DagBag: the DAG ids are the last line.
    assert _run([python, "-c", parse], cwd=outside, env=env).strip().splitlines()[-1] == "['rollout_example']"
