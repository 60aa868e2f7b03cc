"""The progressive rollout as one task: lock, deploy, then shift -> analyse -> decide until it ends.

One deferrable task does what ``progressive_rollout`` spells out as tasks, with metric analysis at every
step: it takes the Service's rollout lock (as :class:`~knative_rollout.operators.KnativeLockOperator`,
including the takeover of an abandoned rollout), deploys the candidate (as
:class:`~knative_rollout.operators.KnativeDeployRevisionOperator`, whose decisions it inherits: nothing
to roll out, no going backwards, failed revisions), gives it the first step's traffic, and then loops:
wait one analysis window in the triggerer (no worker slot), judge the candidate against the stable
revision, and let :meth:`knative_rollout.policy.RolloutPlan.next_action` say what follows: shift to the
next step, measure again (inconclusive, up to ``max_inconclusive`` times), promote, or roll back. Every
traffic change is computed by the same code the step operators use (their ``compute``), written with
the same one optimistic-concurrency write, and waited for with the same trigger; so the task and the
task group write the same states and history.

The task resumes from the Service, not from memory: a retry reads the rollout record, finds its own
candidate at its step and carries on measuring there (a promotion or rollback it already made is not
redone). The resumed methods get only the trigger's event, so what the loop needs (revision, step,
inconclusive count, the steps' verdicts) travels in the triggers' ``carry``.

With ``baseline=True`` every compared step judges the candidate against a fresh copy of the stable
instead of the warm stable itself (how it is made, weighted and removed, and why that way, is in
:mod:`knative_rollout.resources.baselines`). Before the first analysis the task sets the template to it,
waits until it is Ready, sets the template back to the candidate and gives it the canary's weight;
every shift keeps it beside the canary. It is in the rollout record, so a resumed task finds it and
routes it again rather than making another. When the rollout ends it leaves the traffic with the
promotion or the rollback (or by a shift before a stop for approval), and only then is it deleted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from knative_rollout.diagnostics import log_candidate_diagnostics
from knative_rollout.exceptions import (
    KnativeAnalysisFailedError,
    KnativeInputError,
    KnativeRolloutConflictError,
    KnativeRolloutError,
    permanent_input_errors,
)
from knative_rollout.notifiers import (
    ANALYSIS_FAILED,
    APPROVAL_REQUESTED,
    PROMOTED,
    ROLLED_BACK,
    rollout_alert,
)
from knative_rollout.operators.analysis import AnalysisStep
from knative_rollout.operators.baseline import BaselineSteps
from knative_rollout.operators.lock import KnativeLockOperator
from knative_rollout.operators.rollout import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
)
from knative_rollout.policy import (
    NOTHING_TO_CHECK,
    ActionKind,
    RolloutPhase,
    RolloutPlan,
    StepCheck,
    Verdict,
)
from knative_rollout.resources import (
    BASELINE_TAG,
    canary_split,
    parse_bool,
    parse_int,
    render_template,
    state_from_annotations,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from knative_rollout.locks import LockResult

ROLLOUT_XCOM_KEY = "rollout"
"""Where the task leaves the rollout's summary (also when it rolled back)."""


