"""Secrets never leak: a full rollout with every secret set, then every place a value could land is scanned.

The secrets: the cluster's bearer token inside the ``kubernetes`` connection (an inline ``kube_config``
extra rather than a file path), the gate's ``Authorization`` header from an Airflow connection's password
(``{{ conn.gate_auth.password }}``), a model env value from a Variable whose name marks it secret
(``{{ var.value.model_api_secret }}``), the Prometheus the analysis reads (a real ``prometheus`` that
requires basic auth, ``--web.config.file``) as login and password of the ``metrics_conn_id`` connection
(and the ``Basic`` credential made of them), the alert webhook's bearer token from a connection
(``KnativeRolloutWebhookNotifier(headers=...)``) and the token of a ``slackwebhook`` connection (its
password, the webhook URL's path; Slack's own notifier, through the alerts Variable). The run (real
Airflow, ``dag.test()`` in a process of its own) must succeed, each secret must have been used (the env
value in the candidate's container, the analysis passed on Prometheus' data, both alerts received with
their tokens), and none of the values may appear in the run's output (where ``dag.test()`` prints the task
logs, at INFO), the XComs, the rendered template fields Airflow stored, the load-test report, the Events,
the annotations and labels of any object in the namespace, or the Rollouts page's JSON.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import shutil
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_dag_run import CrashableRun
from chaos_rollouts import airflow_env
from rollout_invariants import kubectl_json
from test_analysis_live import Prometheus

from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"
DAG_ID = "secret_rollout"
DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.notifiers import KnativeRolloutVariableNotifier, KnativeRolloutWebhookNotifier
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
        analysis=dict(
            metrics_conn_id="prometheus_auth", window="4s", interval="1s", settle="2s", compare=False,
            slo={{"max_error_rate": 0.05, "min_requests": 10}}, load={{"rate": 10}},
        ),
        notifiers=[
            KnativeRolloutWebhookNotifier(
                url="{{{{ conn.alert_hook.host }}}}",
                headers={{"Authorization": "Bearer {{{{ conn.alert_hook.password }}}}"}},
            ),
            KnativeRolloutVariableNotifier(),
        ],
        **target
    )
"""


class AlertReceiver(http.server.BaseHTTPRequestHandler):
    """Keep every alert posted to it: path, Authorization header and body."""

    received: list[tuple[str, str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        text = body.decode()
        self.received.append((self.path, self.headers.get("Authorization", ""), json.loads(text or "{}")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def alerts() -> Iterator[tuple[str, list[tuple[str, str, dict[str, Any]]]]]:
    """Yield the URL of a local HTTP server standing in for the alert webhooks, and what it received."""
    received: list[tuple[str, str, dict[str, Any]]] = []
    handler = type("Receiver", (AlertReceiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    thread.join()


def bcrypt_hash(password: str) -> str:
    """Return a bcrypt hash (cost 5, so Prometheus checks each request fast) for its web config."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt goes in Python 3.13; glibc has bcrypt
        import crypt

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2**5))


def _status(url: str, authorization: str | None = None) -> int:
    """Return the HTTP status of a GET (0 when nothing listens)."""
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.fixture
def prometheus(local_knative: LocalKnative, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Yield URL, user and password of a real Prometheus that scrapes local_knative and needs basic auth."""
    require_binary("prometheus")
    binary = shutil.which("prometheus")
    assert binary is not None
    user, password = "analysis", "prom-" + secrets.token_hex(12)
    web = tmp_path / "prometheus" / "web.yml"
    web.parent.mkdir()
    web.write_text(yaml.safe_dump({"basic_auth_users": {user: bcrypt_hash(password)}}))
    target = local_knative.metrics_url.split("//")[1].split("/")[0]
    server = Prometheus(binary, web.parent, target, extra_args=[f"--web.config.file={web}"])
    try:
        deadline = time.monotonic() + 30
        while _status(f"{server.url}/-/ready") != 401:  # up, and asking for credentials
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.2)
        yield server.url, user, password
    finally:
        server.stop()


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
    local_knative: LocalKnative,
    kube_namespace: str,
    tmp_path: Path,
    prometheus: tuple[str, str, str],
    alerts: tuple[str, list[tuple[str, str, dict[str, Any]]]],
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
    prometheus_url, prometheus_user, prometheus_password = prometheus
    basic = base64.b64encode(f"{prometheus_user}:{prometheus_password}".encode()).decode()
    # Prometheus really requires the credentials (the analysis below could not pass without them).
    assert _status(f"{prometheus_url}/api/v1/query?query=up") == 401
    assert _status(f"{prometheus_url}/api/v1/query?query=up", f"Basic {basic}") == 200
    env["AIRFLOW_CONN_PROMETHEUS_AUTH"] = json.dumps(
        {
            "conn_type": "http",
            "host": prometheus_url,
            "login": prometheus_user,
            "password": prometheus_password,
        }
    )
    alert_url, received = alerts
    alert_token = "alert-" + secrets.token_hex(12)
    slack_token = f"T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_hex(12)}"
    env["AIRFLOW_CONN_ALERT_HOOK"] = json.dumps(
        {"conn_type": "http", "host": f"{alert_url}/hook", "password": alert_token}
    )
    env["AIRFLOW_CONN_SLACK_ALERTS"] = json.dumps(
        {"conn_type": "slackwebhook", "host": f"{alert_url}/slack", "password": slack_token}
    )
    env["AIRFLOW_VAR_KNATIVE_ROLLOUT_ALERTS"] = json.dumps({"slack_webhook_conn_id": "slack_alerts"})
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
    analysis = outcome["xcom"]["rollout.analysis_50"]["analysis"]
    assert analysis["verdict"] == "pass", analysis  # read from Prometheus, with its credentials
    # Both alerts of the promotion went out, each with its token.
    assert (
        "/hook",
        f"Bearer {alert_token}",
    ) in [(path, auth) for path, auth, body in received if body.get("event") == "promoted"], received
    assert f"/slack/{slack_token}" in [path for path, _, _ in received], received

    places = _places(outcome, home, kube_namespace, kubeconfig)
    # dag.test() prints the task logs in the run's output (and writes task log files, if any, under logs/).
    assert "Load test:" in places["run output"], "the task logs are not in the run's output"
    leaks = [
        f"{what} in {where}"
        for what, value in (
            ("cluster token", cluster_token),
            ("gate token", gate_token),
            ("env secret", env_secret),
            ("prometheus password", prometheus_password),
            ("prometheus basic credential", basic),
            ("alert webhook token", alert_token),
            ("slack webhook token", slack_token),
        )
        for where, text in places.items()
        if value in text
    ]
    assert leaks == []
