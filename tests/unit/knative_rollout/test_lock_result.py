"""LockResult.taken_over_from: only another rollout's expired Lease is a takeover."""

from __future__ import annotations

import pytest

from knative_rollout.locks import LockResult
from knative_rollout.resources import LeaseHolding


@pytest.mark.parametrize(
    ("acquired", "before", "expected"),
    [
        # Another rollout stopped renewing: taken over from it.
        (True, LeaseHolding(holder="dag/run-1/rollout", expired=True), "dag/run-1/rollout"),
        # A rerun of the same rollout that started after its own Lease expired renews it.
        (True, LeaseHolding(holder="dag/run-2/rollout", expired=True), None),
        # Renewing a live Lease, taking a free one, or not getting it at all is no takeover either.
        (True, LeaseHolding(holder="dag/run-2/rollout"), None),
        (True, LeaseHolding(holder=None), None),
        (False, LeaseHolding(holder="dag/run-1/rollout"), None),
    ],
)
def test_only_another_rollouts_expired_lease_is_taken_over(
    acquired: bool, before: LeaseHolding, expected: str | None
) -> None:
    result = LockResult(acquired=acquired, before=before, rollout_id="dag/run-2/rollout")
    assert result.taken_over_from == expected
