"""A canary rollout that asks a person before it promotes: the single-task rollout plus Airflow's approval.

:func:`canary_rollout_with_approval` returns a TaskGroup:

* ``canary``: :class:`~knative_rollout.operators.KnativeCanaryRolloutOperator` with ``promote=False``:
  lock, deploy, every step below 100% judged on live metrics; it rolls back on its own when an analysis
  fails, and otherwise ends with the candidate at its last step and the lock held.
* ``approve``: Airflow 3.3's ``ApprovalOperator`` (human in the loop). It waits in the
  ``awaiting_input`` state, holding neither a worker slot nor a triggerer; its body shows the analyses
  (traffic, verdict, score, reason per step) and the last report. Answer it in the UI's Required Actions
  or through the REST API (``PATCH .../taskInstances/approve/hitlDetails`` with
  ``{"chosen_options": ["Approve"]}``). A ``response_timeout`` rejects (the default answer is Reject).
* ``promote``: :class:`~knative_rollout.operators.KnativePromoteOperator` of the same rollout and revision;
  a rejection skips it.
* ``rollback``: runs whatever happened (``all_done``) and undoes what this rollout left, which after a
  promotion is nothing (it never undoes a promotion); so a rejection or a timeout puts all traffic back on
  the stable revision, and tells the notifiers ``rolled_back``.
* ``outcome``: the group's only leaf, as in ``progressive_rollout``: it releases the lock and fails the
  run unless the candidate was promoted or there was nothing to roll out.

The lock is not renewed while a person thinks, so ``lock_duration`` defaults to the response timeout
plus ten minutes: a rollout nobody answers is taken over (and rolled back) by the next one only after
that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, chain

from knative_rollout.notifiers import ROLLED_BACK, rollout_alert
from knative_rollout.operators import (
    KnativeCanaryRolloutOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
)
from knative_rollout.operators.base import CONNECTION_FIELDS

if TYPE_CHECKING:
    from airflow.sdk import Context

APPROVAL_BODY = """\
Candidate **{{ r.revision }}** of Knative Service `{{ params_service }}` passed every analysis and serves \
{{ r.percent }}% of the traffic next to the stable **{{ r.stable_revision }}**. Approve to promote it to \
100%; reject to send all traffic back to the stable.

