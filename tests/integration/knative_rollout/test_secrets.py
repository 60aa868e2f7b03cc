"""Secrets never leak: a full rollout with every secret set, then every place a value could land is scanned.

The secrets: the cluster's bearer token inside the ``kubernetes`` connection (an inline ``kube_config``
extra rather than a file path), the gate's ``Authorization`` header from an Airflow connection's password
(``{{ conn.gate_auth.password }}``), and a model env value from a Variable whose name marks it secret
(``{{ var.value.model_api_secret }}``). The run (real Airflow, ``dag.test()`` in a process of
its own) must succeed, the env value must reach the candidate's container (or the scan proves nothing),
and none of the three values may appear in the run's output (where ``dag.test()`` prints the task logs,
at INFO), the XComs, the rendered template fields Airflow stored, the load-test report, the Events, the
annotations and labels of any object in the namespace, or the Rollouts page's JSON.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_dag_run import CrashableRun
from chaos_rollouts import airflow_env
from rollout_invariants import kubectl_json

from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"
DAG_ID = "secret_rollout"
DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.operators import KnativeDeployRevisionOperator
from knative_rollout.task_groups import progressive_rollout

target = dict(service_name="echo", namespace="{namespace}", wait_timeout=60)
with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), default_args={{"retries": 0}}):
    KnativeDeployRevisionOperator(
        task_id="deploy_stable", image="{echo}:v1", only_if_missing=True, **target
    ) >> progressive_rollout(
        group_id="rollout", image="{echo}:v2", steps=(50,),
        env={{"API_SECRET": "{{{{ var.value.model_api_secret }}}}", "ECHO_VERSION": "secret"}},
        load_test=dict(
            rate=10, duration="2s", timeout="2s", slo="error_rate<=0.01",
            headers={{"Authorization": "Bearer {{{{ conn.gate_auth.password }}}}"}},
            report_path="{report}",
        ),
        **target
    )
"""


def _places(outcome: dict[str, Any], home: Path, namespace: str, kubeconfig: str) -> dict[str, str]:
    """Return every place a secret could have landed, as text, by name."""
    places = {
        "run output": outcome["log"],
        "xcom": json.dumps(outcome["xcom"], default=str),
        "rendered template fields": json.dumps(outcome["rendered"], default=str),
        "rollouts page json": json.dumps(outcome["page"], default=str),
        "events": json.dumps(kubectl_json(kubeconfig, "-n", namespace, "get", "events")),
    }
    for path in sorted((home / "logs").rglob("*")) + sorted(home.glob("*.json")):
        if path.is_file():
            places[f"file {path.relative_to(home)}"] = path.read_text(errors="replace")
    kinds = "ksvc,revisions,configurations,routes,leases.coordination.k8s.io,pods"
    for item in kubectl_json(kubeconfig, "-n", namespace, "get", kinds)["items"]:
        metadata = item["metadata"]
        where = f"{item['kind']}/{metadata['name']} annotations and labels"
        places[where] = json.dumps([metadata.get("annotations"), metadata.get("labels")])
    return places


@pytest.mark.timeout(300)
def test_no_secret_lands_in_logs_xcom_templates_reports_events_annotations_or_the_page(
    local_knative: LocalKnative, kube_namespace: str, tmp_path: Path
) -> None:
    require_binary("kubectl")
    kubeconfig = str(local_knative.kubeconfig)
    home = tmp_path / "airflow-home"
    env = airflow_env(kubeconfig, local_knative.ingress_url, home)
    cluster_token = yaml.safe_load(Path(kubeconfig).read_text())["users"][0]["user"]["token"]
    gate_token = "gate-" + secrets.token_hex(12)
    env_secret = "model-" + secrets.token_hex(12)
    inline = {"kube_config": Path(kubeconfig).read_text(), "ingress_address": local_knative.ingress_url}
    env["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps({"conn_type": "kubernetes", "extra": inline})
    env["AIRFLOW_CONN_GATE_AUTH"] = json.dumps({"conn_type": "http", "password": gate_token})
    env["AIRFLOW_VAR_MODEL_API_SECRET"] = env_secret
    # INFO, Airflow's default. At DEBUG, Airflow's task supervisor logs each value it is asked to mask
    # ("Sending request ... MaskSecret(value=...)") and the kubernetes client logs response bodies (the
    # Service with its env), both outside this provider: see the README's Troubleshooting.
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
    (home / "dags").mkdir()
    report = home / "gate-report.json"
    (home / "dags" / f"{DAG_ID}.py").write_text(
        DAG.format(namespace=kube_namespace, dag_id=DAG_ID, echo=ECHO, report=report)
    )

    run = CrashableRun(home, DAG_ID, {}, "2026-04-01T00:00:00+00:00", env, "run", page=kube_namespace)
    outcome = run.outcome(timeout=280)
    assert outcome["state"] == "success", (outcome["tasks"], outcome["log"][-6000:])
    # The secrets were used: the model got its env value, the gate its header (rendered, then masked).
    candidate = outcome["xcom"]["rollout.promote"]["return_value"]["stable_revision"]
    revision = kubectl_json(kubeconfig, "-n", kube_namespace, "get", f"revisions/{candidate}")
    container_env = {item["name"]: item.get("value") for item in revision["spec"]["containers"][0]["env"]}
    assert container_env["API_SECRET"] == env_secret
    assert "Authorization" in json.dumps(outcome["rendered"]["rollout.load_test"])
    assert report.is_file()

    places = _places(outcome, home, kube_namespace, kubeconfig)
    # dag.test() prints the task logs in the run's output (and writes task log files, if any, under logs/).
    assert "Load test:" in places["run output"], "the task logs are not in the run's output"
    leaks = [
        f"{what} in {where}"
        for what, value in (
            ("cluster token", cluster_token),
            ("gate token", gate_token),
            ("env secret", env_secret),
        )
        for where, text in places.items()
        if value in text
    ]
    assert leaks == []
