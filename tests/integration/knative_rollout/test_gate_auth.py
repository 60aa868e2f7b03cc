"""The load-test gate on a model API behind Istio JWT policies, the token from an Airflow connection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loadtest_dag_runner import run_dag
from test_loadtest_gate import kubectl, service

from local_knative.testing import LocalKnative
from tests.jwt_keys import AUDIENCE, ISSUER, jwks, rsa_key

pytestmark = pytest.mark.integration

DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.operators import LoadTestGateOperator

common = dict(service_name="echo", tag="stable", namespace="{namespace}", rate=20, duration="2s",
              timeout="5s", slo="p99<=2s,error_rate<=0.01")
token = "Bearer {{{{ conn.model_api.password }}}}"
expired = "Bearer {{{{ conn.model_api_expired.password }}}}"

with DAG("gate_auth", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
    LoadTestGateOperator(task_id="with_token", headers={{"Authorization": token}}, **common)
    # Refused requests never succeed: no warm-up, which would only wait for one that does.
    LoadTestGateOperator(task_id="expired_token", headers={{"Authorization": expired}}, warmup=0, **common)
    LoadTestGateOperator(task_id="without_token", warmup=0, **common)
"""


def test_gate_sends_the_token_of_a_connection(
    local_knative: LocalKnative, kube_namespace: str, tmp_path: Path
) -> None:
    kubeconfig = local_knative.kubeconfig
    stable = [{"revisionName": "echo-v1", "percent": 100, "tag": "stable"}]
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(service(kube_namespace, "echo-v1", 0, stable)))
    kubectl(kubeconfig, "wait", "-n", kube_namespace, "ksvc/echo", "--for=condition=Ready", "--timeout=90s")
    key = rsa_key()
    selector = {"matchLabels": {"serving.knative.dev/service": "echo"}}
    policies = [
        {
            "kind": "RequestAuthentication",
            "metadata": {"name": "echo-jwt"},
            "spec": {
                "selector": selector,
                "jwtRules": [{"issuer": ISSUER, "jwks": jwks(key), "audiences": [AUDIENCE]}],
            },
        },
        {
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "echo-require-jwt"},
            "spec": {"selector": selector, "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]},
        },
    ]
    for policy in policies:
        policy["apiVersion"] = "security.istio.io/v1"
        policy["metadata"]["namespace"] = kube_namespace
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(policy))

    extra = {"kube_config_path": str(kubeconfig), "ingress_address": local_knative.ingress_url}
    env = {
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes", "extra": extra}),
        "AIRFLOW_CONN_MODEL_API": json.dumps({"conn_type": "http", "password": key.token()}),
        "AIRFLOW_CONN_MODEL_API_EXPIRED": json.dumps(
            {"conn_type": "http", "password": key.token(exp=1_000_000_000)}
        ),
    }
    outcome = run_dag(tmp_path, "gate_auth", DAG.format(namespace=kube_namespace), env)

    tasks, xcom, log = outcome["tasks"], outcome["xcom"], outcome["log"]
    assert tasks["with_token"]["state"] == "success", log[-4000:]
    assert xcom["with_token"]["loadtest"]["errors"] == {}
    assert tasks["expired_token"]["state"] == "failed"
    assert tasks["without_token"]["state"] == "failed"
    assert set(xcom["expired_token"]["loadtest"]["errors"]) == {"http_401"}
    assert set(xcom["without_token"]["loadtest"]["errors"]) == {"http_403"}
    for task, status in (("expired_token", "401"), ("without_token", "403")):
        failed = xcom[task]["loadtest"]["verdict"]["failed"]
        assert [item["metric"] for item in failed] == ["succeeded", "error_rate"]  # refused, not slow
        assert f"no request of 40 succeeded (40 http_{status})" in failed[0]["message"]
    # The task's error says what the answers mean and where a token comes from.
    assert "The model API refused the load test's requests (401: the token sent is not valid" in log
    assert "(403: the request carries no token, or a policy denies this caller)" in log
    assert "from an Airflow connection" in log
