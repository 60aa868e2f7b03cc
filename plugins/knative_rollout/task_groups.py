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

from airflow.sdk import TaskGroup, TriggerRule, chain
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.locks import RolloutLock
from knative_rollout.operators import (
    KnativeDeployRevisionOperator,
    KnativeLockOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
    LoadTestGateOperator,
)
from knative_rollout.operators.base import CONNECTION_FIELDS, KnativeConnectionOperator
from knative_rollout.operators.loadtest import XCOM_KEY as LOAD_TEST_XCOM_KEY
from knative_rollout.operators.rollout import DEPLOY_XCOM_KEY
from knative_rollout.policy import RolloutPlan
from knative_rollout.resources import DEFAULT_LEASE_SECONDS

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

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


class KnativeRolloutOutcomeOperator(KnativeConnectionOperator):
    """Succeed when the rollout promoted its candidate or found nothing to roll out; otherwise fail.

    It runs whatever the steps did (trigger rule ``all_done``), says which step failed and why (a failed
    load-test gate with the thresholds it violated, from the gate's ``loadtest`` XCom) and whether the
    rollback put all traffic back on the stable revision. Last, it releases the rollout's lock, so the
    next rollout of the Service can start whatever happened here.

    :param service_name: the Knative Service being rolled out. (templated)
    :param namespace: its namespace. (templated)
    :param rollout_id: the rollout whose lock is released. (templated)
    :param step_task_ids: the rollout's steps in order, from the lock to the promote task.
    :param deploy_task_id: the step that deploys the candidate (its ``deploy`` XCom says "unchanged").
    :param rollback_task_id: the task that rolls back when a step failed.
    :return: the promote task's return value, or the deploy's summary when there was nothing to roll out.
    """

    template_fields: Sequence[str] = ("service_name", "namespace", "rollout_id", *CONNECTION_FIELDS)
    ui_color = "#cce8ff"

    def __init__(
        self,
        *,
        service_name: str,
        namespace: str,
        rollout_id: str,
        step_task_ids: Sequence[str],
        deploy_task_id: str,
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
        self.rollout_id = rollout_id
        self.step_task_ids = tuple(step_task_ids)
        self.deploy_task_id = deploy_task_id
        self.rollback_task_id = rollback_task_id

    def execute(self, context: Context) -> Any:
        """Release the lock, then return the promotion's summary or raise naming the failed step."""
        released = RolloutLock(self.hook, self.service_name, self.namespace).release(self.rollout_id)
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
        if states.get(promote) == "success":
            self.log.info("Service %s/%s: candidate promoted", self.namespace, self.service_name)
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
        raise AirflowFailException(f"rollout of Knative Service {service} was not promoted: {why}; {after}")

    @staticmethod
    def _failure_of(context: Context, task_id: str) -> str:
        """Return why a step failed: a gate's violated thresholds, or where to read about it."""
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=task_id, key=LOAD_TEST_XCOM_KEY, map_indexes=_map_index(ti))
        if isinstance(summary, Mapping) and summary.get("verdict", {}).get("failed"):
            violated = ", ".join(str(check["message"]) for check in summary["verdict"]["failed"])
            return f"{task_id} failed the SLO ({violated})"
        return f"{task_id} failed (its log says why)"


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
    ``traffic_<percent>`` per step, ``promote``; then ``rollback``, which runs when any of those failed
    and undoes what this rollout changed (nothing, if it changed nothing), and ``outcome``, which
    releases the lock and fails the DAG run unless the candidate was promoted or there was nothing to roll
    out (see the module docstring). Every step after the deploy names the revision the deploy returned.
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
        target (Service, namespace, tag) and the connection. Keep its duration well under
        ``lock_duration``: the gate does not renew the lock.
    :param rollout_id: this rollout's identity (templated); default :func:`default_rollout_id`.
    :param on_conflict: when another rollout holds the Service: ``"wait"`` (deferred) or ``"fail"``.
    :param lock_timeout: seconds to wait for the lock.
    :param lock_duration: seconds the lock lasts without renewal; a killed run blocks the Service this long.
    :param allow_older: roll out the previous stable or an older revision on purpose. (templated)
    :param attempt: give a spec whose revision failed a new name. (templated)
    :param deploy_kwargs: more :class:`KnativeDeployRevisionOperator` arguments (resources, connection...);
        the connection arguments are used by every task.
    """
    plan = RolloutPlan.of(steps)
    gate_arguments = _gate_arguments(load_test)
    rollout = {
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
        rollout_steps += [
            KnativeSetTrafficOperator(
                task_id=f"traffic_{percent}",
                **rollout,
                **connection,
                revision=deployed,
                traffic={"@stable": 100 - percent, "@candidate": percent},
            )
            for percent in plan.steps
        ]
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
