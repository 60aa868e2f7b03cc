"""Reading Knative objects: status conditions, revision readiness, and which revisions a teardown deletes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from knative_rollout.resources.validation import RolloutInputError


@dataclass(frozen=True)
class RevisionInfo:
    """What traffic validation and teardown need to know about one existing revision."""

    name: str
    ready: bool
    created: str = ""
    reason: str = ""


def condition(obj: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    """Return the status condition of ``condition_type``, or ``None``."""
    for item in obj.get("status", {}).get("conditions") or []:
        if item.get("type") == condition_type:
            return item  # type: ignore[no-any-return]
    return None


def revision_info(revision: Mapping[str, Any]) -> RevisionInfo:
    """Return name, readiness and creation time of a Revision object."""
    ready = condition(revision, "Ready") or {}
    reason = ": ".join(part for part in (ready.get("reason"), ready.get("message")) if part)
    return RevisionInfo(
        name=str(revision["metadata"]["name"]),
        ready=ready.get("status") == "True",
        created=str(revision["metadata"].get("creationTimestamp", "")),
        reason=reason,
    )


def check_keep(keep: object) -> int:
    """Return ``keep`` when it is a count of revisions to keep (an integer of 0 or more)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise RolloutInputError(f"keep must be an integer of 0 or more, got {keep!r}")
    return keep


def deletable_revisions(
    revisions: Iterable[RevisionInfo], *, protected: Iterable[str], keep: int
) -> list[str]:
    """Return the revisions a teardown deletes: unprotected ones beyond the newest ``keep``.

    :param protected: revisions that serve or may serve traffic (in traffic, stable, candidate,
        rollback target, the template's own revision); never deleted, not counted in ``keep``.
    """
    check_keep(keep)
    protected_names = set(protected)
    candidates = sorted(
        (info for info in revisions if info.name not in protected_names),
        key=lambda info: (info.created, info.name),
        reverse=True,
    )
    return [info.name for info in candidates[keep:]]
