"""Alerts on what a rollout decided: rollback, failed analysis, approval requested, promotion.

A rollout operator given ``notifiers=[...]`` calls each of them at these moments with the task's context
plus ``knative_rollout``: ``{"event", "service", "namespace", "revision", "stable_revision", "reason",
"analysis", "url"}``, where ``event`` is one of :data:`EVENTS`. Any ``airflow.sdk.BaseNotifier`` works,
so the Slack webhook and SMTP providers' notifiers can render ``{{ knative_rollout.reason }}`` in their
messages; :class:`KnativeRolloutWebhookNotifier` posts the payload as JSON to a URL (a chat webhook
relay, an incident tool); :func:`notifiers_from_config` builds all three from one mapping, and
:class:`KnativeRolloutVariableNotifier` does so from an Airflow Variable each time an alert goes out.
Each alert renders a copy of the notifier: a ``BaseNotifier`` renders its templates in place, once, so
the original would send the first alert's text for every later one. A notifier that fails is
logged, never fails the rollout: the alert is not the decision.

The same moments are also Kubernetes Events on the Service (``RolledBack``,
``AnalysisFailed``, ``Promoted``, ...), written with the state change.
"""

from __future__ import annotations

import copy
import json
import logging
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

    from knative_rollout.hooks import KnativeServingHook

log = logging.getLogger(__name__)

ROLLED_BACK = "rolled_back"
ANALYSIS_FAILED = "analysis_failed"
APPROVAL_REQUESTED = "approval_requested"
PROMOTED = "promoted"
EVENTS = (ROLLED_BACK, ANALYSIS_FAILED, APPROVAL_REQUESTED, PROMOTED)
CONTEXT_KEY = "knative_rollout"


def notify_all(
    notifiers: Sequence[Callable[[Any], Any]], context: Context, payload: Mapping[str, Any]
) -> list[str]:
    """Call every notifier with ``context`` plus ``knative_rollout=payload``; return the errors (logged).

    :param notifiers: ``BaseNotifier`` instances (or any callable taking a context).
    :param context: the task's context.
    :param payload: what happened (``event`` is one of :data:`EVENTS`).
    """
    if payload.get("event") not in EVENTS:
        raise ValueError(f"unknown rollout event {payload.get('event')!r}; one of {', '.join(EVENTS)}")
    errors: list[str] = []
    for notifier in notifiers:
        send = copy.copy(notifier) if isinstance(notifier, BaseNotifier) else notifier
        try:
            # A context of its own too: BaseNotifier adds its template fields to the one it is given.
            send({**context, CONTEXT_KEY: dict(payload)})
        except Exception as error:  # an alert that cannot be sent must not change the rollout's outcome
            message = f"{type(notifier).__name__} failed on {payload.get('event')}: {error}"
            log.warning("Notifier %s", message)
            errors.append(message)
    return errors


def rollout_alert(
    notifiers: Sequence[Callable[[Any], Any]],
    context: Context,
    hook: KnativeServingHook,
    *,
    event: str,
    service: str,
    namespace: str,
    rollout_id: str | None,
    revision: str,
    reason: str,
    analysis: Mapping[str, Any] | None = None,
) -> list[str]:
    """Tell the notifiers what a rollout decided; a failed analysis is also a Kubernetes Event.

    The one payload of both forms of the progressive rollout (the single task and the task group), with
    the stable revision as the Service records it now. State changes write their own Events.

    :param notifiers: see :func:`notify_all`; none: only the Event is written.
    :param context: the task's context.
    :param hook: reads the Service and writes the Event.
    :param event: one of :data:`EVENTS`.
    :return: the notifiers' errors (logged).
    """
    from knative_rollout.resources import state_from_annotations

    if event != ANALYSIS_FAILED and not notifiers:
        return []
    found = hook.find_service(service, namespace)
    if event == ANALYSIS_FAILED and found is not None:
        hook.record_event(found, "AnalysisFailed", f"{revision}: {reason}"[:1000], warning=True)
    if not notifiers:
        return []
    state = state_from_annotations((found or {}).get("metadata", {}).get("annotations"))
    payload = {
        "event": event,
        "service": service,
        "namespace": namespace,
        "rollout_id": rollout_id,
        "revision": revision,
        "stable_revision": state.stable,
        "reason": reason,
        "analysis": dict(analysis or {}),
    }
    return notify_all(notifiers, context, payload)


