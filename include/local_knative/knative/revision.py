"""Reconcile a Knative Revision: derive its conditions and replica counts from the Pods the runtime writes.

The mapping follows what Knative reports for a Deployment's Pods: any ready Pod makes the Revision
Ready; an image that cannot be fetched is ``ContainerMissing``; a container that exited is
``ExitCode{N}``; a readiness probe that never passed is ``ProgressDeadlineExceeded``. A Revision that has
been Ready stays Ready when it scales to zero.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from local_knative import kinds
from local_knative.knative.objects import Conditions, write_status

if TYPE_CHECKING:
    from local_knative.store import Store

IMAGE_PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def reconcile_revision(store: Store, namespace: str, name: str, pods: list[dict[str, Any]]) -> None:
    """Derive the Revision's conditions and replica counts from its Pods.

    :param pods: the Revision's Pods (any order).
    """
    revision = store.try_get(kinds.REVISION, namespace, name)
    if revision is None:
        return
    pods = sorted(pods, key=lambda pod: pod["metadata"].get("creationTimestamp", ""), reverse=True)
    status = copy.deepcopy(revision.get("status") or {})
    conditions = Conditions(status.get("conditions"))
    status["observedGeneration"] = revision["metadata"].get("generation", 1)
    was_ready = conditions.status("Ready") == "True"
    ready_pods = [pod for pod in pods if pod_is_ready(pod)]
    failure = None if ready_pods else pod_failure(pods)
    if ready_pods or (was_ready and failure is None):
        conditions.mark("ResourcesAvailable", "True")
        conditions.mark("ContainerHealthy", "True")
    elif failure is not None:
        condition_type, reason, message = failure
        conditions.mark(condition_type, "False", reason, message)
        conditions.mark_if_missing("ResourcesAvailable", "Unknown", "Deploying")
        conditions.mark_if_missing("ContainerHealthy", "Unknown")
    else:
        conditions.mark("ResourcesAvailable", "Unknown", "Deploying")
        conditions.mark("ContainerHealthy", "Unknown")
    conditions.aggregate(("ResourcesAvailable", "ContainerHealthy"))
    if ready_pods:
        conditions.mark("Active", "True", severity="Info")
    elif conditions.status("Ready") == "True":
        conditions.mark(
            "Active", "False", "NoTraffic", "The target is not receiving traffic.", severity="Info"
        )
    else:
        conditions.mark("Active", "Unknown", "Deploying", severity="Info")
    status["actualReplicas"] = len(ready_pods)
    status["desiredReplicas"] = sum(
        1 for pod in pods if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
    )
    status["conditions"] = conditions.as_list()
    write_status(store, kinds.REVISION, revision, status)


def pod_is_ready(pod: dict[str, Any]) -> bool:
    """Tell whether a Pod reports condition Ready True."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def pod_failure(pods: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """Return the Revision condition (type, reason, message) Knative reports for failing Pods, or None.

    :param pods: the Revision's Pods, newest first; the newest failure wins.
    """
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
            if waiting.get("reason") in IMAGE_PULL_FAILURES:
                return (
                    "ContainerHealthy",
                    "ContainerMissing",
                    f'Unable to fetch image "{container.get("image", "")}": {waiting.get("message", "")}',
                )
            if waiting.get("reason") == PROGRESS_DEADLINE_EXCEEDED:
                return ("ResourcesAvailable", PROGRESS_DEADLINE_EXCEEDED, "Initial scale was never achieved")
            if terminated:
                return (
                    "ContainerHealthy",
                    f"ExitCode{terminated.get('exitCode', 0)}",
                    f"Container failed with: {terminated.get('message', '')}",
                )
    return None
