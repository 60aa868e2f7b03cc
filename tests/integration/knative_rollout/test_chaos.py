"""A seeded sample of the chaos suite: rollouts under random faults, every invariant checked after each.

``make test`` runs a few trials (``CHAOS_TRIALS``, default 3); ``make chaos`` runs 200 (``CHAOS_SEED``,
``CHAOS_REPLAY`` to rerun the seeds a broken trial printed). The trials run in real Airflow
(``dag.test()`` in a process of its own with a fresh Airflow home) against the session's local_knative,
with faults from its fault injection scoped to the test's namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chaos_rollouts import airflow_env

from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

CHAOS = Path(__file__).with_name("chaos_rollouts.py")


@pytest.mark.timeout(14400)
def test_chaos(local_knative: LocalKnative, kube_namespace: str, tmp_path: Path) -> None:
    require_binary("kubectl")
    trials = int(os.environ.get("CHAOS_TRIALS", "3"))
    home = tmp_path / "airflow-home"
    command = [
        sys.executable,
        str(CHAOS),
        f"--trials={trials}",
        f"--seed={os.environ.get('CHAOS_SEED', '1')}",
        f"--replay={os.environ.get('CHAOS_REPLAY', '')}",
        f"--work={home}",
        f"--namespace={kube_namespace}",
        f"--kubeconfig={local_knative.kubeconfig}",
        f"--data-dir={local_knative.data_dir}",
    ]
    if os.environ.get("CHAOS_REPORT"):
        command.append(f"--report={os.environ['CHAOS_REPORT']}")
    try:
        done = subprocess.run(
            command,
            env=airflow_env(str(local_knative.kubeconfig), local_knative.ingress_url, home),
            capture_output=True,
            text=True,
            timeout=14000,
        )
    finally:
        local_knative.faults.clear()  # whatever a crashed runner left behind
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    print("\n".join(lines))
    assert lines, f"the chaos runner printed nothing:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    summary = json.loads(lines[-1])
    assert summary.get("summary"), f"the runner stopped early:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    broken = [json.loads(line) for line in lines[:-1] if json.loads(line)["problems"]]
    assert done.returncode == 0 and not broken, json.dumps(broken, indent=1) + done.stderr[-3000:]
    assert summary["trials"] == len(lines) - 1
    assert sum(summary["faults_fired"].values()) > 0, "no fault fired: the trials tested nothing"
