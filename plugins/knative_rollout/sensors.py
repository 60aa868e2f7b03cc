"""Sensors that wait for a Knative Revision or Service to be Ready, deferrable by default.

Deferrable by default, as the issue asks: Airflow's own ``operators.default_deferrable`` is ``False``
unless set, so reading it would make these sensors hold worker slots by default. Pass
``deferrable=False`` (or set it in ``default_args``) to poke from a worker instead.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from knative_rollout.exceptions import (
    KnativeRevisionFailedError,
    KnativeTemporaryError,
    permanent_input_errors,
)
from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import check_namespace, check_revision_name, check_service_name
from knative_rollout.triggers import (
    KnativeRevisionReadyTrigger,
    KnativeServiceReadyTrigger,
    _KnativeWatchTrigger,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class _KnativeReadySensor(BaseSensorOperator):
    """Poke a Knative object's readiness through its trigger's decision, or defer to that trigger."""

    template_fields: tuple[str, ...] = ("name", "namespace", "kubernetes_conn_id")

    def __init__(
        self,
        *,
        name: str,
        namespace: str = "default",
        kubernetes_conn_id: str = KnativeServingHook.default_conn_name,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> KnativeServingHook:
        """Return the sync hook for this task's connection."""
        return KnativeServingHook(kubernetes_conn_id=self.kubernetes_conn_id)

    def validate(self) -> None:
        """Check names before any API call."""
        with permanent_input_errors():
            check_namespace(self.namespace)

    def trigger(self) -> _KnativeWatchTrigger:
        """Return the trigger that decides readiness for this sensor."""
        raise NotImplementedError

    def read(self) -> dict[str, Any] | None:
        """Return the watched object now, or ``None`` when it does not exist."""
        raise NotImplementedError

    def current_event(self) -> dict[str, Any] | None:
        """Return the trigger's final event for the object as it is now; ``None`` while still waiting.

        An object that does not exist yet is waited for (the trigger's "deleted" applies to a watch only).
        """
        obj = self.read()
        event = None if obj is None else self.trigger().decide(obj)
        return None if event is None else dict(event.payload)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """Return whether the object is Ready (with the event as the task's result); raise if it failed."""
        event = self.current_event()
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.execute_complete(context, event))

    def execute(self, context: Context) -> Any:
        """Validate, then succeed at once, poke, or defer to the trigger."""
        self.validate()
        self.hook.check_connection()
        if not self.deferrable:
            return super().execute(context)
        event = self.current_event()
        if event is not None:
            return self.execute_complete(context, event)
        self.defer(
            trigger=self.trigger(),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Return the event on success; fail permanently when Knative reported a failure."""
        if event.get("status") == "success":
            return event
        if event.get("status") == "failed":
            raise KnativeRevisionFailedError(str(event.get("message")))
        raise KnativeTemporaryError(f"{event.get('message')}; retry the task")


class KnativeRevisionReadySensor(_KnativeReadySensor):
    """Wait until a Knative Revision is Ready; fail at once with Knative's reason if it failed.

    :param revision_name: the revision. (templated)
    :param namespace: its namespace. (templated)
    :param kubernetes_conn_id: Airflow ``kubernetes`` connection. (templated)
    :param deferrable: wait in the triggerer (default).
    """

    def __init__(self, *, revision_name: str, **kwargs: Any) -> None:
        super().__init__(name=revision_name, **kwargs)

    def validate(self) -> None:
        """Check the revision name and namespace."""
        super().validate()
        with permanent_input_errors():
            check_revision_name(self.name)

    def trigger(self) -> KnativeRevisionReadyTrigger:
        """Return the revision trigger."""
        return KnativeRevisionReadyTrigger(
            name=self.name,
            namespace=self.namespace,
            timeout_seconds=float(self.timeout),
            hook_params={"kubernetes_conn_id": self.kubernetes_conn_id},
        )

    def read(self) -> dict[str, Any] | None:
        """Return the Revision."""
        return self.hook.find_revision(self.name, self.namespace)


class KnativeServiceReadySensor(_KnativeReadySensor):
    """Wait until a Knative Service has reconciled its latest spec and is Ready.

    :param service_name: the service. (templated)
    :param namespace: its namespace. (templated)
    :param kubernetes_conn_id: Airflow ``kubernetes`` connection. (templated)
    :param deferrable: wait in the triggerer (default).
    """

    def __init__(self, *, service_name: str, **kwargs: Any) -> None:
        super().__init__(name=service_name, **kwargs)

    def validate(self) -> None:
        """Check the service name and namespace."""
        super().validate()
        with permanent_input_errors():
            check_service_name(self.name)

    def trigger(self) -> KnativeServiceReadyTrigger:
        """Return the service trigger."""
        return KnativeServiceReadyTrigger(
            name=self.name,
            namespace=self.namespace,
            timeout_seconds=float(self.timeout),
            hook_params={"kubernetes_conn_id": self.kubernetes_conn_id},
        )

    def read(self) -> dict[str, Any] | None:
        """Return the Service."""
        return self.hook.find_service(self.name, self.namespace)
