"""What every Knative rollout operator shares: connection, validation, state writes, deferral."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from knative_rollout.exceptions import (
    KnativeApiRejectedError,
    KnativeInputError,
    KnativeLockHeldError,
    KnativeRevisionFailedError,
    KnativeRolloutConflictError,
    KnativeTemporaryError,
    permanent_input_errors,
)
from knative_rollout.hooks import KnativeServingHook, utc_now
from knative_rollout.links import SERVICE_URL_XCOM_KEY, TAG_URL_XCOM_KEY, KnativeServiceLink
from knative_rollout.locks import LockResult, RolloutLock
from knative_rollout.policy import RolloutState
from knative_rollout.resources import (
    DEFAULT_LEASE_SECONDS,
    LeaseHolding,
    RevisionInfo,
    apply_state,
    check_namespace,
    check_rollout_id,
    check_service_name,
    is_managed,
    parse_int,
    revision_info,
    state_from_annotations,
    traffic_keys,
)
from knative_rollout.triggers import KnativeServiceReadyTrigger, run_inline

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

CONNECTION_FIELDS = ("kubernetes_conn_id", "gcp_conn_id", "project_id", "location", "cluster_name")
INLINE_WAIT_SECONDS = 5.0
"""How long a deferrable task watches in the worker before it defers (operators' and sensors' default)."""


class KnativeConnectionOperator(BaseOperator):
    """Base of every task that reaches a Knative cluster: through a ``kubernetes`` connection, or on GKE.

    The rollout operators, the sensors and ``LoadTestGateOperator`` take these parameters, build their
    hook from them, and hand their triggers the same way in (:meth:`trigger_hook_params`).

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection. (templated)
    :param gcp_conn_id: Google Cloud connection, for GKE. (templated)
    :param project_id: GKE project. (templated)
    :param location: GKE location. (templated)
    :param cluster_name: GKE cluster; set it to reach the cluster through the google provider. (templated)
    :param impersonation_chain: service account(s) to impersonate on GKE.
    """

    template_fields: tuple[str, ...] = CONNECTION_FIELDS

    def __init__(
        self,
        *,
        kubernetes_conn_id: str = KnativeServingHook.default_conn_name,
        gcp_conn_id: str = "google_cloud_default",
        project_id: str | None = None,
        location: str | None = None,
        cluster_name: str | None = None,
        impersonation_chain: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.gcp_conn_id = gcp_conn_id
        self.project_id = project_id
        self.location = location
        self.cluster_name = cluster_name
        self.impersonation_chain = impersonation_chain

    @cached_property
    def hook(self) -> KnativeServingHook:
        """Return the sync hook for this task's connection."""
        return KnativeServingHook(
            kubernetes_conn_id=self.kubernetes_conn_id,
            gcp_conn_id=self.gcp_conn_id,
            project_id=self.project_id,
            location=self.location,
            cluster_name=self.cluster_name,
            impersonation_chain=self.impersonation_chain,
        )

    def trigger_hook_params(self) -> dict[str, Any]:
        """Return what a trigger needs to connect the same way (GKE: endpoint resolved here, once)."""
        if not self.cluster_name:
            return {"kubernetes_conn_id": self.kubernetes_conn_id}
        cluster_url, ssl_ca_cert = self.hook.gke_cluster_info
        return {
            "cluster_url": cluster_url,
            "ssl_ca_cert": ssl_ca_cert,
            "gcp_conn_id": self.gcp_conn_id,
            "impersonation_chain": self.impersonation_chain,
        }


