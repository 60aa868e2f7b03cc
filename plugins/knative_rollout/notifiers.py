"""Alerts on what a rollout decided: rollback, failed analysis, approval requested, promotion.

A rollout operator given ``notifiers=[...]`` calls each of them at these moments with the task's context
plus ``knative_rollout``: ``{"event", "service", "namespace", "revision", "stable_revision", "reason",
"analysis", "url"}``, where ``event`` is one of :data:`EVENTS`. Any ``airflow.sdk.BaseNotifier`` works,
so the Slack webhook and SMTP providers' notifiers can render ``{{ knative_rollout.reason }}`` in their
messages; :class:`KnativeRolloutWebhookNotifier` posts the payload as JSON to a URL (a chat webhook
relay, an incident tool). A notifier that fails is logged, never fails the rollout: the alert is not
the decision. The same moments are also Kubernetes Events on the Service (``RolledBack``,
``AnalysisFailed``, ``Promoted``, ...), written with the state change.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

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
    rollout_context: Any = {**context, CONTEXT_KEY: dict(payload)}
    errors: list[str] = []
    for notifier in notifiers:
        try:
            notifier(rollout_context)
        except Exception as error:  # an alert that cannot be sent must not change the rollout's outcome
            message = f"{type(notifier).__name__} failed on {payload.get('event')}: {error}"
            log.warning("Notifier %s", message)
            errors.append(message)
    return errors


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
