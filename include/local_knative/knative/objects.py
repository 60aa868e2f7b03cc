"""Labels, conditions, owner references, status writes and Events shared by the Knative reconcilers."""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from local_knative import kinds
from local_knative.errors import ApiError
from local_knative.store import now_rfc3339

if TYPE_CHECKING:
    from local_knative.kinds import Kind
    from local_knative.store import Store

log = logging.getLogger(__name__)

SERVICE_LABEL = "serving.knative.dev/service"
SERVICE_UID_LABEL = "serving.knative.dev/serviceUID"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"
CONFIGURATION_UID_LABEL = "serving.knative.dev/configurationUID"
CONFIGURATION_GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
REVISION_LABEL = "serving.knative.dev/revision"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


class Conditions:
    """Edit a ``status.conditions`` list as Knative's ConditionSet does (sorted by type).

    ``lastTransitionTime`` moves only when a condition actually changes, so re-running a reconcile that
    finds nothing new produces an identical status and therefore no write.
    """

    def __init__(self, conditions: list[dict[str, Any]] | None) -> None:
        self.by_type = {
            c["type"]: c for c in copy.deepcopy(conditions or []) if isinstance(c, dict) and "type" in c
        }

    def get(self, condition_type: str) -> dict[str, Any] | None:
        """Return the condition of ``condition_type``, or None."""
        return self.by_type.get(condition_type)

    def status(self, condition_type: str) -> str:
        """Return ``"True"``, ``"False"`` or ``"Unknown"`` (Unknown when the condition is missing)."""
        condition = self.by_type.get(condition_type)
        return str(condition.get("status", "Unknown")) if condition else "Unknown"

    def mark(
        self, condition_type: str, status: str, reason: str = "", message: str = "", *, severity: str = ""
    ) -> None:
        """Set a condition; keep its transition time when nothing about it changed."""
        new: dict[str, Any] = {"type": condition_type, "status": status}
        if reason:
            new["reason"] = reason
        if message:
            new["message"] = message
        if severity:
            new["severity"] = severity
        old = self.by_type.get(condition_type)
        if old is not None and {k: v for k, v in old.items() if k != "lastTransitionTime"} == new:
            return
        new["lastTransitionTime"] = now_rfc3339()
        self.by_type[condition_type] = new

    def mark_if_missing(self, condition_type: str, status: str, reason: str = "", message: str = "") -> None:
        """Set a condition only when it has never been set."""
        if condition_type not in self.by_type:
            self.mark(condition_type, status, reason, message)

    def propagate(self, condition_type: str, child_ready: dict[str, Any]) -> None:
        """Copy a child's Ready condition (status, reason, message) into ``condition_type``."""
        if child_ready["status"] == "True":
            self.mark(condition_type, "True")
        else:
            self.mark(
                condition_type,
                child_ready["status"],
                child_ready.get("reason", ""),
                child_ready.get("message", ""),
            )

    def aggregate(self, dependents: tuple[str, ...], happy: str = "Ready") -> None:
        """Derive the happy condition: False if any dependent is False, else Unknown if any is, else True."""
        for wanted in ("False", "Unknown"):
            for dependent in dependents:
                condition = self.by_type.get(dependent) or {"status": "Unknown"}
                if condition["status"] == wanted:
                    self.mark(happy, wanted, condition.get("reason", ""), condition.get("message", ""))
                    return
        self.mark(happy, "True")

    def as_list(self) -> list[dict[str, Any]]:
        """Return the conditions sorted by type."""
        return [self.by_type[t] for t in sorted(self.by_type)]


def condition_of(obj: dict[str, Any] | None, condition_type: str = "Ready") -> dict[str, Any]:
    """Return ``obj``'s condition of ``condition_type`` (an Unknown placeholder when it has none)."""
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == condition_type:
            return dict(condition)
    return {"type": condition_type, "status": "Unknown"}


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """Return the controller ownerReference that makes ``owner`` the parent of an object."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Tell whether ``owner`` is ``obj``'s controller (the ownerReference with ``controller: true``)."""
    return any(
        ref.get("controller") and ref.get("uid") == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def write_status(store: Store, kind: Kind, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """Write ``status`` through the status subresource, only when it differs from what is stored.

    :raises ApiError: 409 when ``obj`` changed since it was read (the caller looks again).
    """
    if obj.get("status") == status:
        return obj
    meta = obj["metadata"]
    return store.replace(
        kind,
        {
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "status": status,
        },
        subresource="status",
    )


def record_event(store: Store, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
    """Write a core v1 Event about ``obj`` as Knative's controllers do (``kubectl describe`` shows it)."""
    meta = obj["metadata"]
    now = now_rfc3339()
    component = f"{obj['kind'].lower()}-controller"
    event = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "type": event_type,
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        store.create(kinds.EVENT, event)
    except ApiError as error:
        # Events are informational: losing one must not stop reconciling.
        log.warning("cannot record event %s for %s/%s: %s", reason, meta["namespace"], meta["name"], error)
