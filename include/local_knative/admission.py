"""Apply Knative Serving's defaulting and validation webhooks to objects before they are stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from local_knative.kinds import Kind


def admit(kind: Kind, operation: str, obj: dict, old: dict | None) -> dict:
    """Default and validate ``obj`` as Knative's webhooks do (work in progress: returns ``obj`` unchanged).

    :param kind: the kind of ``obj``.
    :param operation: ``"CREATE"`` or ``"UPDATE"``.
    :param obj: the object the client sent.
    :param old: the stored object for an UPDATE, else None.
    """
    return obj