def writer_of(context: Context) -> str:
    """Return who writes from this task, for the Service's history: ``dag_id/run_id/task_id/try``."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    task = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}[{map_index}]"
    return f"{ti.dag_id}/{ti.run_id}/{task}/{ti.try_number}"


def held_message(service: str, holding: LeaseHolding, rollout_id: str | None) -> str:
    """Return why a step may not change a Service whose lock another rollout holds."""
    mine = f"this rollout ({rollout_id})" if rollout_id else "this task"
    return (
        f"Knative Service {service} is held by another rollout: {holding.holder} (lock taken "
        f"{holding.since}, expires {holding.expires:%Y-%m-%dT%H:%M:%SZ} unless renewed); {mine} changed "
        "nothing. Wait for it to finish (progressive_rollout(on_conflict='wait')) or retry later; a lock "
        "whose rollout was killed expires on its own"
        if holding.expires
        else f"Knative Service {service} is held by another rollout: {holding.holder}; {mine} changed nothing"
    )


class KnativeBaseOperator(KnativeConnectionOperator):
    """Base of the rollout operators: one Knative Service, a connection, and waits that defer.

    Takes the connection parameters of :class:`KnativeConnectionOperator` too.

    Inside a rollout (``rollout_id`` set, as :func:`~knative_rollout.task_groups.progressive_rollout`
    does), a step renews the rollout's lock before it writes (and its deferred waits renew it), and
    refuses to write when the Service's rollout record names another rollout. Outside one, a step
    refuses to write while a rollout holds the lock.

    :param service_name: Knative Service name (DNS-1035). (templated)
    :param namespace: its namespace. (templated)
    :param rollout_id: the rollout this step belongs to; empty for a step on its own. (templated)
    :param lock_duration: seconds the rollout's lock lasts without renewal (see
        :data:`~knative_rollout.resources.DEFAULT_LEASE_SECONDS`). (templated)
    :param deferrable: wait in the triggerer (default) instead of holding a worker slot.
    :param wait_timeout: seconds to wait for Knative to reach the requested state.
    :param inline_wait_seconds: when deferrable, watch this long in the worker before deferring (see
        :meth:`wait`); 0 defers at once.
    """

    template_fields: tuple[str, ...] = (
        "service_name",
        "namespace",
        "rollout_id",
        "lock_duration",
        *CONNECTION_FIELDS,
    )
    operator_extra_links: tuple[KnativeServiceLink, ...] = (KnativeServiceLink(),)
    ui_color = "#cce8ff"

    def __init__(
        self,
        *,
        service_name: str,
        namespace: str = "default",
        rollout_id: str | None = None,
        lock_duration: int | str = DEFAULT_LEASE_SECONDS,
        deferrable: bool = True,
        wait_timeout: float = 600,
        inline_wait_seconds: float = INLINE_WAIT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.namespace = namespace
        self.rollout_id = rollout_id
        self.lock_duration = lock_duration
        self.deferrable = deferrable
        self.wait_timeout = wait_timeout
        self.inline_wait_seconds = inline_wait_seconds

    def validate_target(self) -> None:
        """Check the Service name, namespace, rollout, connection and guardrail, before any API call."""
        with permanent_input_errors():
            check_service_name(self.service_name)
            check_namespace(self.namespace)
            self.lock_duration = parse_int(self.lock_duration, "lock_duration", minimum=1)
            # A template that rendered nothing (no rollout) reads as no rollout, not as a rollout named "".
            if self.rollout_id is not None and str(self.rollout_id) != "":
                self.rollout_id = check_rollout_id(self.rollout_id)
            else:
                self.rollout_id = None
        self.hook.check_connection()
        with permanent_input_errors():
            self.guardrails.check_namespace(self.namespace)

    @cached_property
    def guardrails(self) -> Any:
        """Return the guardrails configured for this connection."""
        return self.hook.load_guardrails()

    def managed_service(self) -> dict[str, Any]:
        """Return the Service, refusing one this provider did not create (it carries no ownership label)."""
        service = self.hook.get_service(self.service_name, self.namespace)
        self.ensure_managed(service)
        return service

    def ensure_managed(self, service: Mapping[str, Any]) -> None:
        """Refuse to change a Service that does not carry the ownership label."""
        if not is_managed(service):
            raise KnativeInputError(
                f"Knative Service {self.namespace}/{self.service_name} is not managed by knative-rollout (no "
                "label app.kubernetes.io/managed-by=knative-rollout); refusing to change it. Add the label "
                "to hand it over, or use another service name"
            )

    @cached_property
    def lock(self) -> RolloutLock:
        """Return the Service's rollout lock."""
        return RolloutLock(self.hook, self.service_name, self.namespace)

    @property
    def service_path(self) -> str:
        """Return ``namespace/name`` of the Service, for messages."""
        return f"{self.namespace}/{self.service_name}"

    def hold_lock(self) -> LockResult | None:
        """Renew this rollout's lock before a write; outside a rollout, check that no rollout holds it.

        :raises KnativeLockHeldError: when another rollout holds it (nothing was changed).
        """
        if self.rollout_id:
            result = self.lock.acquire(self.rollout_id, int(self.lock_duration))
            if not result.acquired:
                raise KnativeLockHeldError(held_message(self.service_path, result.before, self.rollout_id))
            return result
        holding = self.lock.holding()
        if holding.held_by_other(None):
            raise KnativeLockHeldError(held_message(self.service_path, holding, None))
        return None

    def lock_renewal(self) -> dict[str, Any] | None:
        """Return what a deferred wait needs to renew this rollout's lock (``None`` outside a rollout)."""
        if not self.rollout_id:
            return None
        return {
            "service": self.service_name,
            "namespace": self.namespace,
            "rollout_id": self.rollout_id,
            "duration_seconds": int(self.lock_duration),
        }

    def check_owner(self, state: RolloutState) -> None:
        """Refuse to write when the Service's rollout record names another rollout than this step's.

        :raises KnativeRolloutConflictError: naming the other rollout and since when.
        """
        if self.rollout_id and state.rollout_id != self.rollout_id:
            other = state.rollout_id or "a change made outside any rollout"
            raise KnativeRolloutConflictError(
                f"Knative Service {self.service_path} is now rolled out by {other} (since "
                f"{state.rollout_since or 'unknown'}, phase {state.phase.value}), not by this rollout "
                f"({self.rollout_id}); this step changed nothing. The other rollout decides what happens to "
                "it; run this rollout again once it has finished"
            )

    def recorded_state(self) -> RolloutState:
        """Return the rollout state recorded on the Service now."""
        service = self.hook.get_service(self.service_name, self.namespace)
        return state_from_annotations(service["metadata"].get("annotations"))

    def revision_infos(self) -> dict[str, RevisionInfo]:
        """Return the Service's revisions by name."""
        infos = (revision_info(item) for item in self.hook.list_revisions(self.service_name, self.namespace))
        return {info.name: info for info in infos}

    def rewrite(
        self,
        context: Context,
        compute: Callable[
            [dict[str, Any], RolloutState], tuple[dict[str, Any], RolloutState, str, str] | None
        ],
        *,
        record_always: bool = False,
        starts_rollout: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Change the Service's spec and rollout state in one optimistic-concurrency write.

        ``compute(service, state)`` gets a fresh copy of the Service and its state (again after a 409) and
        returns ``(new spec, new state, action, detail)``, or ``None`` for no change. Unless
        ``record_always``, nothing is written when traffic, template name and state position are already
        as computed, so a retry changes nothing twice. A write adds a history entry naming this task, and
        a Kubernetes Event. Inside a rollout the record must name it (:meth:`check_owner`), checked on the
        very copy that is written, unless this write ``starts_rollout`` (the deploy).
        """
        written_action: tuple[str, str] | None = None
        writer = writer_of(context)

        def mutate(service: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal written_action
            state = state_from_annotations(service["metadata"].get("annotations"))
            if not starts_rollout:
                self.check_owner(state)
            with permanent_input_errors():
                outcome = compute(service, state)
            if outcome is None:
                return None
            spec, new_state, action, detail = outcome
            if not record_always and _same_spec(service["spec"], spec) and new_state.same_position(state):
                return None
            service["spec"] = spec
            service["metadata"]["annotations"] = apply_state(
                service["metadata"].get("annotations"), new_state.recorded(utc_now(), action, detail, writer)
            )
            written_action = (action, detail)
            return service

        service, written = self.hook.update_service(self.service_name, self.namespace, mutate)
        if written and written_action is not None:
            action, detail = written_action
            self.log.info("%s: %s", action, detail)
            self.hook.record_event(service, action, detail, warning=action == "RevisionFailed")
        return service, written

    def wait(self, context: Context, trigger: BaseTrigger, method_name: str) -> Any:
        """Wait for ``trigger``'s event and continue in ``method_name``: here first, then deferred.

        The trigger runs here, watching the object from its current state on, for up to
        ``inline_wait_seconds``; only a wait that lasts longer defers (when not deferrable it runs here to
        the end). So the usual sub-second waits never defer: in Airflow 3.3 a task whose trigger fires
        within about ``[workers] min_heartbeat_interval`` (5 s) of deferring can be failed after it
        resumed, by the late "success" of its deferring run. The resumed method gets only the event
        (``dag.test()`` passes nothing else), so anything it needs travels in the trigger's ``carry``.
        """
        event = run_inline(trigger, within=self.inline_wait_seconds if self.deferrable else None)
        if event is None:
            # Airflow renders the extra links each time the task defers; an empty URL until the real one
            # is known keeps it from asking for XComs that do not exist yet.
            self.push_urls(context, None)
            self.defer(
                trigger=trigger,
                method_name=method_name,
                timeout=timedelta(seconds=self.wait_timeout + 60),
            )
        return getattr(self, method_name)(context, event)

    def wait_for_traffic(
        self, context: Context, service: Mapping[str, Any], method_name: str, **carry: Any
    ) -> Any:
        """Wait until the Service serves the traffic of its spec, then resume in ``method_name``."""
        trigger = KnativeServiceReadyTrigger(
            name=self.service_name,
            namespace=self.namespace,
            timeout_seconds=self.wait_timeout,
            expected_traffic=list(service["spec"].get("traffic") or []),
            hook_params=self.trigger_hook_params(),
            carry=carry,
            renew_lock=self.lock_renewal(),
        )
        return self.wait(context, trigger, method_name)

    def check_event(self, event: Mapping[str, Any] | None, doing: str) -> Mapping[str, Any]:
        """Return a success event; raise the matching error for any other."""
        if not event:
            raise KnativeTemporaryError(f"{doing}: the wait ended without an event; retry the task")
        status = event.get("status")
        if status == "success":
            if event.get("superseded"):
                if self.rollout_id:
                    # Inside a rollout nobody else may change the split: this is a conflict, not a success.
                    raise KnativeRolloutConflictError(
                        f"{doing}: {event.get('message')}. This rollout ({self.rollout_id}) did not write "
                        "that change; see the Service's rollout history for who did"
                    )
                self.log.warning("%s: %s", doing, event.get("message"))
            return event
        message = f"{doing}: {event.get('message')}"
        if status == "failed":
            raise KnativeRevisionFailedError(message)
        if event.get("permanent"):
            # The API refused the wait for good (403, 404): a retry would fail the same way.
            raise KnativeApiRejectedError(message)
        raise KnativeTemporaryError(f"{message}. The cluster may be slow or unreachable; retry the task")

    def push_urls(self, context: Context, url: str | None, tag_url: str | None = None) -> None:
        """Push the URLs the extra links show (empty when unknown, so the links never miss their XCom)."""
        ti = context["ti"]
        ti.xcom_push(key=SERVICE_URL_XCOM_KEY, value=url or "")
        if any(link.xcom_key == TAG_URL_XCOM_KEY for link in self.operator_extra_links):
            ti.xcom_push(key=TAG_URL_XCOM_KEY, value=tag_url or "")


def _same_spec(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Return whether two Service specs route the same and name the same template.

    The template name is a hash of its content, and the API server adds defaults to what it stores, so
    names are compared rather than whole templates.
    """
    current_name = (current.get("template") or {}).get("metadata", {}).get("name")
    desired_name = (desired.get("template") or {}).get("metadata", {}).get("name")
    return current_name == desired_name and traffic_keys(current.get("traffic") or []) == traffic_keys(
        desired.get("traffic") or []
    )
