"""Builders that compose the rollout operators into a progressive rollout, as one TaskGroup.

The group ends in a rollback and an outcome task. Airflow decides a DAG run's state from its leaf tasks
only, so a rollback that worked would, as the last task, end the run green and hide that the candidate
was rejected. The outcome task runs whatever happened before it and fails unless the candidate was
promoted; being the group's only leaf, it also keeps tasks placed after the group from running after a
rollback.

With ``analysis``, every traffic step is followed by an ``analysis_<percent>`` task that judges the
candidate on live metrics and decides what follows with the very functions the single-task rollout
(:class:`~knative_rollout.operators.KnativeCanaryRolloutOperator`) uses: what the step checks
(:meth:`~knative_rollout.policy.RolloutPlan.check_at`) and what its verdict means
(:meth:`~knative_rollout.policy.RolloutPlan.next_action`), so both forms promote or roll back at the same
step. The group's tasks are the plan's steps in a fixed chain, so "shift to the next step" is the next
task running, "measure again" happens inside the analysis task, and "roll back" is that task failing.

With ``baseline=True`` the group judges against a fresh copy of the stable as the single task does, with
the same steps of :class:`~knative_rollout.operators.baseline.BaselineSteps` and the same weights
(:func:`~knative_rollout.resources.canary_split`): ``deploy_baseline`` makes it before the first traffic
step, every ``traffic_<percent>`` gives it the canary's weight, every ``analysis_<percent>`` compares
with it, and the promotion or the rollback takes it out of the traffic; ``outcome`` deletes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, chain
from airflow.sdk.definitions.xcom_arg import XComArg
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.analysis import AnalysisConfig
from knative_rollout.diagnostics import log_candidate_diagnostics
from knative_rollout.exceptions import (
    KnativeAnalysisFailedError,
    permanent_input_errors,
)
from knative_rollout.locks import RolloutLock
from knative_rollout.notifiers import ANALYSIS_FAILED, PROMOTED, ROLLED_BACK, rollout_alert
from knative_rollout.operators import (
    KnativeCanaryAnalysisOperator,
    KnativeDeployRevisionOperator,
    KnativeLockOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
    LoadTestGateOperator,
)
from knative_rollout.operators.base import CONNECTION_FIELDS
from knative_rollout.operators.baseline import (
    BaselineSteps,
    KnativeBaselineTrafficOperator,
    KnativeRolloutBaselineOperator,
)
from knative_rollout.operators.loadtest import XCOM_KEY as LOAD_TEST_XCOM_KEY
from knative_rollout.operators.rollout import DEPLOY_XCOM_KEY
from knative_rollout.policy import NOTHING_TO_CHECK, ActionKind, RolloutPlan, StepCheck, Verdict
from knative_rollout.resources import (
    BASELINE_TAG,
    DEFAULT_LEASE_SECONDS,
    canary_split,
    parse_int,
    state_from_annotations,
)

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from knative_rollout.triggers import KnativeAnalysisTrigger

STEP_XCOM_KEY = "step"
"""Where a step's analysis leaves its decision (also when it rolls back)."""

# The group sets these itself: the gate always loads the candidate's tag URL of the rolled-out Service.
_GATE_FIXED_ARGUMENTS = (
    "task_id",
    "url",
    "service_name",
    "namespace",
    "tag",
    "revision",
    *CONNECTION_FIELDS,
    "impersonation_chain",
)


