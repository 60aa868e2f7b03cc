"""Take a Service's rollout lock at the start of a rollout: KnativeLockOperator.

One rollout changes a Service at a time. A second one waits for the lock, deferred (no worker slot held),
up to ``lock_timeout``, or fails at once. A lock whose rollout stopped renewing it (a killed worker, a run
marked failed mid-wait) expires and is taken over; if that rollout had left the Service mid-way (a
candidate deployed or holding some traffic), it is rolled back to its stable revision in the same step,
so the new rollout starts from production as users see it. The takeover is written in the history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knative_rollout.exceptions import KnativeInputError, KnativeLockHeldError, permanent_input_errors
from knative_rollout.locks import LockResult
from knative_rollout.operators.base import KnativeBaseOperator, held_message
from knative_rollout.resources import STABLE_TAG, parse_int, render_traffic
from knative_rollout.triggers import KnativeLockFreeTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from knative_rollout.policy import RolloutState

ON_CONFLICT = ("wait", "fail")


class KnativeLockOperator(KnativeBaseOperator):
    """Take the Service's rollout lock for ``rollout_id``; wait for it or fail when another rollout has it.

    Taking it again for the same rollout (a retry, a cleared and rerun task) renews it.

    :param rollout_id: the rollout that takes the lock (required). (templated)
    :param on_conflict: ``"wait"`` (deferred, up to ``lock_timeout``) or ``"fail"`` at once. (templated)
    :param lock_timeout: seconds to wait for the lock before failing. (templated)
    :return: ``{"rollout_id", "taken_over_from"}``.
    """

    template_fields = (*KnativeBaseOperator.template_fields, "on_conflict", "lock_timeout")
    ui_color = "#ffe8cc"

    def __init__(self, *, on_conflict: str = "wait", lock_timeout: float | str = 3600, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_conflict = on_conflict
        self.lock_timeout = lock_timeout

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the input, then take the lock or wait for it."""
        self.check_lock_input()
        self.validate_target()
        if not self.rollout_id:
            raise KnativeInputError(
                f"{type(self).__name__} needs a rollout_id: the lock is held by a rollout, not by a task "
                "(progressive_rollout sets it to dag_id/run_id/group_id)"
            )
        return self._take(context)

    def check_lock_input(self) -> None:
        """Check ``on_conflict`` and ``lock_timeout`` (templated values arrive as text)."""
        if self.on_conflict not in ON_CONFLICT:
            raise KnativeInputError(
                f"on_conflict must be one of {list(ON_CONFLICT)}, got {self.on_conflict!r}"
            )
        with permanent_input_errors():
            self.lock_timeout = parse_int(self.lock_timeout, "lock_timeout", minimum=0)

    def _take(self, context: Context) -> Any:
        assert self.rollout_id is not None
        result = self.lock.acquire(self.rollout_id, int(self.lock_duration))
        if result.acquired:
            return self._taken(context, result)
        message = held_message(self.service_path, result.before, self.rollout_id)
        if self.on_conflict == "fail":
            raise KnativeLockHeldError(message)
        self.log.info("%s; waiting up to %ss", message, self.lock_timeout)
        trigger = KnativeLockFreeTrigger(
            name=self.lock.name,
            namespace=self.namespace,
            rollout_id=self.rollout_id,
            timeout_seconds=float(self.lock_timeout),
            hook_params=self.trigger_hook_params(),
        )
        # Its own method name, so that an operator built on this one keeps execute_complete for itself.
        return self.wait(context, trigger, "lock_free")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Try again once the lock looked free (kept for tasks deferred before ``lock_free`` existed)."""
        return self.lock_free(context, event)

    def lock_free(self, context: Context, event: dict[str, Any]) -> Any:
        """Try again once the lock looked free (another rollout may have been faster: then wait again)."""
        if event.get("status") != "success":
            raise KnativeLockHeldError(
                f"the rollout lock of Knative Service {self.service_path} did not become free: "
                f"{event.get('message')}. Nothing was changed; run again later"
            )
        return self._take(context)

    def _taken(self, context: Context, result: LockResult) -> dict[str, Any]:
        """Record a takeover on the Service, rolling back what the abandoned rollout left half-done."""
        previous = result.taken_over_from
        service = self.hook.find_service(self.service_name, self.namespace)
        self.push_urls(context, None if service is None else service.get("status", {}).get("url"))
        if service is not None:
            self.ensure_managed(service)
            self.rewrite(
                context,
                lambda current, state: self._end_abandoned(current, state, previous),
                record_always=previous is not None,
                starts_rollout=True,
            )
        if previous:
            self.log.warning(
                "Took over the rollout lock of %s from %s (expired)", self.service_path, previous
            )
        return {"rollout_id": self.rollout_id, "taken_over_from": previous}

    def _end_abandoned(
        self, service: dict[str, Any], state: RolloutState, previous: str | None
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        """Roll back a rollout that holds no lock any more but left the Service mid-way."""
        abandoned = state.is_active() and state.rollout_id not in (None, self.rollout_id)
        if not abandoned:
            if previous is None:
                return None
            detail = (
                f"rollout lock taken over from {previous}, whose lease expired; {self.rollout_id} holds it"
            )
            return service["spec"], state, "LockTakenOver", detail
        spec = dict(service["spec"])
        if state.stable:
            spec["traffic"] = render_traffic({state.stable: 100}, {state.stable: STABLE_TAG})
        why = f"lease of {previous} expired" if previous else "it no longer holds the rollout lock"
        detail = (
            f"rollout {state.rollout_id} was abandoned ({why}) in phase {state.phase.value} with candidate "
            f"{state.candidate}; all traffic back to {state.stable} before {self.rollout_id} starts"
        )
        ended = state.rolled_back(state.stable) if state.stable else state.failed()
        return spec, ended, "LockTakenOver", detail
