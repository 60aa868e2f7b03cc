"""The test session's temporary Airflow home is removed when the session that made it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

INNER = """
import os
from pathlib import Path


def test_uses_the_session_home():
    home = Path(os.environ["AIRFLOW_HOME"])
    (home / "airflow.db").write_text("written by a test")
    Path({record!r}).write_text(str(home))
"""


def test_the_session_removes_the_airflow_home_it_made(tmp_path: Path) -> None:
    record = tmp_path / "home.txt"
    (tmp_path / "test_inner.py").write_text(INNER.format(record=str(record)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("KNATIVE_ROLLOUT_TEST_")}
    plugin = ["-p", "no:cacheprovider", "-p", "tests.conftest"]
    command = [sys.executable, "-m", "pytest", *plugin, str(tmp_path)]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    home = Path(record.read_text())
    assert home.name.startswith("airflow-home-") and home != Path(os.environ["AIRFLOW_HOME"])
    assert not home.exists(), f"{home} was left behind"
