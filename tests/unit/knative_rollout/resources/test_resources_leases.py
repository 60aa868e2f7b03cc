"""Table tests of the rollout lock's Lease: who holds it when, taking, taking over, renewing, releasing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from knative_rollout.resources import held_lease, holding_of, lease_name, released_lease

NOW = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)


def lease(holder: str | None, renewed_ago: float, duration: int = 60) -> dict[str, object]:
    renewed = (NOW - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec: dict[str, object] = {"leaseDurationSeconds": duration, "renewTime": renewed, "acquireTime": renewed}
    if holder:
        spec["holderIdentity"] = holder
    return {"metadata": {"name": lease_name("svc"), "namespace": "ns", "resourceVersion": "7"}, "spec": spec}


@pytest.mark.parametrize(
    ("body", "holder", "expired", "other_holds_it"),
    [
        (None, None, False, False),
        (lease(None, 0), None, False, False),
        (lease("run-a", 10), "run-a", False, True),
        (lease("run-a", 61), "run-a", True, False),
        (lease("me", 10), "me", False, False),
        ({"spec": {"holderIdentity": "run-a"}}, "run-a", True, False),  # no renew time: protects nothing
    ],
)
def test_who_holds_a_lease(
    body: dict[str, object] | None, holder: str | None, expired: bool, other_holds_it: bool
) -> None:
    holding = holding_of(body, NOW)
    assert (holding.holder, holding.expired, holding.held_by_other("me")) == (holder, expired, other_holds_it)


def test_seconds_left_counts_down_to_expiry() -> None:
    assert holding_of(lease("run-a", 20), NOW).seconds_left(NOW) == pytest.approx(40)
    assert holding_of(lease("run-a", 90), NOW).seconds_left(NOW) == 0


def test_taking_a_new_lease_names_the_service_and_the_holder() -> None:
    body = held_lease(None, service="svc", namespace="ns", rollout_id="run-b", duration_seconds=30, now=NOW)
    assert body["metadata"]["name"] == "svc-rollout-lock"
    assert body["spec"]["holderIdentity"] == "run-b"
    assert body["spec"]["leaseDurationSeconds"] == 30
    assert body["spec"]["leaseTransitions"] == 0
    assert holding_of(body, NOW + timedelta(seconds=29)).held_by_other("run-c")
    assert not holding_of(body, NOW + timedelta(seconds=31)).held_by_other("run-c")


def test_taking_over_an_expired_lease_counts_a_transition_and_keeps_the_version() -> None:
    body = held_lease(
        lease("run-a", 120), service="svc", namespace="ns", rollout_id="run-b", duration_seconds=60, now=NOW
    )
    assert (body["spec"]["holderIdentity"], body["spec"]["leaseTransitions"]) == ("run-b", 1)
    assert body["metadata"]["resourceVersion"] == "7"


def test_renewing_keeps_the_acquire_time() -> None:
    before = lease("run-a", 10)
    body = held_lease(before, service="svc", namespace="ns", rollout_id="run-a", duration_seconds=60, now=NOW)
    assert body["spec"]["acquireTime"] == before["spec"]["acquireTime"]  # type: ignore[index]
    assert body["spec"]["renewTime"] == "2026-12-01T08:00:00.000000Z"


def test_a_released_lease_is_free() -> None:
    assert holding_of(released_lease(lease("run-a", 1)), NOW).holder is None
