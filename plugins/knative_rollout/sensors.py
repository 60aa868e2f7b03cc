"""Sensors that wait for a Knative Revision or Service to be Ready, deferrable by default.

Deferrable by default, as the issue asks: Airflow's own ``operators.default_deferrable`` is ``False``
unless set, so reading it would make these sensors hold worker slots by default. Pass
``deferrable=False`` (or set it in ``default_args``) to poke from a worker instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from knative_rollout.exceptions import (
    KnativeApiRejectedError,
    KnativeRevisionFailedError,
    KnativeTemporaryError,
    permanent_input_errors,
)
from knative_rollout.operators.base import CONNECTION_FIELDS, INLINE_WAIT_SECONDS, KnativeConnectionOperator
from knative_rollout.resources import check_namespace, check_revision_name, check_service_name
from knative_rollout.triggers import (
    KnativeRevisionReadyTrigger,
    KnativeServiceReadyTrigger,
    _KnativeWatchTrigger,
    run_inline,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class _KnativeReadySensor(KnativeConnectionOperator, BaseSensorOperator):
    """Poke a Knative object's readiness through its trigger's decision, or defer to that trigger.

    Subclasses name the trigger that decides readiness (its ``resource`` is what is read) and the check
    of the object's name.
    """

    template_fields: tuple[str, ...] = ("name", "namespace", *CONNECTION_FIELDS)
    trigger_class: type[_KnativeWatchTrigger]
    check_name: Callable[[str], object]

    def __init__(
        self,
        *,
        name: str,
        namespace: str = "default",
        deferrable: bool = True,
        inline_wait_seconds: float = INLINE_WAIT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.namespace = namespace
        self.deferrable = deferrable
        self.inline_wait_seconds = inline_wait_seconds

    def validate(self) -> None:
        """Check the name and namespace before any API call."""
        with permanent_input_errors():
            check_namespace(self.namespace)
            type(self).check_name(self.name)

    def trigger(self) -> _KnativeWatchTrigger:
        """Return the trigger that decides readiness for this sensor."""
        return self.trigger_class(
            name=self.name,
            namespace=self.namespace,
            timeout_seconds=float(self.timeout),
            hook_params=self.trigger_hook_params(),
        )

    def current_event(self) -> dict[str, Any] | None:
        """Return the trigger's final event for the object as it is now; ``None`` while still waiting.

        An object that does not exist yet is waited for (the trigger's "deleted" applies to a watch only).
        """
        obj = self.hook.find(self.trigger_class.resource, self.name, self.namespace)
        event = None if obj is None else self.trigger().decide(obj)
        return None if event is None else dict(event.payload)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """Return whether the object is Ready (with the event as the task's result); raise if it failed."""
        event = self.current_event()
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.execute_complete(context, event))

    def execute(self, context: Context) -> Any:
        """Validate, then poke, or watch here briefly and defer to the trigger if that was not enough.

        Watching here first keeps quick waits from deferring (see
        :meth:`~knative_rollout.operators.base.KnativeBaseOperator.wait` for the Airflow race it avoids).
        """
        self.validate()
        self.hook.check_connection()
        self.hook.check_namespace_exists(self.namespace)
        if not self.deferrable:
            return super().execute(context)
        event = run_inline(self.trigger(), within=self.inline_wait_seconds)
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
        if event.get("permanent"):
            raise KnativeApiRejectedError(str(event.get("message")))
        raise KnativeTemporaryError(f"{event.get('message')}; retry the task")


class KnativeRevisionReadySensor(_KnativeReadySensor):
    """Wait until a Knative Revision is Ready; fail at once with Knative's reason if it failed.

    Takes the connection parameters of :class:`~knative_rollout.operators.base.KnativeConnectionOperator`
    (``kubernetes_conn_id``, or GKE's ``gcp_conn_id``, ``project_id``, ``location``, ``cluster_name``).

    :param revision_name: the revision. (templated)
    :param namespace: its namespace. (templated)
    :param deferrable: wait in the triggerer (default).
    :param inline_wait_seconds: when deferrable, watch this long in the worker before deferring.
    """

    trigger_class = KnativeRevisionReadyTrigger
    check_name = staticmethod(check_revision_name)

    def __init__(self, *, revision_name: str, **kwargs: Any) -> None:
        super().__init__(name=revision_name, **kwargs)


class KnativeServiceReadySensor(_KnativeReadySensor):
    """Wait until a Knative Service has reconciled its latest spec and is Ready.

    Takes the connection parameters of :class:`~knative_rollout.operators.base.KnativeConnectionOperator`
    (``kubernetes_conn_id``, or GKE's ``gcp_conn_id``, ``project_id``, ``location``, ``cluster_name``).

    :param service_name: the service. (templated)
    :param namespace: its namespace. (templated)
    :param deferrable: wait in the triggerer (default).
    :param inline_wait_seconds: when deferrable, watch this long in the worker before deferring.
    """

    trigger_class = KnativeServiceReadyTrigger
    check_name = staticmethod(check_service_name)

    def __init__(self, *, service_name: str, **kwargs: Any) -> None:
        super().__init__(name=service_name, **kwargs)