| traffic | verdict | score | reason |
|---|---|---|---|
{% for s in r.steps %}| {{ s.percent }}% | {{ s.verdict }} | {{ s.score if s.score is not none else '-' }} | \
{{ s.reason }} |
{% endfor %}
Last analysis: `{{ r.analysis.totals | tojson }}`
"""


class _RollbackAlert:
    """The rollback task's success callback: alert ``rolled_back`` when it undid a candidate left waiting.

    That is, when the canary task succeeded (its candidate waited for the approval) and the rollback still
    had something to undo: the approval rejected it (a person, or the timeout, which answers Reject), or
    the promotion failed. A rollback after a failed canary step was alerted by the canary task itself.
    Airflow pushes no XCom for a rejection (its skip path), so only an approval is seen, not who rejected.
    """

    def __init__(self, notifiers: Sequence[Any], *, canary: str, approve: str) -> None:
        self.notifiers = tuple(notifiers)
        self.canary = canary
        self.approve = approve

    def __call__(self, context: Context) -> None:
        ti = context["ti"]
        waited = ti.xcom_pull(task_ids=self.canary)
        if not waited or not (ti.xcom_pull(task_ids=ti.task_id) or {}).get("rolled_back"):
            return
        if ti.xcom_pull(task_ids=self.approve):
            why = "approved, but the promotion did not complete"
        else:
            # Not the timeout's length: a DAG may change it per run (the approval's pre_execute).
            why = "not approved: rejected, or no answer within the response timeout"
        rollback: Any = context["task"]
        rollout_alert(
            self.notifiers,
            context,
            rollback.hook,
            event=ROLLED_BACK,
            service=rollback.service_name,
            namespace=rollback.namespace,
            rollout_id=rollback.rollout_id,
            revision=str(waited.get("revision")),
            reason=f"{why}; all traffic back to the stable revision",
        )


def canary_rollout_with_approval(
    *,
    group_id: str,
    service_name: str,
    namespace: str = "default",
    image: str,
    analysis: Mapping[str, Any],
    steps: Sequence[int] | str = (10, 25, 50),
    response_timeout: timedelta = timedelta(hours=4),
    subject: str | None = None,
    rollout_id: str | None = None,
    lock_duration: int | None = None,
    notifiers: Sequence[Any] = (),
    approval_kwargs: Mapping[str, Any] | None = None,
    **canary_kwargs: Any,
) -> TaskGroup:
    """Return a TaskGroup: the judged canary steps, a person's approval, then promote (or roll back).

    :param group_id: the TaskGroup's id.
    :param service_name: Knative Service. (templated in the tasks)
    :param namespace: its namespace.
    :param image: the candidate's image. (templated)
    :param analysis: each step's analysis (see :mod:`knative_rollout.analysis.config`).
    :param steps: the candidate's traffic percents before the approval (100 comes with the promotion).
        (templated, as the canary's)
    :param response_timeout: how long the approval waits; then it rejects.
    :param subject: the approval's title.
    :param rollout_id: the rollout's identity; default ``dag_id/run_id/group_id``.
    :param lock_duration: seconds the lock lasts unrenewed; default the response timeout plus 10 minutes.
    :param notifiers: notifiers of the canary task (``approval_requested``, ``analysis_failed``,
        ``rolled_back``) and of the rollback after a rejection or a timeout (``rolled_back``); ``promoted``
        is the promote task's to announce, e.g. with ``on_success_callback``.
    :param approval_kwargs: more ``ApprovalOperator`` arguments (``assigned_users``, ``notifiers``...).
    :param canary_kwargs: more :class:`~knative_rollout.operators.KnativeCanaryRolloutOperator` arguments
        (``env``, ``resources``, ``max_inconclusive``, the connection...); the connection goes to every task.
    """
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from knative_rollout.task_groups import KnativeRolloutOutcomeOperator, default_rollout_id

    # Templated steps (an XComArg, text) are the canary's to check when it runs; promote=False stops it
    # before 100% whatever they say.
    if isinstance(steps, Sequence) and not isinstance(steps, str) and any(step >= 100 for step in steps):
        raise ValueError(
            f"steps {list(steps)} include 100: with an approval the candidate reaches 100% only by the "
            "promotion the person approves; end the steps below 100, e.g. (10, 25, 50)"
        )
    the_rollout_id = rollout_id or default_rollout_id(group_id)
    rollout: dict[str, Any] = {
        "service_name": service_name,
        "namespace": namespace,
        "rollout_id": the_rollout_id,
        "lock_duration": lock_duration or int(response_timeout.total_seconds()) + 600,
    }
    connection = {
        key: value
        for key, value in canary_kwargs.items()
        if key in (*CONNECTION_FIELDS, "impersonation_chain")
    }
    with TaskGroup(group_id=group_id) as group:
        canary = KnativeCanaryRolloutOperator(
            task_id="canary",
            **rollout,
            image=image,
            steps=steps,
            analysis=analysis,
            promote=False,
            skip_if_unchanged=True,
            notifiers=notifiers,
            **canary_kwargs,
        )
        result = f"ti.xcom_pull(task_ids='{canary.task_id}', key='rollout')"
        approve = ApprovalOperator(
            task_id="approve",
            subject=subject or f"Promote the candidate of {service_name}?",
            body="{% set r = "
            + result
            + " %}{% set params_service = '"
            + service_name
            + "' %}"
            + APPROVAL_BODY,
            defaults="Reject",
            response_timeout=response_timeout,
            **dict(approval_kwargs or {}),
        )
        promote = KnativePromoteOperator(
            task_id="promote",
            **rollout,
            **connection,
            revision="{{ " + result + "['revision'] }}",
        )
        chain(canary, approve, promote)
        alert = _RollbackAlert(notifiers, canary=canary.task_id, approve=approve.task_id)
        rollback = KnativeRollbackOperator(
            task_id="rollback",
            **rollout,
            **connection,
            trigger_rule=TriggerRule.ALL_DONE,
            on_success_callback=alert if notifiers else None,
        )
        outcome = KnativeRolloutOutcomeOperator(
            task_id="outcome",
            service_name=service_name,
            namespace=namespace,
            rollout_id=the_rollout_id,
            **connection,
            step_task_ids=[canary.task_id, approve.task_id, promote.task_id],
            deploy_task_id=canary.task_id,
            rollback_task_id=rollback.task_id,
        )
        # Not downstream of the approval: a rejection skips the approval's direct downstream tasks.
        [canary, promote] >> rollback >> outcome
    return group
