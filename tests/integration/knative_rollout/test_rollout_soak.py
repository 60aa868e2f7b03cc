"""A seeded sample of the rollout soak: the example DAG run after run on one Service, invariants checked.

``make test`` runs a new model and then each other scenario once (7 runs); ``make soak`` runs 30 or more
(``SOAK_RUNS``, ``SOAK_SEED``). The runs happen in real Airflow (``dag.test()`` in a process of their own
with a fresh Airflow home), on the session's local_knative, with real model-server pods and a real load
test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rollout_soak import SCENARIOS

from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

SOAK = Path(__file__).with_name("rollout_soak.py")


@pytest.mark.timeout(3600)
def test_rollout_soak(local_knative: LocalKnative, kube_namespace: str, tmp_path: Path) -> None:
    require_binary("kubectl")
    runs = int(os.environ.get("SOAK_RUNS", str(len(SCENARIOS))))
    home = tmp_path / "airflow-home"
    home.mkdir()
    extra = {"kube_config_path": str(local_knative.kubeconfig), "ingress_address": local_knative.ingress_url}
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(SOAK.parents[3] / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes", "extra": extra}),
    }
    command = [
        sys.executable,
        str(SOAK),
        f"--runs={runs}",
        f"--seed={os.environ.get('SOAK_SEED', '1')}",
        f"--work={tmp_path}",
        f"--namespace={kube_namespace}",
        f"--kubeconfig={local_knative.kubeconfig}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3500)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    print("\n".join(lines))
    assert lines, f"the soak printed nothing:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    summary = json.loads(lines[-1])
    per_run = [json.loads(line) for line in lines[:-1]]
    broken = [run for run in per_run if run["problems"]]
    assert done.returncode == 0 and not broken, json.dumps(broken, indent=1) + done.stderr[-3000:]
    assert summary["runs"] == runs == len(per_run)
    if runs >= len(SCENARIOS):
        # The sample covers every scenario at least once.
        assert set(summary["counts"]) == set(SCENARIOS)
