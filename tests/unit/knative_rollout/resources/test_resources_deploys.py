"""Table tests of what a deploy does (nothing, create, reuse) or why it is refused, and stable adoption."""

from __future__ import annotations

import pytest

from knative_rollout.policy import RolloutState
from knative_rollout.resources import (
    DeployKind,
    RevisionInfo,
    RolloutInputError,
    adopted_stable,
    plan_deploy,
)

# v1 was stable before v2; v3 is a rejected candidate made after v2; bad failed to start.
REVISIONS = {
    "svc-v1": RevisionInfo("svc-v1", ready=True, generation=1),
    "svc-v2": RevisionInfo("svc-v2", ready=True, generation=3),
    "svc-v0": RevisionInfo("svc-v0", ready=True, generation=2),
    "svc-v3": RevisionInfo("svc-v3", ready=True, generation=4),
    "svc-bad": RevisionInfo("svc-bad", ready=False, generation=5, reason="ExitCode1: boom", failed=True),
}
STATE = RolloutState(stable="svc-v2", previous_stable="svc-v1")


@pytest.mark.parametrize(
    ("revision", "allow_older", "kind"),
    [
        ("svc-v2", False, DeployKind.UNCHANGED),  # a rerun of what is stable: nothing to roll out
        ("svc-v2", True, DeployKind.UNCHANGED),
        ("svc-new", False, DeployKind.CREATE),
        ("svc-v3", False, DeployKind.REUSE),  # a rejected candidate tried again goes through the gates
        ("svc-v1", True, DeployKind.REUSE),  # the previous stable, on purpose
        ("svc-v0", True, DeployKind.REUSE),  # older than stable, on purpose
    ],
)
def test_deploy_plans(revision: str, allow_older: bool, kind: DeployKind) -> None:
    plan = plan_deploy(revision, STATE, REVISIONS, allow_older=allow_older, attempt=0)
    assert plan.kind is kind
    assert plan.reason


@pytest.mark.parametrize(
    ("revision", "match"),
    [
        ("svc-v1", "is the previous stable revision .*allow_older=True"),
        ("svc-v0", "is older than the stable one .*Nothing was changed"),
        ("svc-bad", "failed before \\(ExitCode1: boom\\).*attempt=3"),
    ],
)
def test_deploys_that_are_refused(revision: str, match: str) -> None:
    with pytest.raises(RolloutInputError, match=match):
        plan_deploy(revision, STATE, REVISIONS, allow_older=False, attempt=2)


def test_a_failed_revision_is_refused_even_when_older_revisions_are_allowed() -> None:
    with pytest.raises(RolloutInputError, match="failed before"):
        plan_deploy("svc-bad", STATE, REVISIONS, allow_older=True, attempt=0)


def test_the_previous_stable_counts_as_older_even_when_its_revision_was_deleted() -> None:
    with pytest.raises(RolloutInputError, match="previous stable"):
        plan_deploy("svc-v1", STATE, {"svc-v2": REVISIONS["svc-v2"]}, allow_older=False, attempt=0)


def test_a_service_without_a_stable_revision_creates_its_first() -> None:
    assert plan_deploy("svc-v1", RolloutState(), {}, allow_older=False, attempt=0).kind is DeployKind.CREATE


@pytest.mark.parametrize(
    ("split", "adopted"),
    [
        ({"svc-v1": 100}, "svc-v1"),
        ({"svc-v1": 100, "svc-v2": 0}, "svc-v1"),
        ({}, None),
        ({"svc-v1": 0}, None),
    ],
)
def test_adopting_the_revision_that_serves_everything(split: dict[str, int], adopted: str | None) -> None:
    assert adopted_stable(split, "svc") == adopted


def test_a_split_without_a_recorded_stable_is_ambiguous() -> None:
    with pytest.raises(RolloutInputError, match="splits its traffic \\(svc-v1=90%, svc-v2=10%\\)"):
        adopted_stable({"svc-v1": 90, "svc-v2": 10}, "svc")
