"""Alerts through the Slack webhook and SMTP providers' own notifiers, to a real SMTP server and endpoint.

The SMTP server is aiosmtpd on a free port; Slack is a local HTTP server the ``slackwebhook`` connection's
host points at (configuration, as a proxy or a Slack-compatible relay would be), answering as Slack does.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_canary_approval import run_source
from test_canary_rollout import ECHO, SERVICE, Load, service_state

from knative_rollout.notifiers import KnativeRolloutVariableNotifier, notifiers_from_config, notify_all
from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration


class Mailbox:
    """A real SMTP server (aiosmtpd) keeping the messages it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                mailbox.messages.append(message)  # type: ignore[arg-type]
                return "250 OK"

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def mails(self) -> list[tuple[str, str]]:
        """(subject, body text) of each message."""
        return [
            (str(m["Subject"]), m.get_body(("html", "plain")).get_content().strip())  # type: ignore[union-attr]
            for m in self.messages
        ]


class SlackStandIn:
    """An HTTP server answering Slack incoming-webhook posts as Slack does (200 ``ok``), keeping them."""

    def __init__(self) -> None:
        posted: list[tuple[str, dict[str, Any]]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posted.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: object) -> None:
                pass

        self.posted = posted
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mailbox, SlackStandIn]]:
    """An SMTP server and a Slack stand-in, with the connections ``smtp_alerts`` and ``slack_alerts``."""
    mailbox, slack = Mailbox(), SlackStandIn()
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": mailbox.port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@example.com"},
    }
    webhook = {"conn_type": "slackwebhook", "schema": "http", "host": f"{slack.host}/services"}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_ALERTS", json.dumps(smtp))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({**webhook, "password": "T0/B0/secret"}))
    yield mailbox, slack
    mailbox.controller.stop()
    slack.server.shutdown()


ALERTS = {
    "slack_webhook_conn_id": "slack_alerts",
    "email_to": ["oncall@example.com"],
    "smtp_conn_id": "smtp_alerts",
}


def test_each_alert_renders_its_own_payload(receivers: tuple[Mailbox, SlackStandIn]) -> None:
    """The same notifiers, two alerts: each message names its own event and reason (templates kept)."""
    from airflow.sdk import DAG

    mailbox, slack = receivers
    notifiers = notifiers_from_config(ALERTS)
    context: Any = {"dag": DAG("alerts")}
    for event, reason in [("analysis_failed", "p99 380ms > 300ms"), ("rolled_back", "all traffic back")]:
        payload = {"event": event, "service": "iris", "namespace": "models", "reason": reason}
        assert (
            notify_all(notifiers, context, {**payload, "revision": "iris-2", "stable_revision": "iris-1"})
            == []
        )
    text = "Knative Service models/iris: {} (candidate iris-2, stable iris-1): {}"
    assert mailbox.mails() == [
        ("knative-rollout analysis_failed: models/iris", text.format("analysis_failed", "p99 380ms > 300ms")),
        ("knative-rollout rolled_back: models/iris", text.format("rolled_back", "all traffic back")),
    ]
    assert [path for path, _ in slack.posted] == ["/services/T0/B0/secret"] * 2
    assert [body["text"] for _, body in slack.posted] == [body for _, body in mailbox.mails()]
    assert str(mailbox.messages[0]["To"]) == "oncall@example.com"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"slack": "x"}, "unknown keys \\['slack'\\]"),
        ({"email_to": []}, "email_to must be a non-empty string"),
        ({"slack_webhook_conn_id": " "}, "slack_webhook_conn_id must be"),
        ({"smtp_conn_id": "smtp_default"}, "without email_to"),
    ],
)
def test_a_bad_alert_config_names_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        notifiers_from_config(config)


def test_no_alert_config_means_no_notifiers() -> None:
    assert notifiers_from_config(None) == [] == notifiers_from_config({})


def test_the_variable_notifier_reads_its_variable_when_an_alert_goes_out(
    receivers: tuple[Mailbox, SlackStandIn], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import DAG

    mailbox, slack = receivers
    notifier = KnativeRolloutVariableNotifier(variable="rollout_alerts")
    context: Any = {"dag": DAG("alerts")}
    payload = {"event": "promoted", "service": "iris", "namespace": "models", "reason": "every step passed"}
    payload |= {"revision": "iris-2", "stable_revision": "iris-2"}
    assert notify_all([notifier], context, payload) == [] and mailbox.messages == [], "unset: no alerts"
    monkeypatch.setenv("AIRFLOW_VAR_ROLLOUT_ALERTS", json.dumps(ALERTS))
    assert notify_all([notifier], context, payload) == []
    assert [subject for subject, _ in mailbox.mails()] == ["knative-rollout promoted: models/iris"]
    assert len(slack.posted) == 1
    monkeypatch.setenv("AIRFLOW_VAR_ROLLOUT_ALERTS", json.dumps({"email": "oncall@example.com"}))
    (error,) = notify_all([notifier], context, payload)
    assert "Variable rollout_alerts: alert config: unknown keys ['email']" in error
    with pytest.raises(ValueError, match="Variable rollout_alerts: alert config: unknown keys"):
        notifier.notifiers()  # what a settings task calls to refuse it before any deploy


DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.notifiers import notifiers_from_config
from knative_rollout.operators import KnativeCanaryRolloutOperator, KnativeDeployRevisionOperator

target = dict(service_name="{service}", namespace="{namespace}", wait_timeout=90)
analysis = {{"scrape_urls": ["{metrics_url}"], "window": "6s", "interval": "1s",
            "slo": {{"max_p99_latency": "200ms", "max_error_rate": 0.02, "min_requests": 20}}}}

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         default_args={{"retries": 0}}) as dag:
    KnativeDeployRevisionOperator(task_id="deploy_stable", image="{echo}:v1", **target) >> (
        KnativeCanaryRolloutOperator(
            task_id="canary", image="{echo}:v2", env={{"ECHO_DELAY_MS": "250"}}, steps=[50],
            analysis=analysis, notifiers=notifiers_from_config({alerts}), **target,
        )
    )
"""


def test_a_rollback_alerts_through_slack_and_email(
    receivers: tuple[Mailbox, SlackStandIn],
    run_dag: Any,
    cluster: Any,
    local_knative: LocalKnative,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    """A slow candidate rolled back by a real rollout: both providers deliver both alerts with its reason."""
    mailbox, slack = receivers
    source = DAG.format(
        service=SERVICE,
        namespace=kube_namespace,
        metrics_url=local_knative.metrics_url,
        dag_id="canary_alerts",
        echo=ECHO,
        alerts=repr(ALERTS),
    )
    with Load(local_knative, kube_namespace):
        dagrun = run_source(tmp_path, "canary_alerts", source)
    assert str(dagrun.state) == "failed"
    state, served = service_state(cluster, kube_namespace)
    assert served == [(state.stable, 100, "stable")] and state.phase.value == "RolledBack"
    subjects = [subject for subject, _ in mailbox.mails()]
    assert subjects == [
        f"knative-rollout analysis_failed: {kube_namespace}/{SERVICE}",
        f"knative-rollout rolled_back: {kube_namespace}/{SERVICE}",
    ]
    candidate = state.rollout_revision
    for _, body in mailbox.mails():
        assert f"(candidate {candidate}, stable {state.stable}):" in body and "latency_p99" in body, body
    assert [body["text"] for _, body in slack.posted] == [body for _, body in mailbox.mails()]
