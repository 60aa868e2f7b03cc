"""The per-Service rollout lock: a ``coordination.k8s.io/v1`` Lease taken, renewed and released by a rollout.

The Lease is held by a rollout id, not by a process: every task of the rollout renews it (and a deferred
wait renews it from the triggerer), so the lock survives the gaps between tasks and a worker's death
frees it only after its duration. Every change is one optimistic-concurrency create or replace: of two
rollouts that ask at once, exactly one wins, the other sees the winner. What a holder may *write on the
Service* is checked against the Service's own rollout record (the lock only says who goes first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from knative_rollout.exceptions import KnativeTemporaryError, KnativeWatchRefusedError
from knative_rollout.resources import LEASE, LeaseHolding, held_lease, holding_of, lease_name, released_lease

if TYPE_CHECKING:
    from knative_rollout.hooks import AsyncKnativeServingHook, KnativeServingHook

CONFLICT_ATTEMPTS = 5


@dataclass(frozen=True)
class LockResult:
    """The outcome of asking for the lock.

    :param acquired: whether ``rollout_id`` holds the Lease now.
    :param before: who held it just before (an expired holder means it was taken over).
    :param rollout_id: the rollout that asked.
    """

    acquired: bool
    before: LeaseHolding
    rollout_id: str

    @property
    def taken_over_from(self) -> str | None:
        """Return the rollout whose expired Lease was taken over, if that happened.

        A rollout that finds its own Lease expired (a retry or rerun that started after the Lease's
        duration) renews it: that is no takeover.
        """
        if self.acquired and self.before.holder not in (None, self.rollout_id) and self.before.expired:
            return self.before.holder
        return None


class RolloutLock:
    """The rollout Lease of one Knative Service.

    :param hook: the sync hook that talks to the API.
    :param service: the Knative Service name.
    :param namespace: its namespace.
    """

    def __init__(self, hook: KnativeServingHook, service: str, namespace: str) -> None:
        self.hook = hook
        self.service = service
        self.namespace = namespace
        self.name = lease_name(service)

    def read(self) -> dict[str, Any] | None:
        """Return the Lease, or ``None`` when no rollout ever locked the Service."""
        return self.hook.find(LEASE, self.name, self.namespace)

    def holding(self) -> LeaseHolding:
        """Return who holds the lock now."""
        return holding_of(self.read(), datetime.now(UTC))

    def acquire(self, rollout_id: str, duration_seconds: int) -> LockResult:
        """Take, take over (when expired) or renew the lock for ``rollout_id``; never from a live holder."""
        for _ in range(CONFLICT_ATTEMPTS):
            lease = self.read()
            now = datetime.now(UTC)
            before = holding_of(lease, now)
            if before.held_by_other(rollout_id):
                return LockResult(acquired=False, before=before, rollout_id=rollout_id)
            body = held_lease(
                lease,
                service=self.service,
                namespace=self.namespace,
                rollout_id=rollout_id,
                duration_seconds=duration_seconds,
                now=now,
            )
            written = (
                self.hook.create_object(LEASE, body)
                if lease is None
                else self.hook.replace_object(LEASE, body)
            )
            if written is not None:
                return LockResult(acquired=True, before=before, rollout_id=rollout_id)
        raise KnativeTemporaryError(
            f"Lease {self.namespace}/{self.name} kept changing while taking it ({CONFLICT_ATTEMPTS} "
            "conflicts); another rollout is taking it at the same moment, retry"
        )

    def release(self, rollout_id: str) -> bool:
        """Free the lock if ``rollout_id`` holds it (also once expired); return whether it did."""
        for _ in range(CONFLICT_ATTEMPTS):
            lease = self.read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != rollout_id:
                return False
            if self.hook.replace_object(LEASE, released_lease(lease)) is not None:
                return True
        raise KnativeTemporaryError(
            f"Lease {self.namespace}/{self.name} kept changing while releasing it; retry"
        )

    def delete_if_free(self) -> bool:
        """Delete the Lease unless a live rollout holds it (a teardown of the whole Service does this)."""
        lease = self.read()
        if lease is None or holding_of(lease, datetime.now(UTC)).held_by_other(None):
            return False
        return self.hook.delete_object(LEASE, self.name, self.namespace)


async def read_lease_async(hook: AsyncKnativeServingHook, name: str, namespace: str) -> dict[str, Any] | None:
    """Return the Lease read from a trigger, or ``None`` when it does not exist (free).

    :raises KnativeWatchRefusedError: when the API refuses for good (403: no permission; 404 on the
        resource type itself is reported the same way by the watch that follows).
    """
    from kubernetes_asyncio import client as async_client
    from kubernetes_asyncio.client.exceptions import ApiException

    async with hook.get_conn() as api_client:
        api = async_client.CustomObjectsApi(api_client)
        try:
            lease: dict[str, Any] = await api.get_namespaced_custom_object(
                LEASE.group, LEASE.version, namespace, LEASE.plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                raise KnativeWatchRefusedError(
                    f"reading Lease {namespace}/{name} is forbidden (HTTP 403): grant get, list, watch, "
                    "create, update on leases.coordination.k8s.io in that namespace "
                    "(include/manifests/rbac.yaml)",
                    reason="Forbidden",
                ) from error
            raise
    return lease


async def renew_async(
    hook: AsyncKnativeServingHook, service: str, namespace: str, rollout_id: str, duration_seconds: int
) -> bool:
    """Renew the lock from a trigger while a rollout's wait is deferred; return whether it is still held.

    Only a holder renews: a Lease that was released or taken over is left alone.
    """
    from kubernetes_asyncio import client as async_client
    from kubernetes_asyncio.client.exceptions import ApiException

    name = lease_name(service)
    async with hook.get_conn() as api_client:
        api = async_client.CustomObjectsApi(api_client)
        args = (LEASE.group, LEASE.version, namespace, LEASE.plural, name)
        try:
            lease = await api.get_namespaced_custom_object(*args)
            now = datetime.now(UTC)
            holding = holding_of(lease, now)
            if holding.holder != rollout_id:
                return False
            body = held_lease(
                lease,
                service=service,
                namespace=namespace,
                rollout_id=rollout_id,
                duration_seconds=duration_seconds,
                now=now,
            )
            await api.replace_namespaced_custom_object(*args, body)
        except ApiException as error:
            if error.status in (404, 409):
                return error.status == 409
            raise
    return True
