"""Reading Knative objects: status conditions, revision readiness, and which revisions a teardown deletes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from knative_rollout.resources.validation import parse_int

CONFIGURATION_GENERATION_LABEL = "serving.knative.dev/configurationGeneration"


@dataclass(frozen=True)
class RevisionInfo:
    """What traffic validation and teardown need to know about one existing revision."""

    name: str
    ready: bool
    created: str = ""
    reason: str = ""
    generation: int | None = None
    """The Configuration generation that created it (Knative's label): the order revisions were made in."""
    failed: bool = False
    """Knative gave up on it (Ready=False): it will never serve, whatever happens next."""

    def order(self) -> tuple[int, str, str]:
        """Return a key that sorts revisions oldest first."""
        return (self.generation if self.generation is not None else -1, self.created, self.name)


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
    generation = (revision["metadata"].get("labels") or {}).get(CONFIGURATION_GENERATION_LABEL, "")
    return RevisionInfo(
        name=str(revision["metadata"]["name"]),
        ready=ready.get("status") == "True",
        created=str(revision["metadata"].get("creationTimestamp", "")),
        reason=reason,
        generation=int(generation) if str(generation).isdigit() else None,
        failed=ready.get("status") == "False",
    )


def check_keep(keep: object) -> int:
    """Return ``keep`` when it is a count of revisions to keep (an integer of 0 or more, or such text)."""
    return parse_int(keep, "keep", minimum=0)


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
