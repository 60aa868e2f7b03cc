"""Builders that compose the rollout operators into a progressive rollout, as one TaskGroup.

The group ends in a rollback and an outcome task. Airflow decides a DAG run's state from its leaf tasks
only, so a rollback that worked would, as the last task, end the run green and hide that the candidate
was rejected. The outcome task runs whatever happened before it and fails unless the candidate was
promoted; being the group's only leaf, it also keeps tasks placed after the group from running after a
rollback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TaskGroup, TriggerRule, chain
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.operators import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
    LoadTestGateOperator,
)
from knative_rollout.operators.base import CONNECTION_FIELDS
from knative_rollout.operators.loadtest import XCOM_KEY as LOAD_TEST_XCOM_KEY
from knative_rollout.policy import RolloutPlan

if TYPE_CHECKING:
    from airflow.sdk import Context

# The group sets these itself: the gate always loads the candidate's tag URL of the rolled-out Service.
_GATE_FIXED_ARGUMENTS = (
    "task_id",
    "url",
    "service_name",
    "namespace",
    "tag",
    *CONNECTION_FIELDS,
    "impersonation_chain",
)


class KnativeRolloutOutcomeOperator(BaseOperator):
    """Succeed when the rollout's candidate was promoted; otherwise fail, saying which step failed and why.

    It runs whatever the steps did (trigger rule ``all_done``). A failed load-test gate is explained with
    the thresholds it violated (from the gate's ``loadtest`` XCom); the message also says whether the
    rollback put all traffic back on the stable revision.

    :param service_name: the Knative Service being rolled out. (templated)
    :param namespace: its namespace. (templated)
    :param step_task_ids: the rollout's steps in order, ending with the promote task.
    :param rollback_task_id: the task that rolls back when a step failed.
    :return: the promote task's return value.
    """

    template_fields: Sequence[str] = ("service_name", "namespace")
    ui_color = "#cce8ff"

    def __init__(
        self,
        *,
        service_name: str,
        namespace: str,
        step_task_ids: Sequence[str],
        rollback_task_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(trigger_rule=TriggerRule.ALL_DONE, **kwargs)
        if not step_task_ids:
            raise ValueError(
                f"{self.task_id}: step_task_ids is empty; list the rollout's steps, promote last"
            )
        self.service_name = service_name
        self.namespace = namespace
        self.step_task_ids = tuple(step_task_ids)
        self.rollback_task_id = rollback_task_id

    def execute(self, context: Context) -> Any:
        """Return the promotion's summary, or raise AirflowFailException naming the failed step."""
        ti = context["ti"]
        watched = [*self.step_task_ids, self.rollback_task_id]
        by_run = ti.get_task_states(dag_id=ti.dag_id, task_ids=watched, run_ids=[ti.run_id])
        states = by_run.get(ti.run_id, {})
        promote = self.step_task_ids[-1]
        if states.get(promote) == "success":
            self.log.info("Service %s/%s: candidate promoted", self.namespace, self.service_name)
            return ti.xcom_pull(task_ids=promote)
        failed = [task_id for task_id in self.step_task_ids if states.get(task_id) == "failed"]
        why = "; ".join(self._failure_of(context, task_id) for task_id in failed) or (
            f"no step failed, but {promote} is {states.get(promote)}"
        )
        rollback_state = states.get(self.rollback_task_id)
        if rollback_state == "success":
            rolled_back = ti.xcom_pull(task_ids=self.rollback_task_id) or {}
            after = f"traffic was rolled back: {rolled_back.get('stable_revision')} serves 100%"
        else:
            after = (
                f"the rollback did not succeed ({rollback_state}), so traffic may still be split: read the "
                f"log of {self.rollback_task_id}, fix the cause and clear that task to roll back again"
            )
        service = f"{self.namespace}/{self.service_name}"
        raise AirflowFailException(f"rollout of Knative Service {service} was not promoted: {why}; {after}")

    @staticmethod
    def _failure_of(context: Context, task_id: str) -> str:
        """Return why a step failed: a gate's violated thresholds, or where to read about it."""
        summary = context["ti"].xcom_pull(task_ids=task_id, key=LOAD_TEST_XCOM_KEY)
        if isinstance(summary, Mapping) and summary.get("verdict", {}).get("failed"):
            violated = ", ".join(str(check["message"]) for check in summary["verdict"]["failed"])
            return f"{task_id} failed the SLO ({violated})"
        return f"{task_id} failed (its log says why)"


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
    **deploy_kwargs: Any,
) -> TaskGroup:
    """Return a TaskGroup: deploy the candidate at 0%, gate it, shift it through ``steps``, promote it.

    Tasks: ``deploy_candidate`` (Ready, on its tag URL, no traffic), ``load_test`` when ``load_test`` is
    given, ``traffic_<percent>`` per step, ``promote``; then ``rollback``, which runs when any of those
    failed and sends all traffic back to the stable revision (the candidate loses its tag), and
    ``outcome``, which fails the DAG run unless the candidate was promoted (see the module docstring).
    The Service must already have a stable revision (deploy one with
    :class:`~knative_rollout.operators.KnativeDeployRevisionOperator` first).

    The steps and the gate's arguments are checked when the DAG is parsed, so a bad plan shows up as an
    import error rather than as a half-done rollout.

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
        target (Service, namespace, tag) and the connection.
    :param deploy_kwargs: more :class:`KnativeDeployRevisionOperator` arguments (resources, connection...);
        the connection arguments are used by every task.
    """
    plan = RolloutPlan.of(steps)
    gate_arguments = _gate_arguments(load_test)
    target = {"service_name": service_name, "namespace": namespace}
    # Every task reaches the cluster the same way the deploy task does.
    connection = {
        key: value
        for key, value in deploy_kwargs.items()
        if key in (*CONNECTION_FIELDS, "impersonation_chain")
    }
    with TaskGroup(group_id=group_id) as group:
        rollout_steps: list[BaseOperator] = [
            KnativeDeployRevisionOperator(
                task_id="deploy_candidate",
                **target,
                image=image,
                env=env,
                tag=tag,
                traffic_percent=0,
                **deploy_kwargs,
            )
        ]
        if gate_arguments is not None:
            rollout_steps.append(
                LoadTestGateOperator(task_id="load_test", **target, tag=tag, **connection, **gate_arguments)
            )
        rollout_steps += [
            KnativeSetTrafficOperator(
                task_id=f"traffic_{percent}",
                **target,
                **connection,
                traffic={"@stable": 100 - percent, "@candidate": percent},
            )
            for percent in plan.steps
        ]
        rollout_steps.append(KnativePromoteOperator(task_id="promote", **target, **connection))
        chain(*rollout_steps)
        rollback = KnativeRollbackOperator(
            task_id="rollback", **target, **connection, trigger_rule=TriggerRule.ONE_FAILED
        )
        outcome = KnativeRolloutOutcomeOperator(
            task_id="outcome",
            **target,
            step_task_ids=[step.task_id for step in rollout_steps],
            rollback_task_id=rollback.task_id,
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