class KnativeCanaryRolloutOperator(
    KnativeDeployRevisionOperator, KnativeLockOperator, AnalysisStep, BaselineSteps
):
    """Roll a new revision out in one deferrable task, judged on live metrics at every traffic step.

    Takes :class:`~knative_rollout.operators.KnativeDeployRevisionOperator`'s parameters for the
    candidate (``image``, ``env``, ``resources``, ``annotations``, ``autoscaling``, ``tag``,
    ``allow_older``, ``attempt``...), the lock's (``on_conflict``, ``lock_timeout``, ``lock_duration``)
    and the connection's. The Service must already have a stable revision.

    :param steps: the candidate's traffic percents, strictly increasing; 100 is added when missing.
        At 100% the stable serves nothing to compare with: that step checks the ``slo`` only (without
        an ``slo`` it is promoted on the earlier steps' analyses). A list is checked when the DAG is
        parsed; a template or an XComArg (e.g. steps a form chose) when the task runs, as a list or
        text such as ``"10,50,100"``. (templated)
    :param analysis: what each step measures and how it is judged (see
        :mod:`knative_rollout.analysis.config`). (templated)
    :param max_inconclusive: inconclusive analyses in a row measured again before rolling back. (templated)
    :param baseline: judge the candidate against a fresh revision of the stable's spec, tagged
        ``baseline`` and given the canary's weight (at most what the stable has left), instead of against
        the warm stable; deleted when the rollout ends. Needs ``compare`` on in ``analysis``. (templated)
    :param bake: seconds to keep checking the ``slo`` after the promotion, in analysis windows; a
        failure undoes the promotion (back to the previous stable). 0: no bake. (templated)
    :param notifiers: ``BaseNotifier`` instances called on rollback, failed analysis and promotion
        (see :mod:`knative_rollout.notifiers`).
    :param promote: False: stop once the last step below 100% passed, keeping the candidate there and
        the lock held, with ``awaiting_promotion`` in the result, for an approval task and a
        :class:`~knative_rollout.operators.KnativePromoteOperator` of the same rollout to follow (see
        :func:`knative_rollout.approval.canary_rollout_with_approval`); notifiers get ``approval_requested``.
    :param skip_if_unchanged: when there is nothing to roll out, skip (so the tasks after it skip too)
        instead of succeeding with ``unchanged``.
    :param rollout_id: the rollout's identity; default ``dag_id/run_id/task_id``. (templated)
    :return: ``{"revision", "stable_revision", "previous_stable_revision", "promoted", "unchanged",
        "steps": [{"percent", "verdict", "reason", "score", "baseline"}], "url"}`` (a step's ``baseline``
        is the revision it was judged against); a rollback fails the task
        (after traffic is back on the stable), so a rejected candidate is a failed run.
    """

    template_fields = (
        *KnativeDeployRevisionOperator.template_fields,
        "steps",
        "on_conflict",
        "lock_timeout",
        "analysis",
        "max_inconclusive",
        "baseline",
        "bake",
    )
    template_fields_renderers = {
        **KnativeDeployRevisionOperator.template_fields_renderers,
        "analysis": "json",
    }
    ui_color = "#d5f5d5"

    def __init__(
        self,
        *,
        steps: Sequence[int] | str = (10, 25, 50, 100),
        analysis: Mapping[str, Any],
        max_inconclusive: int | str = 1,
        baseline: bool | str = False,
        bake: float | str = 0,
        notifiers: Sequence[Callable[[Any], Any]] = (),
        promote: bool = True,
        rollout_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        for fixed in ("traffic_percent", "create_service", "only_if_missing"):
            if fixed in kwargs:
                raise ValueError(
                    f"{type(self).__name__} sets {fixed} itself (the candidate starts at the first step); "
                    "remove it"
                )
        # A fixed plan is checked when the DAG is parsed: a bad plan is an import error, not a half-done
        # rollout. Templated steps (text, an XComArg) can only be checked in execute, before any write.
        if isinstance(steps, Sequence) and not isinstance(steps, str):
            RolloutPlan.of(steps)
        super().__init__(analysis=analysis, rollout_id=rollout_id, create_service=False, **kwargs)
        self.steps = steps
        self.max_inconclusive = max_inconclusive
        self.baseline = baseline
        self.bake = bake
        self.notifiers = tuple(notifiers)
        self.promote = promote
        if rollout_id is None:
            from knative_rollout.task_groups import default_rollout_id

            self.rollout_id = default_rollout_id(self.task_id)

    # The start: input, lock, deploy.

    def execute(self, context: Context) -> Any:
        """Check the input, take the rollout lock (waiting for it if asked), then deploy the candidate."""
        self.check_lock_input()
        config = self.analysis_config()
        with permanent_input_errors():
            self.max_inconclusive = parse_int(self.max_inconclusive, "max_inconclusive", minimum=0)
        self.plan()
        if self._baseline_on():
            if not config.compare:
                raise KnativeInputError(
                    "baseline=True needs compare on in analysis: the baseline is what the candidate is "
                    "compared with. Remove baseline, or compare"
                )
            if self.tag == BASELINE_TAG:
                raise KnativeInputError(
                    f"tag {BASELINE_TAG!r} is the baseline revision's; give the candidate another tag "
                    "(default 'candidate')"
                )
        self.bake = self._bake_seconds()
        if self.bake and config.slo is None:
            raise KnativeInputError(
                "bake needs an slo in analysis: after the promotion there is no stable serving traffic to "
                "compare with, so the bake checks the slo"
            )
        self.validate_target()
        if not self.rollout_id:
            raise KnativeInputError(
                f"{type(self).__name__} needs a rollout_id (default dag_id/run_id/task_id)"
            )
        return self._take(context)

    def _bake_seconds(self) -> float:
        from knative_rollout.analysis import parse_seconds

        if self.bake in (0, "0", "", None):
            return 0.0
        try:
            return parse_seconds(self.bake, "bake")
        except ValueError as error:
            raise KnativeInputError(str(error)) from None

    def _baseline_on(self) -> bool:
        # Parsed wherever it is read: a resumed task has only the rendered text.
        with permanent_input_errors():
            return parse_bool(self.baseline, "baseline")

    def plan(self) -> RolloutPlan:
        """Return the rollout plan (steps and how many inconclusive analyses are measured again)."""
        with permanent_input_errors():
            retries = parse_int(self.max_inconclusive, "max_inconclusive", minimum=0)
        steps: Sequence[object] = self.steps
        if isinstance(steps, str):  # a template rendered as text: "10,50,100" or "[10, 50, 100]"
            steps = [part for part in steps.strip().strip("[]()").split(",") if part.strip()]
        try:
            return RolloutPlan.of([parse_int(step, "steps") for step in steps], max_inconclusive=retries)
        except (TypeError, ValueError) as error:
            raise KnativeInputError(f"steps {self.steps!r}: {error}") from None

    def _taken(self, context: Context, result: LockResult) -> Any:
        """With the lock held (an abandoned rollout rolled back first), resume or deploy."""
        super()._taken(context, result)
        service = self.hook.find_service(self.service_name, self.namespace)
        state = state_from_annotations((service or {}).get("metadata", {}).get("annotations"))
        self.traffic_percent = self.plan().steps[0]
        if service is not None and state.rollout_id == self.rollout_id:
            if state.phase is RolloutPhase.PROMOTED and state.stable == state.rollout_revision:
                self.log.info("This rollout promoted %s already (a retry): nothing left to do", state.stable)
                return self._finish(context, str(state.stable), [], (service.get("status") or {}).get("url"))
            if state.phase is RolloutPhase.ROLLED_BACK:
                self.drop_baseline(context)
                self.lock.release(str(self.rollout_id))
                raise KnativeAnalysisFailedError(
                    f"this rollout ({self.rollout_id}) rolled {state.rollout_revision} back already; "
                    f"{state.stable} serves 100%. Run the DAG again for a new rollout"
                )
            if state.is_active() and state.candidate and state.step > 0:
                # A retry: carry on at the step the Service records, not back at the first one.
                self.log.info("Resuming the rollout of %s at %s%%", state.candidate, state.step)
                self.traffic_percent = state.step
        try:
            deployed = KnativeDeployRevisionOperator.execute(self, context)
        except AirflowSkipException:
            self.lock.release(str(self.rollout_id))  # nothing to roll out (skip_if_unchanged)
            raise
        except KnativeRolloutError:
            self._release_if_untouched()
            raise
        if isinstance(deployed, Mapping) and deployed.get("unchanged"):
            self.lock.release(str(self.rollout_id))
            summary = {**deployed, "promoted": False, "steps": []}
            context["ti"].xcom_push(key=ROLLOUT_XCOM_KEY, value=summary)
            return summary
        return deployed

    def _release_if_untouched(self) -> None:
        """After the deploy was refused for good: free the lock unless the Service has this rollout to undo.

        A refused write (RBAC, a guardrail, an older image) changed nothing; holding the Lease until it
        expires would only make the next rollout of the Service wait for it.
        """
        try:
            service = self.hook.find_service(self.service_name, self.namespace)
        except Exception:  # the deploy's error is what the task must report
            self.log.warning(
                "Could not read %s after the failure; its lock expires by itself", self.service_path
            )
            return
        state = state_from_annotations((service or {}).get("metadata", {}).get("annotations"))
        if not (state.rollout_id == self.rollout_id and state.is_active()):
            self.lock.release(str(self.rollout_id))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the candidate is Ready, give it its first step.

        A deploy that waited in the triggerer resumes in a new task instance, which knows only the event
        (``traffic_percent`` would be back at 0): the step is read again, the recorded one when this
        rollout is resuming, else the plan's first.
        """
        state = self.recorded_state()
        resuming = state.rollout_id == self.rollout_id and state.is_active() and state.step > 0
        self.traffic_percent = state.step if resuming else self.plan().steps[0]
        return super().execute_complete(context, event)

    def traffic_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the candidate serves its first step, start the first analysis."""
        revision = str(event.get("revision"))
        self.check_event(event, f"waiting for service {self.service_name} to route to {revision}")
        self.push_urls(context, event.get("url"))
        state = self.recorded_state()
        self.check_owner(state)
        if state.candidate != revision:
            raise KnativeRolloutConflictError(
                f"the candidate of Knative Service {self.service_path} is {state.candidate}, not {revision} "
                "(the revision this rollout deployed); see the Service's rollout history"
            )
        return self._analyse(context, revision, state.step, 0, [])

    # The loop: analyse, decide, shift.

    def _analyse(
        self, context: Context, revision: str, percent: int, inconclusive: int, steps: list[dict[str, Any]]
    ) -> Any:
        config = self.analysis_config()
        state = self.recorded_state()
        self.check_owner(state)
        self.hold_lock()
        check = RolloutPlan.check_at(percent, compare=config.compare, has_slo=config.slo is not None)
        if check is StepCheck.NONE:
            return self._decide(
                context, revision, percent, inconclusive, steps, Verdict.PASS, NOTHING_TO_CHECK, {}
            )
        overrides = {"compare": False} if check is StepCheck.SLO and config.compare else {}
        against = state.stable
        if check is StepCheck.COMPARE and self._baseline_on():
            if not self.baseline_served(state, percent):
                return self.deploy_baseline(context, state, revision, percent, "baseline_ready", steps=steps)
            against = state.baseline
        carry = {"revision": revision, "percent": percent, "inconclusive": inconclusive, "steps": steps}
        trigger = self.analysis_trigger(
            config, canary=revision, baseline=against, carry=carry, overrides=overrides
        )
        self.log.info(
            "Analysing %s at %s%% against %s",
            revision,
            percent,
            "the slo" if check is StepCheck.SLO else against,
        )
        return self.wait_for_analysis(context, trigger, "analysis_complete")

    def analysis_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Judge the window's event and do what the plan says next."""
        revision = str(event.get("revision"))
        percent = int(event.get("percent", 0))
        steps = list(event.get("steps") or [])
        try:
            verdict, reason, report = self.analysis_outcome(context, event)
        except KnativeInputError as error:
            # It can never work: leave the Service on its stable revision, then fail.
            return self._rollback(context, revision, f"analysis cannot run: {error}", steps)
        return self._decide(
            context, revision, percent, int(event.get("inconclusive", 0)), steps, verdict, reason, report
        )

    def _decide(
        self,
        context: Context,
        revision: str,
        percent: int,
        inconclusive: int,
        steps: list[dict[str, Any]],
        verdict: Verdict,
        reason: str,
        report: Mapping[str, Any],
    ) -> Any:
        score = (report.get("judgement") or {}).get("score")
        step = {"percent": percent, "verdict": verdict.value, "reason": reason[:400], "score": score}
        steps = [*steps, {**step, "baseline": report.get("baseline")}]
        if verdict is Verdict.FAIL:
            self._alert(context, ANALYSIS_FAILED, revision, reason, report)
        action = self.plan().next_action(percent, verdict, inconclusive)
        self.log.info("At %s%%: %s -> %s (%s)", percent, verdict.value, action.kind.value, action.reason)
        promotes = action.kind is ActionKind.PROMOTE or (
            action.kind is ActionKind.SHIFT and action.percent == 100
        )
        if promotes and not self.promote:
            return self._await_approval(context, revision, percent, steps, report)
        if action.kind is ActionKind.SHIFT:
            return self._shift(context, revision, action.percent, steps)
        if action.kind is ActionKind.RETRY_GATE:
            return self._analyse(context, revision, percent, inconclusive + 1, steps)
        if action.kind is ActionKind.PROMOTE:
            return self.change_traffic(
                context,
                self.step_operator(KnativePromoteOperator, revision=revision),
                "promote_complete",
                revision=revision,
                steps=steps,
            )
        return self._rollback(context, revision, f"{action.reason}: {reason}", steps)

    def _await_approval(
        self,
        context: Context,
        revision: str,
        percent: int,
        steps: list[dict[str, Any]],
        report: Mapping[str, Any],
    ) -> Any:
        """End here with the candidate at its last step and the lock held: a person decides the promotion.

        A baseline first leaves the traffic (its share back to the stable) and is deleted: it judged the
        steps, and the approval only needs their reports.
        """
        self.hold_lock()
        if self.in_traffic(self.recorded_state().baseline):
            step = self.step_operator(
                KnativeSetTrafficOperator, revision=revision, traffic=canary_split(percent, None)
            )
            carry = {"revision": revision, "percent": percent, "steps": steps, "report": dict(report)}
            return self.change_traffic(context, step, "approval_ready", **carry)
        self.drop_baseline(context)
        state = self.recorded_state()
        summary = {
            "revision": revision,
            "stable_revision": state.stable,
            "percent": percent,
            "promoted": False,
            "unchanged": False,
            "awaiting_promotion": True,
            "steps": steps,
            "analysis": dict(report),
        }
        context["ti"].xcom_push(key=ROLLOUT_XCOM_KEY, value=summary)
        reason = f"{revision} passed every analysis up to {percent}%; promote it?"
        self._alert(context, APPROVAL_REQUESTED, revision, reason, report)
        return summary

    def approval_ready(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the baseline serves nothing, delete it and stop for the approval."""
        self.check_event(event, f"waiting for service {self.service_name} to serve without the baseline")
        revision, percent, steps = str(event["revision"]), int(event["percent"]), list(event["steps"])
        return self._await_approval(context, revision, percent, steps, dict(event["report"]))

    def _shift(self, context: Context, revision: str, percent: int, steps: list[dict[str, Any]]) -> Any:
        baseline = self.recorded_state().baseline if self._baseline_on() else None
        traffic = canary_split(percent, baseline)
        step = self.step_operator(KnativeSetTrafficOperator, revision=revision, traffic=traffic)
        return self.change_traffic(
            context, step, "shift_complete", revision=revision, percent=percent, steps=steps
        )

    def shift_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the new split is served, analyse it."""
        self.check_event(event, f"waiting for service {self.service_name} to serve the new traffic")
        return self._analyse(context, str(event["revision"]), int(event["percent"]), 0, list(event["steps"]))

    # The baseline: deployed before the first compared step, routed with every shift, deleted at the end.

    def baseline_ready(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the baseline is Ready, set the template back to the candidate and route the baseline."""
        revision, percent, steps = str(event["revision"]), int(event["percent"]), list(event["steps"])
        failure = self.baseline_started(
            context, event, render_template(self.service_name, self.revision_spec())
        )
        if failure is not None:
            return self._rollback(context, revision, failure, steps)
        return self._shift(context, revision, percent, steps)

    # The end: promote (and bake) or roll back.

    def promote_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the promotion is served, bake it or finish."""
        self.check_event(event, f"waiting for service {self.service_name} to serve the promoted revision")
        self.drop_baseline(context)
        revision, steps = str(event["revision"]), list(event["steps"])
        bake = self._bake_seconds()
        baking = f"; baking for {bake:g}s" if bake else ""
        self._alert(context, PROMOTED, revision, f"{revision} promoted to stable at 100%{baking}", {})
        if bake:
            windows = max(1, math.ceil(bake / self.analysis_config().window))
            return self._bake(context, revision, steps, windows, 0)
        return self._finish(context, revision, steps, event.get("url"))

    def _bake(
        self, context: Context, revision: str, steps: list[dict[str, Any]], left: int, inconclusive: int
    ) -> Any:
        self.hold_lock()
        carry = {"revision": revision, "steps": steps, "left": left, "inconclusive": inconclusive}
        trigger = self.analysis_trigger(
            self.analysis_config(), canary=revision, baseline=None, carry=carry, overrides={"compare": False}
        )
        self.log.info("Baking %s: %s analysis window(s) left", revision, left)
        return self.wait_for_analysis(context, trigger, "bake_complete")

    def bake_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Keep baking, finish, or undo the promotion when the promoted revision breaks the slo."""
        revision, steps = str(event["revision"]), list(event["steps"])
        left, inconclusive = int(event["left"]), int(event["inconclusive"])
        try:
            verdict, reason, report = self.analysis_outcome(context, event)
        except KnativeInputError as error:
            return self._rollback(context, revision, f"bake analysis cannot run: {error}", steps, undo=True)
        steps = [*steps, {"percent": 100, "verdict": verdict.value, "reason": reason[:400], "bake": True}]
        if verdict is Verdict.PASS:
            if left <= 1:
                return self._finish(context, revision, steps, None)
            return self._bake(context, revision, steps, left - 1, 0)
        if verdict is Verdict.INCONCLUSIVE and inconclusive < self.plan().max_inconclusive:
            return self._bake(context, revision, steps, left, inconclusive + 1)
        if verdict is Verdict.FAIL:
            self._alert(context, ANALYSIS_FAILED, revision, reason, report)
        return self._rollback(
            context, revision, f"bake {verdict.value} after the promotion: {reason}", steps, undo=True
        )

    def _finish(
        self, context: Context, revision: str, steps: list[dict[str, Any]], url: str | None
    ) -> dict[str, Any]:
        self.drop_baseline(context)
        state = self.recorded_state()
        self.lock.release(str(self.rollout_id))
        summary = {
            "revision": revision,
            "stable_revision": state.stable,
            "previous_stable_revision": state.previous_stable,
            "promoted": True,
            "unchanged": False,
            "steps": steps,
            "url": url,
        }
        context["ti"].xcom_push(key=ROLLOUT_XCOM_KEY, value=summary)
        return summary

    def _rollback(
        self, context: Context, revision: str, reason: str, steps: list[dict[str, Any]], undo: bool = False
    ) -> Any:
        step = self.step_operator(KnativeRollbackOperator, undo_promotion=undo)
        return self.change_traffic(
            context, step, "rollback_complete", revision=revision, reason=reason, steps=steps, undo=undo
        )

    def rollback_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the stable serves everything again, release the lock, alert, and fail the task."""
        self.check_event(event, f"waiting for service {self.service_name} to serve the rollback")
        revision, reason = str(event["revision"]), str(event["reason"])
        self.drop_baseline(context)
        state = self.recorded_state()
        self.lock.release(str(self.rollout_id))
        summary = {
            "revision": revision,
            "stable_revision": state.stable,
            "previous_stable_revision": state.previous_stable,
            "promoted": False,
            "unchanged": False,
            "rolled_back": True,
            "undo_promotion": bool(event.get("undo")),
            "reason": reason,
            "steps": list(event.get("steps") or []),
            "url": event.get("url"),
        }
        context["ti"].xcom_push(key=ROLLOUT_XCOM_KEY, value=summary)
        self._alert(context, ROLLED_BACK, revision, reason, {})
        rollout_id = str(self.rollout_id)
        log_candidate_diagnostics(self.hook, self.service_name, self.namespace, rollout_id, self.log)
        raise KnativeAnalysisFailedError(
            f"rollout of {revision} to Knative Service {self.service_path} was rolled back: {reason}; "
            f"{state.stable} serves 100%"
        )

    def _alert(
        self, context: Context, kind: str, revision: str, reason: str, report: Mapping[str, Any]
    ) -> None:
        """Tell the notifiers, as the task group does (a failed analysis is also an Event)."""
        rollout_alert(
            self.notifiers,
            context,
            self.hook,
            event=kind,
            service=self.service_name,
            namespace=self.namespace,
            rollout_id=self.rollout_id,
            revision=revision,
            reason=reason,
            analysis=report,
        )
