"""The rollout lock: a ``coordination.k8s.io/v1`` Lease per Service, and who holds it when.

Pure: the Lease body, and whether it is held, by whom and until when, computed from its fields and the
caller's clock. A holder keeps the Lease by renewing it (``renewTime``) before ``leaseDurationSeconds``
pass; one that stopped renewing (a killed worker) loses it at that moment to whoever asks next. Clocks
of the machines that renew and read a Lease must agree to well within its duration (NTP is enough).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from knative_rollout.resources.manifests import MANAGED_BY_LABEL, MANAGED_BY_VALUE, Resource

LEASE = Resource("coordination.k8s.io", "v1", "leases", "Lease")
LEASE_SERVICE_LABEL = "rollout.knative-rollout.dev/service"
DEFAULT_LEASE_SECONDS = 300
"""How long a rollout keeps the lock without renewing it: long enough to cover the scheduling gap
between two of its tasks on a busy Airflow, short enough that a killed run blocks the Service briefly."""


def lease_name(service: str) -> str:
    """Return the name of the Service's rollout Lease."""
    return f"{service}-rollout-lock"


def micro_time(moment: datetime) -> str:
    """Return ``moment`` as a Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime | None:
    """Return a Kubernetes Time or MicroTime as an aware datetime, or ``None`` when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseHolding:
    """Who holds a Lease, as seen at one moment.

    :param holder: the rollout id that holds it, or ``None`` when it is free (released or never taken).
    :param expired: whether the holder stopped renewing for longer than the Lease's duration.
    :param since: when the holder acquired it (RFC 3339), for messages.
    :param expires: when it expires unless renewed.
    """

    holder: str | None
    expired: bool = False
    since: str | None = None
    expires: datetime | None = None

    def held_by_other(self, rollout_id: str | None) -> bool:
        """Return whether someone other than ``rollout_id`` holds it now (and has not let it expire)."""
        return self.holder is not None and not self.expired and self.holder != rollout_id

    def seconds_left(self, now: datetime) -> float:
        """Return how long until it expires unless renewed (0 when free or expired)."""
        if self.holder is None or self.expired or self.expires is None:
            return 0.0
        return max(0.0, (self.expires - now).total_seconds())


def holding_of(lease: Mapping[str, Any] | None, now: datetime) -> LeaseHolding:
    """Return who holds ``lease`` at ``now``; a missing Lease or one with no holder is free."""
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity") or None
    if holder is None:
        return LeaseHolding(holder=None)
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        # A Lease nobody can say is fresh protects nothing: treat it as expired.
        return LeaseHolding(holder=str(holder), expired=True, since=spec.get("acquireTime"))
    expires = renewed + timedelta(seconds=duration)
    return LeaseHolding(
        holder=str(holder), expired=expires <= now, since=spec.get("acquireTime"), expires=expires
    )


def held_lease(
    lease: Mapping[str, Any] | None,
    *,
    service: str,
    namespace: str,
    rollout_id: str,
    duration_seconds: int,
    now: datetime,
) -> dict[str, Any]:
    """Return ``lease`` (or a new one) held by ``rollout_id`` from ``now``: taken, taken over or renewed."""
    body: dict[str, Any] = dict(lease) if lease else {}
    body.setdefault("apiVersion", LEASE.api_version)
    body.setdefault("kind", LEASE.kind)
    metadata = dict(body.get("metadata") or {})
    metadata.update({"name": lease_name(service), "namespace": namespace})
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        LEASE_SERVICE_LABEL: service,
    }
    body["metadata"] = metadata
    spec = dict(body.get("spec") or {})
    current = holding_of(lease, now)
    if current.holder != rollout_id or current.expired:
        spec["acquireTime"] = micro_time(now)
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if current.holder else 0)
    spec.update(
        {"holderIdentity": rollout_id, "leaseDurationSeconds": duration_seconds, "renewTime": micro_time(now)}
    )
    body["spec"] = spec
    return body


def released_lease(lease: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``lease`` with no holder (kept, so its transitions count on)."""
    body = dict(lease)
    spec = {key: value for key, value in (lease.get("spec") or {}).items() if key != "holderIdentity"}
    body["spec"] = spec
    return body
