"""Builders that compose the rollout operators into a progressive rollout, as one TaskGroup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import TaskGroup, chain

from knative_rollout.operators import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeSetTrafficOperator,
)
from knative_rollout.operators.base import CONNECTION_FIELDS
from knative_rollout.policy import RolloutPlan


def progressive_rollout(
    *,
    group_id: str,
    service_name: str,
    namespace: str = "default",
    image: str,
    steps: Sequence[int] = (10, 50, 100),
    env: dict[str, str] | None = None,
    tag: str = "candidate",
    **deploy_kwargs: Any,
) -> TaskGroup:
    """Return a TaskGroup: deploy the candidate at 0%, shift it through ``steps``, then promote it.

    The steps are checked when the DAG is parsed (strictly increasing percents, ending at 100), so a bad
    plan shows up as an import error rather than as a half-done rollout.

    :param group_id: the TaskGroup's id.
    :param service_name: Knative Service. (templated in the tasks)
    :param namespace: its namespace. (templated in the tasks)
    :param image: the candidate's image. (templated)
    :param steps: the candidate's traffic percents, e.g. ``(10, 50, 100)``.
    :param env: the candidate's environment. (templated)
    :param tag: the candidate's tag.
    :param deploy_kwargs: more :class:`KnativeDeployRevisionOperator` arguments (resources, connection...).
    """
    plan = RolloutPlan.of(steps)
    target = {"service_name": service_name, "namespace": namespace}
    # The traffic and promote tasks reach the cluster the same way the deploy task does.
    connection = {
        key: value
        for key, value in deploy_kwargs.items()
        if key in (*CONNECTION_FIELDS, "impersonation_chain")
    }
    with TaskGroup(group_id=group_id) as group:
        deploy = KnativeDeployRevisionOperator(
            task_id="deploy_candidate",
            **target,
            image=image,
            env=env,
            tag=tag,
            traffic_percent=0,
            **deploy_kwargs,
        )
        shifts = [
            KnativeSetTrafficOperator(
                task_id=f"traffic_{percent}",
                **target,
                **connection,
                traffic={"@stable": 100 - percent, "@candidate": percent},
            )
            for percent in plan.steps
        ]
        promote = KnativePromoteOperator(task_id="promote", **target, **connection)
        chain(deploy, *shifts, promote)
    return group
