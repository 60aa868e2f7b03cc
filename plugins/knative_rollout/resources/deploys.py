"""What deploying a revision means, given what the Service records: decided before anything is written.

A revision's name is a hash of its spec, so "deploy this spec" and "deploy that revision" are the same
question. The answer never moves production backwards by accident:

- the spec of the current stable revision: nothing to roll out;
- the spec of the previous stable, or of any revision created before the stable one: refused unless the
  caller allows older revisions (then it is rolled out, gated, like any candidate);
- a revision that failed before (image pull, crash, readiness): refused, since Knative never starts it
  again; a new ``attempt`` gives the same spec a new, still deterministic, name;
- anything else: a new candidate (created, or reused when it exists and never failed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from knative_rollout.policy import RolloutState
from knative_rollout.resources.revisions import RevisionInfo
from knative_rollout.resources.validation import RolloutInputError


class DeployKind(StrEnum):
    """What a deploy does."""

    UNCHANGED = "unchanged"
    CREATE = "create"
    REUSE = "reuse"


@dataclass(frozen=True)
class DeployPlan:
    """The decision for one deploy: what to do, and a sentence saying why."""

    kind: DeployKind
    reason: str


def plan_deploy(
    revision: str,
    state: RolloutState,
    revisions: Mapping[str, RevisionInfo],
    *,
    allow_older: bool,
    attempt: int,
) -> DeployPlan:
    """Return what deploying ``revision`` does to a Service in ``state`` with ``revisions``.

    :raises RolloutInputError: for an older revision (unless ``allow_older``) or one that failed before.
    """
    if revision == state.stable:
        return DeployPlan(
            DeployKind.UNCHANGED, f"{revision} is already the stable revision: nothing to roll out"
        )
    info = revisions.get(revision)
    stable = revisions.get(state.stable or "")
    older = revision == state.previous_stable or (
        info is not None and stable is not None and info.order() < stable.order()
    )
    if older and not allow_older:
        which = (
            "the previous stable revision"
            if revision == state.previous_stable
            else "older than the stable one"
        )
        raise RolloutInputError(
            f"revision {revision} is {which} ({state.stable}); deploying it would move production back. "
            "Nothing was changed. To roll back on purpose use KnativeRollbackOperator(revision=...), or pass "
            "allow_older=True to roll it out through the gates like a new candidate"
        )
    if info is None:
        return DeployPlan(DeployKind.CREATE, f"creating revision {revision}")
    if info.failed:
        raise RolloutInputError(
            f"revision {revision} failed before ({info.reason or 'not Ready'}) and Knative will not start "
            f"it again. Nothing was changed. Fix the cause, then deploy with attempt={attempt + 1} to "
            "create the same spec under a new name"
        )
    return DeployPlan(DeployKind.REUSE, f"revision {revision} exists; rolling it out again")


def adopted_stable(split: Mapping[str, int], service: str) -> str | None:
    """Return the revision to record as stable for a Service that serves ``split`` but records none.

    A Service handed over (the managed-by label added) or whose annotations were lost still serves users;
    the revision serving all of them is production. A split between several is ambiguous: refused.

    :raises RolloutInputError: when traffic is split between revisions.
    """
    serving = {name: percent for name, percent in split.items() if percent > 0}
    if not serving:
        return None
    if len(serving) == 1:
        return next(iter(serving))
    shares = ", ".join(f"{name}={percent}%" for name, percent in sorted(serving.items()))
    raise RolloutInputError(
        f"service {service} records no stable revision and splits its traffic ({shares}); nothing was "
        "changed. Choose production first: KnativeRollbackOperator(revision=...) sends all traffic to one "
        "revision and records it as stable"
    )
