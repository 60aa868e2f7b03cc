"""Table tests of resources.revisions: readiness read from Revisions and which ones a teardown deletes."""

from __future__ import annotations

import pytest

from knative_rollout.resources import RevisionInfo, RolloutInputError, deletable_revisions, revision_info


def test_revision_info_reads_readiness_and_reason() -> None:
    revision = {
        "metadata": {"name": "iris-x", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "ExitCode1", "message": "boom"}]
        },
    }
    assert revision_info(revision) == RevisionInfo(
        "iris-x", False, "2026-01-01T00:00:00Z", "ExitCode1: boom", generation=None, failed=True
    )


def test_teardown_keeps_protected_and_the_newest() -> None:
    infos = [RevisionInfo(f"r{i}", True, f"2026-01-01T00:00:0{i}Z") for i in range(6)]
    assert deletable_revisions(infos, protected={"r5", "r0"}, keep=2) == ["r2", "r1"]
    assert deletable_revisions(infos, protected=set(), keep=10) == []
    with pytest.raises(RolloutInputError, match="keep must be an integer"):
        deletable_revisions(infos, protected=set(), keep=-1)