class KnativeRolloutWebhookNotifier(BaseNotifier):
    """Post a rollout's alert as JSON to a URL.

    The body is the ``knative_rollout`` payload plus ``dag_id``, ``run_id`` and ``task_id``. Used as a
    plain Airflow callback (``on_failure_callback``), where there is no rollout payload, it posts the
    task's ids with ``event`` ``task_failed``/``task_callback``.

    :param url: where to post. (templated)
    :param headers: more request headers (a token). (templated)
    :param events: only these events (default all of :data:`EVENTS`).
    :param timeout: seconds for the request.
    """

    template_fields = ("url", "headers")

    def __init__(
        self,
        *,
        url: str,
        headers: Mapping[str, str] | None = None,
        events: Sequence[str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        unknown = sorted(set(events or ()) - set(EVENTS))
        if unknown:
            raise ValueError(f"events {unknown} are not rollout events; choose from {', '.join(EVENTS)}")
        self.url = url
        self.headers = dict(headers or {})
        self.events = tuple(events) if events is not None else EVENTS
        self.timeout = timeout

    def notify(self, context: Context) -> None:
        """Post the payload, unless its event is filtered out."""
        payload = dict(context.get(CONTEXT_KEY) or {})  # type: ignore[call-overload]
        if payload and payload.get("event") not in self.events:
            return
        if not payload:
            payload = {"event": "task_failed" if context.get("exception") else "task_callback"}
        ti = context.get("ti")
        payload.update(
            dag_id=getattr(ti, "dag_id", None),
            run_id=getattr(ti, "run_id", None),
            task_id=getattr(ti, "task_id", None),
        )
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload, default=str).encode(),
            method="POST",
            headers={"Content-Type": "application/json", **self.headers},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()


ALERT_SUBJECT = (
    "knative-rollout {{ knative_rollout.event }}: "
    "{{ knative_rollout.namespace }}/{{ knative_rollout.service }}"
)
ALERT_TEXT = (
    "Knative Service {{ knative_rollout.namespace }}/{{ knative_rollout.service }}: "
    "{{ knative_rollout.event }} (candidate {{ knative_rollout.revision }}, stable "
    "{{ knative_rollout.stable_revision }}): {{ knative_rollout.reason }}"
)
"""The subject and text of the alerts :func:`notifiers_from_config` builds (Jinja, rendered per alert)."""
ALERT_CONFIG_KEYS = ("slack_webhook_conn_id", "email_to", "email_from", "smtp_conn_id", "webhook_url")


def notifiers_from_config(config: Mapping[str, Any] | None) -> list[BaseNotifier]:
    """Return the notifiers a mapping configures, e.g. the JSON Variable ``knative_rollout_alerts``.

    So a DAG offers alerts in one line and whoever runs it turns them on or off without editing it;
    an empty or missing mapping means no alerts. The Slack and SMTP notifiers are the providers' own
    (``apache-airflow-providers-slack``, ``-smtp``), with :data:`ALERT_SUBJECT` / :data:`ALERT_TEXT`.

    :param config: ``slack_webhook_conn_id`` (a ``slackwebhook`` connection), ``email_to`` (an address or
        a list; with ``smtp_conn_id``, default ``smtp_default``, and ``email_from``, default the
        connection's ``from_email``), ``webhook_url`` (:class:`KnativeRolloutWebhookNotifier`).
    :raises ValueError: on an unknown key or a value of the wrong type, naming it.
    """
    config = dict(config or {})
    unknown = sorted(set(config) - set(ALERT_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"alert config: unknown keys {unknown}; use {', '.join(ALERT_CONFIG_KEYS)}")
    for key, value in config.items():
        valid = isinstance(value, str) and bool(value.strip())
        if key == "email_to" and isinstance(value, list):
            valid = bool(value) and all(isinstance(item, str) and item.strip() for item in value)
        if not valid:
            kind = "string (email_to: or a list of them)" if key == "email_to" else "string"
            raise ValueError(f"alert config: {key} must be a non-empty {kind}, got {value!r}")
    if ("email_from" in config or "smtp_conn_id" in config) and "email_to" not in config:
        raise ValueError("alert config: email_from/smtp_conn_id without email_to; say who gets the email")
    notifiers: list[BaseNotifier] = []
    if "slack_webhook_conn_id" in config:
        try:
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
        except ImportError:
            raise ValueError(
                "alert config: slack_webhook_conn_id needs the Slack provider; pip install "
                "apache-airflow-providers-slack"
            ) from None
        notifiers.append(
            SlackWebhookNotifier(slack_webhook_conn_id=config["slack_webhook_conn_id"], text=ALERT_TEXT)
        )
    if "email_to" in config:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(
            SmtpNotifier(
                to=config["email_to"],
                from_email=config.get("email_from"),
                smtp_conn_id=config.get("smtp_conn_id", "smtp_default"),
                subject=ALERT_SUBJECT,
                html_content=ALERT_TEXT,
            )
        )
    if "webhook_url" in config:
        notifiers.append(KnativeRolloutWebhookNotifier(url=config["webhook_url"]))
    return notifiers


class KnativeRolloutVariableNotifier(BaseNotifier):
    """Send each alert wherever a JSON Variable says (see :func:`notifiers_from_config`); nowhere without it.

    The Variable is read when an alert goes out, not when the DAG is parsed: parsing reads no Variable
    and stays fast, and a changed Variable applies to the next alert. Call :meth:`notifiers` early in a
    run (a settings task) to refuse a bad Variable before anything is deployed.

    :param variable: the Variable's key.
    """

    def __init__(self, *, variable: str = "knative_rollout_alerts") -> None:
        super().__init__()
        self.variable = variable

    def notifiers(self) -> list[BaseNotifier]:
        """Return the notifiers the Variable configures now (none when it is unset).

        :raises ValueError: naming the Variable, when it is not a JSON object of alert settings.
        """
        from airflow.sdk import Variable

        config = Variable.get(self.variable, default=None, deserialize_json=True)
        try:
            if config is not None and not isinstance(config, dict):
                raise ValueError(f"expected a JSON object, got {config!r}")
            return notifiers_from_config(config)
        except ValueError as error:
            raise ValueError(f"Variable {self.variable}: {error}") from None

    def notify(self, context: Context) -> None:
        """Pass the alert on to the notifiers the Variable configures."""
        payload: Any = context.get(CONTEXT_KEY)
        if payload:
            notify_all(self.notifiers(), context, payload)