class KnativeRolloutOutcomeOperator(BaselineSteps):
    """Succeed when the rollout promoted its candidate or found nothing to roll out; otherwise fail.

    It runs whatever the steps did (trigger rule ``all_done``), says which step failed and why (a failed
    load-test gate with the thresholds it violated, from the gate's ``loadtest`` XCom; an analysis that
    rolled the candidate back, from its ``step`` XCom) and whether the rollback put all traffic back on
    the stable revision. It releases the rollout's lock, so the next rollout of the Service can start
    whatever happened here, and then alerts the notifiers: ``promoted``, or ``rolled_back`` (with the
    failure as the reason) when a candidate was deployed and not promoted. Before that it deletes this
    rollout's baseline, if it made one (the promotion or the rollback took it out of the traffic).

    :param service_name: the Knative Service being rolled out. (templated)
    :param namespace: its namespace. (templated)
    :param rollout_id: the rollout whose lock is released. (templated)
    :param step_task_ids: the rollout's steps in order, from the lock to the promote task.
    :param deploy_task_id: the step that deploys the candidate (its ``deploy`` XCom says "unchanged").
    :param rollback_task_id: the task that rolls back when a step failed.
    :param notifiers: ``BaseNotifier`` instances (see :mod:`knative_rollout.notifiers`).
    :return: the promote task's return value, or the deploy's summary when there was nothing to roll out.
    """

    ui_color = "#cce8ff"

    def __init__(
        self,
        *,
        rollout_id: str,
        step_task_ids: Sequence[str],
        deploy_task_id: str,
        rollback_task_id: str,
        notifiers: Sequence[Callable[[Any], Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(rollout_id=rollout_id, trigger_rule=TriggerRule.ALL_DONE, **kwargs)
        if not step_task_ids:
            raise ValueError(
                f"{self.task_id}: step_task_ids is empty; list the rollout's steps, promote last"
            )
        self.rollout_id = rollout_id
        self.step_task_ids = tuple(step_task_ids)
        self.deploy_task_id = deploy_task_id
        self.rollback_task_id = rollback_task_id
        self.notifiers = tuple(notifiers)

    def execute(self, context: Context) -> Any:
        """Delete this rollout's baseline, release the lock, then return the promotion's summary or raise."""
        try:
            service = self.hook.find_service(self.service_name, self.namespace) or {}
            if state_from_annotations(service.get("metadata", {}).get("annotations")).rollout_id == (
                self.rollout_id
            ):
                self.drop_baseline(context)  # nothing to do without one
        finally:
            released = RolloutLock(self.hook, self.service_name, self.namespace).release(str(self.rollout_id))
        self.log.info("Rollout lock of %s/%s released: %s", self.namespace, self.service_name, released)
        ti = context["ti"]
        # In a mapped group (one rollout per Service) read only this rollout's own map index.
        index = _map_index(ti)
        watched = [*self.step_task_ids, self.rollback_task_id]
        by_run = ti.get_task_states(
            dag_id=ti.dag_id, task_ids=watched, run_ids=[ti.run_id], map_index=index if index >= 0 else None
        )
        # The API names a mapped task instance's state "<task_id>_<map_index>".
        suffix = f"_{index}" if index >= 0 else ""
        states = {task_id: by_run.get(ti.run_id, {}).get(task_id + suffix) for task_id in watched}
        promote = self.step_task_ids[-1]
        deployed = ti.xcom_pull(task_ids=self.deploy_task_id, map_indexes=index)
        revision = str(deployed.get("revision")) if isinstance(deployed, Mapping) else ""
        if states.get(promote) == "success":
            self.log.info("Service %s/%s: candidate promoted", self.namespace, self.service_name)
            self._alert(context, PROMOTED, revision, f"{revision} promoted to stable at 100%")
            return ti.xcom_pull(task_ids=promote, map_indexes=index)
        unchanged = ti.xcom_pull(task_ids=self.deploy_task_id, key=DEPLOY_XCOM_KEY, map_indexes=index)
        if states.get(self.deploy_task_id) == "skipped" and isinstance(unchanged, Mapping):
            self.log.info("Service %s/%s: %s", self.namespace, self.service_name, unchanged.get("reason"))
            return unchanged
        failed = [task_id for task_id in self.step_task_ids if states.get(task_id) == "failed"]
        why = "; ".join(self._failure_of(context, task_id) for task_id in failed) or (
            f"no step failed, but {promote} is {states.get(promote)}"
        )
        rollback_state = states.get(self.rollback_task_id)
        if rollback_state == "success":
            rolled_back = ti.xcom_pull(task_ids=self.rollback_task_id, map_indexes=index) or {}
            if rolled_back.get("rolled_back"):
                after = f"traffic was rolled back: {rolled_back.get('stable_revision')} serves 100%"
            else:
                after = f"traffic was not changed by this rollout ({rolled_back.get('reason')})"
        else:
            after = (
                f"the rollback did not succeed ({rollback_state}), so traffic may still be split: read the "
                f"log of {self.rollback_task_id}, fix the cause and clear that task to roll back again"
            )
        service = f"{self.namespace}/{self.service_name}"
        message = f"rollout of Knative Service {service} was not promoted: {why}; {after}"
        if states.get(self.deploy_task_id) == "success":
            self._alert(context, ROLLED_BACK, revision, message)
        # Logs where the failure is: the candidate's Knative conditions and its pods' last log lines.
        log_candidate_diagnostics(self.hook, self.service_name, self.namespace, self.rollout_id, self.log)
        raise AirflowFailException(message)

    def _alert(self, context: Context, event: str, revision: str, reason: str) -> None:
        rollout_alert(
            self.notifiers,
            context,
            self.hook,
            event=event,
            service=self.service_name,
            namespace=self.namespace,
            rollout_id=self.rollout_id,
            revision=revision,
            reason=reason,
        )

    @staticmethod
    def _failure_of(context: Context, task_id: str) -> str:
        """Return why a step failed: a gate's violated thresholds, an analysis' verdict, or where to read."""
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=task_id, key=LOAD_TEST_XCOM_KEY, map_indexes=_map_index(ti))
        if isinstance(summary, Mapping) and summary.get("verdict", {}).get("failed"):
            violated = ", ".join(str(check["message"]) for check in summary["verdict"]["failed"])
            return f"{task_id} failed the SLO ({violated})"
        step = ti.xcom_pull(task_ids=task_id, key=STEP_XCOM_KEY, map_indexes=_map_index(ti))
        if isinstance(step, Mapping) and step.get("action") == ActionKind.ROLLBACK.value:
            verdict, percent = step.get("verdict"), step.get("percent")
            return f"{task_id} judged the candidate {verdict} at {percent}% ({step.get('reason')})"
        return f"{task_id} failed (its log says why)"


class KnativeStepAnalysisOperator(KnativeCanaryAnalysisOperator):
    """Judge the candidate at one traffic step of ``progressive_rollout``; decide as the single task does.

    The group's ``analysis_<percent>`` task. It measures one window as
    :class:`~knative_rollout.operators.KnativeCanaryAnalysisOperator` does, checking what
    :meth:`~knative_rollout.policy.RolloutPlan.check_at` says for this step (at 100% the slo only, or
    nothing without an slo), and follows :meth:`~knative_rollout.policy.RolloutPlan.next_action`: it
    succeeds, so the next step runs; measures again here (inconclusive, up to ``max_inconclusive`` times in
    a row); or fails, so the group's ``rollback`` runs. A failed analysis alerts the notifiers
    (``analysis_failed``) and is a Kubernetes Event.

    :param percent: the candidate's traffic at this step.
    :param steps: the group's traffic steps (the plan the decision follows).
    :param max_inconclusive: inconclusive analyses in a row measured again before rolling back. (templated)
    :param notifiers: ``BaseNotifier`` instances called on a failed analysis.
    :return: ``{"percent", "verdict", "reason", "score", "action", "steps"}``: the last measurement, what
        the plan does next, and every measurement of this step as the single task's ``steps`` lists them;
        also the XCom ``step``, pushed when it rolls back too.
    """

    template_fields = (*KnativeCanaryAnalysisOperator.template_fields, "max_inconclusive")

    def __init__(
        self,
        *,
        percent: int,
        steps: Sequence[int],
        max_inconclusive: int | str = 1,
        notifiers: Sequence[Callable[[Any], Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.percent = int(percent)
        self.steps = tuple(steps)
        self.max_inconclusive = max_inconclusive
        self.notifiers = tuple(notifiers)
        # What the next window carries and overrides; set by _measure before each window.
        self._measured: list[dict[str, Any]] = []
        self._overrides: dict[str, Any] = {}

    def plan(self) -> RolloutPlan:
        """Return the group's plan with this task's ``max_inconclusive``."""
        with permanent_input_errors():
            retries = parse_int(self.max_inconclusive, "max_inconclusive", minimum=0)
        return RolloutPlan.of(self.steps, max_inconclusive=retries)

    def execute(self, context: Context) -> Any:
        """Check the input and measure this step (a step with nothing to check passes at once)."""
        return self._measure(context, [])

    def _measure(self, context: Context, measured: list[dict[str, Any]]) -> Any:
        config = self.analysis_config()
        self.plan()
        check = RolloutPlan.check_at(self.percent, compare=config.compare, has_slo=config.slo is not None)
        if check is StepCheck.NONE:
            return self._decide(context, measured, Verdict.PASS, NOTHING_TO_CHECK, {}, str(self.revision))
        self._measured = measured
        self._overrides = {"compare": False} if check is StepCheck.SLO and config.compare else {}
        return super().execute(context)

    def analysis_trigger(
        self,
        config: AnalysisConfig,
        *,
        carry: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> KnativeAnalysisTrigger:
        """Return the window's trigger with this step's overrides, carrying its earlier measurements."""
        return super().analysis_trigger(
            config,
            carry={**carry, "measured": self._measured},
            overrides={**self._overrides, **(overrides or {})},
            **kwargs,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Decide on the window's verdict: the next step, another window, or the rollback."""
        verdict, reason, report = self.analysis_outcome(context, event)
        measured = list(event.get("measured") or [])
        return self._decide(context, measured, verdict, reason, report, str(event.get("canary")))

    def _decide(
        self,
        context: Context,
        measured: list[dict[str, Any]],
        verdict: Verdict,
        reason: str,
        report: Mapping[str, Any],
        revision: str,
    ) -> Any:
        score = (report.get("judgement") or {}).get("score")
        entry = {"percent": self.percent, "verdict": verdict.value, "reason": reason[:400], "score": score}
        measured = [*measured, entry]
        if verdict is Verdict.FAIL:
            rollout_alert(
                self.notifiers,
                context,
                self.hook,
                event=ANALYSIS_FAILED,
                service=self.service_name,
                namespace=self.namespace,
                rollout_id=self.rollout_id,
                revision=revision,
                reason=reason,
                analysis=report,
            )
        # Only an inconclusive verdict is measured again, so every earlier one of this step was inconclusive.
        action = self.plan().next_action(self.percent, verdict, len(measured) - 1)
        self.log.info("At %s%%: %s -> %s (%s)", self.percent, verdict.value, action.kind.value, action.reason)
        summary = {**entry, "action": action.kind.value, "steps": measured}
        context["ti"].xcom_push(key=STEP_XCOM_KEY, value=summary)
        if action.kind is ActionKind.RETRY_GATE:
            return self._measure(context, measured)
        if action.kind is ActionKind.ROLLBACK:
            raise KnativeAnalysisFailedError(
                f"analysis of {revision} in {self.service_path}: {action.reason}: {reason}. Traffic was not "
                "changed by this step; the group's rollback sends it back to the stable revision"
            )
        return summary


def _map_index(ti: Any) -> int:
    """Return the task instance's map index, -1 when it is not mapped (which is also how XComs store it)."""
    index = getattr(ti, "map_index", None)
    return index if isinstance(index, int) and index >= 0 else -1


def default_rollout_id(group_id: str) -> str:
    """Return the template of a rollout's id: ``dag_id/run_id/group_id`` (and ``/map_index`` when mapped).

    A retry, or a run cleared and run again, renders the same id and so resumes its own rollout; the next
    run of the DAG is a new rollout.
    """
    map_suffix = "{{ '' if ti.map_index is none or ti.map_index < 0 else '/' ~ ti.map_index }}"
    return "{{ dag.dag_id }}/{{ run_id }}/" + group_id + map_suffix


def progressive_rollout(
    *,
    group_id: str,
    service_name: str,
    namespace: str = "default",
    image: str,
    steps: Sequence[int] = (10, 50, 100),
    env: dict[str, str] | None = None,
    tag: str = "candidate",
    load_test: Mapping[str, Any] | None = None,
    analysis: Mapping[str, Any] | XComArg | None = None,
    baseline: bool = False,
    max_inconclusive: int | str = 1,
    notifiers: Sequence[Callable[[Any], Any]] = (),
    rollout_id: str | None = None,
    on_conflict: str = "wait",
    lock_timeout: float = 3600,
    lock_duration: int = DEFAULT_LEASE_SECONDS,
    allow_older: bool | str = False,
    attempt: int | str = 0,
    **deploy_kwargs: Any,
) -> TaskGroup:
    """Return a TaskGroup: lock the Service, deploy the candidate at 0%, gate it, shift it, promote it.

    Tasks: ``lock`` (the Service's rollout lock, see :class:`~knative_rollout.operators.KnativeLockOperator`),
    ``deploy_candidate`` (Ready, on its tag URL, no traffic), ``load_test`` when ``load_test`` is given,
    ``deploy_baseline`` with ``baseline``, ``traffic_<percent>`` per step, each followed by
    ``analysis_<percent>`` when ``analysis`` is given (see :class:`KnativeStepAnalysisOperator`),
    ``promote``; then ``rollback``, which runs when any of those failed and undoes what this rollout
    changed (nothing, if it changed nothing), and ``outcome``, which deletes the baseline, releases the
    lock and fails the DAG run unless the candidate was promoted or there was nothing to roll out (see
    the module docstring). Every step after the deploy names the revision the deploy returned.
    The Service must already have a stable revision (deploy one with
    :class:`~knative_rollout.operators.KnativeDeployRevisionOperator` first).

    The steps, the gate's arguments and a literal ``analysis`` mapping are checked when the DAG is parsed,
    so a bad plan shows up as an import error rather than as a half-done rollout.

    :param group_id: the TaskGroup's id.
    :param service_name: Knative Service. (templated in the tasks)
    :param namespace: its namespace. (templated in the tasks)
    :param image: the candidate's image. (templated)
    :param steps: the candidate's traffic percents, e.g. ``(10, 50, 100)``.
    :param env: the candidate's environment. (templated)
    :param tag: the candidate's tag; the gate loads this tag's URL.
    :param load_test: :class:`~knative_rollout.operators.LoadTestGateOperator` arguments for a gate
        before any traffic moves, e.g. ``{"rate": 20, "duration": "10s", "slo": "p99<=300ms,error_rate<=0.01",
        "path": "/v1/models/iris:predict", "bodies": [...]}``; ``slo`` is required. The group sets the
        target (Service, namespace, tag) and the connection. Keep its duration well under
        ``lock_duration``: the gate does not renew the lock.
    :param analysis: judge the candidate against the stable on live metrics after every traffic step, as
        :class:`~knative_rollout.operators.KnativeCanaryRolloutOperator` does (the same mapping, see
        :mod:`knative_rollout.analysis.config`; at 100% the slo only, or nothing without an slo). A
        mapping is checked when the DAG is parsed (templates only where any text is valid: URLs, paths,
        bodies); an XComArg (e.g. from a task that reads Variables) when the step runs. (templated)
    :param baseline: compare the candidate with a fresh revision of the stable's spec, tagged ``baseline``
        and given the canary's weight, instead of with the warm stable, as
        :class:`~knative_rollout.operators.KnativeCanaryRolloutOperator` ``(baseline=True)`` does (see
        :mod:`knative_rollout.resources.baselines`); needs ``analysis`` with ``compare`` on.
    :param max_inconclusive: inconclusive analyses in a row measured again before rolling back. (templated)
    :param notifiers: ``BaseNotifier`` instances alerted on a failed analysis, the promotion and a
        rollback, with the single task's payload (see :mod:`knative_rollout.notifiers`).
    :param rollout_id: this rollout's identity (templated); default :func:`default_rollout_id`.
    :param on_conflict: when another rollout holds the Service: ``"wait"`` (deferred) or ``"fail"``.
    :param lock_timeout: seconds to wait for the lock.
    :param lock_duration: seconds the lock lasts without renewal; a killed run blocks the Service this long.
    :param allow_older: roll out the previous stable or an older revision on purpose. (templated)
    :param attempt: give a spec whose revision failed a new name. (templated)
    :param deploy_kwargs: more :class:`KnativeDeployRevisionOperator` arguments (resources, connection...);
        the connection arguments are used by every task.
    """
    plan = RolloutPlan.of(
        steps, max_inconclusive=max_inconclusive if isinstance(max_inconclusive, int) else 0
    )
    gate_arguments = _gate_arguments(load_test)
    _check_analysis(analysis, baseline=baseline, tag=tag)
    rollout: dict[str, Any] = {
        "service_name": service_name,
        "namespace": namespace,
        "rollout_id": rollout_id or default_rollout_id(group_id),
        "lock_duration": lock_duration,
    }
    # Every task reaches the cluster the same way the deploy task does.
    connection = {
        key: value
        for key, value in deploy_kwargs.items()
        if key in (*CONNECTION_FIELDS, "impersonation_chain")
    }
    with TaskGroup(group_id=group_id) as group:
        lock = KnativeLockOperator(
            task_id="lock", **rollout, **connection, on_conflict=on_conflict, lock_timeout=lock_timeout
        )
        deploy = KnativeDeployRevisionOperator(
            task_id="deploy_candidate",
            **rollout,
            image=image,
            env=env,
            tag=tag,
            traffic_percent=0,
            allow_older=allow_older,
            attempt=attempt,
            skip_if_unchanged=True,
            create_service=False,
            **deploy_kwargs,
        )
        # The deploy's real task id (the group may sit in another), and in a mapped group the XCom of
        # this map index: Airflow 3.3 pulls every map index's value when map_indexes is not given.
        deployed = (
            f"{{{{ ti.xcom_pull(task_ids='{deploy.task_id}', map_indexes=ti.map_index)['revision'] }}}}"
        )
        rollout_steps: list[BaseOperator] = [lock, deploy]
        if gate_arguments is not None:
            rollout_steps.append(
                LoadTestGateOperator(
                    task_id="load_test",
                    service_name=service_name,
                    namespace=namespace,
                    tag=tag,
                    revision=deployed,
                    **connection,
                    **gate_arguments,
                )
            )
        compare_with: dict[str, str] = {}
        if baseline:
            spec_fields = ("resources", "annotations", "autoscaling", "container_port")
            made = KnativeRolloutBaselineOperator(
                task_id="deploy_baseline",
                **rollout,
                **connection,
                revision=deployed,
                percent=plan.steps[0],
                image=image,
                env=env,
                attempt=attempt,
                wait_timeout=deploy_kwargs.get("wait_timeout", 600),
                **{key: value for key, value in deploy_kwargs.items() if key in spec_fields},
            )
            rollout_steps.append(made)
            compare_with["baseline"] = (
                f"{{{{ ti.xcom_pull(task_ids='{made.task_id}', map_indexes=ti.map_index)['baseline'] }}}}"
            )
        for percent in plan.steps:
            rollout_steps.append(
                KnativeBaselineTrafficOperator(
                    task_id=f"traffic_{percent}", **rollout, **connection, revision=deployed, percent=percent
                )
                if baseline
                else KnativeSetTrafficOperator(
                    task_id=f"traffic_{percent}",
                    **rollout,
                    **connection,
                    revision=deployed,
                    traffic=canary_split(percent, None),
                )
            )
            if analysis is not None:
                rollout_steps.append(
                    KnativeStepAnalysisOperator(
                        task_id=f"analysis_{percent}",
                        **rollout,
                        **connection,
                        revision=deployed,
                        **compare_with,
                        analysis=analysis,
                        percent=percent,
                        steps=plan.steps,
                        max_inconclusive=max_inconclusive,
                        notifiers=notifiers,
                    )
                )
        rollout_steps.append(
            KnativePromoteOperator(task_id="promote", **rollout, **connection, revision=deployed)
        )
        chain(*rollout_steps)
        rollback = KnativeRollbackOperator(
            task_id="rollback", **rollout, **connection, trigger_rule=TriggerRule.ONE_FAILED
        )
        outcome = KnativeRolloutOutcomeOperator(
            task_id="outcome",
            service_name=service_name,
            namespace=namespace,
            rollout_id=rollout["rollout_id"],
            **connection,
            step_task_ids=[step.task_id for step in rollout_steps],
            deploy_task_id=deploy.task_id,
            rollback_task_id=rollback.task_id,
            notifiers=notifiers,
        )
        # The rollback watches every step, so a failure anywhere (even in promote) sends traffic back.
        rollout_steps >> rollback >> outcome
    return group


def _gate_arguments(load_test: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return the gate's own arguments, refusing a gate without an SLO or one aimed elsewhere."""
    if load_test is None:
        return None
    if not isinstance(load_test, Mapping):
        raise TypeError(
            f"load_test must be a mapping of LoadTestGateOperator arguments, got {type(load_test).__name__}"
        )
    fixed = sorted(key for key in load_test if key in _GATE_FIXED_ARGUMENTS)
    if fixed:
        raise ValueError(
            f"load_test sets {', '.join(fixed)}, which progressive_rollout sets itself (the gate loads the "
            "candidate's tag URL through the rollout's connection); remove them"
        )
    if not load_test.get("slo"):
        raise ValueError(
            "load_test has no slo, so the gate would pass any candidate; give thresholds such as "
            "'p99<=300ms,error_rate<=0.01'"
        )
    return dict(load_test)


def _check_analysis(analysis: Mapping[str, Any] | XComArg | None, *, baseline: bool, tag: str) -> None:
    """Refuse, when the DAG is parsed, an analysis mapping its steps would refuse (an XComArg: they do)."""
    if baseline and (analysis is None or tag == BASELINE_TAG):
        raise ValueError(
            "baseline=True needs an analysis (the baseline is what it compares the candidate with) and a "
            f"candidate tag other than {BASELINE_TAG!r}; give analysis=, or remove baseline"
        )
    if analysis is None or isinstance(analysis, XComArg):
        return
    try:
        config = AnalysisConfig.of(analysis)
    except (TypeError, ValueError) as error:
        raise ValueError(f"analysis: {error}") from None
    if baseline and not config.compare:
        raise ValueError(
            "baseline=True needs compare on in analysis: the baseline is what the candidate is compared "
            "with. Remove baseline, or compare"
        )
