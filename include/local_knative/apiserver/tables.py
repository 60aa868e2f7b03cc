"""Answer ``as=Table`` requests (``kubectl get``) with the columns real Kubernetes and Knative print."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local_knative import kinds
from local_knative.kinds import Kind

Cell = Callable[[dict[str, Any]], Any]


def human_duration(seconds: float) -> str:
    """Format an age the way kubectl does (``5s``, ``3m20s``, ``2h``, ``4d``)."""
    seconds = int(seconds)
    if seconds < 0:
        return "<invalid>"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if years < 8 else f"{years}y"


def _age_of(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _path(*keys: str) -> Cell:
    def cell(obj: dict[str, Any]) -> Any:
        current: Any = obj
        for key in keys:
            if not isinstance(current, dict):
                return None
            current = current.get(key)
        return current

    return cell


def _condition(field: str, condition_type: str = "Ready") -> Cell:
    def cell(obj: dict[str, Any]) -> Any:
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("type") == condition_type:
                return condition.get(field)
        return None

    return cell


def _label(key: str) -> Cell:
    return lambda obj: ((obj.get("metadata") or {}).get("labels") or {}).get(key)


def _age(obj: dict[str, Any]) -> str:
    return _age_of((obj.get("metadata") or {}).get("creationTimestamp"))


def _pod_ready(obj: dict[str, Any]) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    containers = (obj.get("spec") or {}).get("containers") or statuses
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _pod_status(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("phase") or "Pending")


def _pod_restarts(obj: dict[str, Any]) -> int:
    return sum(
        int(s.get("restartCount") or 0) for s in (obj.get("status") or {}).get("containerStatuses") or []
    )


def _event_last_seen(obj: dict[str, Any]) -> str:
    return _age_of(
        obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    )


def _event_object(obj: dict[str, Any]) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


# (column name, type, priority, cell) per kind; priority 1 columns show only with -o wide.
Column = tuple[str, str, int, Cell]
_NAME: Column = ("Name", "string", 0, _name)
_AGE: Column = ("Age", "date", 0, _age)
_READY: Column = ("Ready", "string", 0, _condition("status"))
_REASON: Column = ("Reason", "string", 0, _condition("reason"))
_COLUMNS: dict[Kind, list[Column]] = {
    kinds.KSVC: [
        _NAME,
        ("URL", "string", 0, _path("status", "url")),
        ("LatestCreated", "string", 0, _path("status", "latestCreatedRevisionName")),
        ("LatestReady", "string", 0, _path("status", "latestReadyRevisionName")),
        _READY,
        _REASON,
    ],
    kinds.CONFIGURATION: [
        _NAME,
        ("LatestCreated", "string", 0, _path("status", "latestCreatedRevisionName")),
        ("LatestReady", "string", 0, _path("status", "latestReadyRevisionName")),
        _READY,
        _REASON,
    ],
    kinds.ROUTE: [_NAME, ("URL", "string", 0, _path("status", "url")), _READY, _REASON],
    kinds.REVISION: [
        _NAME,
        ("Config Name", "string", 0, _label("serving.knative.dev/configuration")),
        ("Generation", "string", 0, _label("serving.knative.dev/configurationGeneration")),
        _READY,
        _REASON,
        ("Actual Replicas", "integer", 0, _path("status", "actualReplicas")),
        ("Desired Replicas", "integer", 0, _path("status", "desiredReplicas")),
    ],
    kinds.POD: [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "integer", 0, _pod_restarts),
        _AGE,
        ("IP", "string", 1, _path("status", "podIP")),
    ],
    kinds.NAMESPACE: [_NAME, ("Status", "string", 0, _path("status", "phase")), _AGE],
    kinds.EVENT: [
        ("Last Seen", "string", 0, _event_last_seen),
        ("Type", "string", 0, _path("type")),
        ("Reason", "string", 0, _path("reason")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, _path("message")),
    ],
    kinds.CONFIGMAP: [
        _NAME,
        ("Data", "integer", 0, lambda obj: len(obj.get("data") or {}) + len(obj.get("binaryData") or {})),
        _AGE,
    ],
}


def _columns(kind: Kind) -> list[Column]:
    return _COLUMNS.get(kind, [_NAME, _AGE])


def column_definitions(kind: Kind) -> list[dict[str, Any]]:
    """Return the ``columnDefinitions`` of a kind's Table."""
    return [
        {
            "name": name,
            "type": column_type,
            "format": "name" if name == "Name" else "",
            "description": f"{name} of the {kind.kind}",
            "priority": priority,
        }
        for name, column_type, priority, _cell in _columns(kind)
    ]


def _row(kind: Kind, obj: dict[str, Any], include_object: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": [cell(obj) for _n, _t, _p, cell in _columns(kind)]}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {},
        }
    return row


def table(
    kind: Kind,
    objects: list[dict[str, Any]],
    resource_version: str,
    *,
    include_object: str = "Metadata",
    with_columns: bool = True,
) -> dict[str, Any]:
    """Return a ``meta.k8s.io/v1 Table`` of ``objects``.

    :param include_object: ``Metadata`` (default, as the real server), ``Object`` or ``None``.
    :param with_columns: False leaves ``columnDefinitions`` empty, as watch events after the first do.
    """
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions(kind) if with_columns else [],
        "rows": [_row(kind, obj, include_object) for obj in objects],
    }


def wants_table(accept: str) -> bool:
    """Return whether the Accept header asks for a ``meta.k8s.io/v1`` Table."""
    return any(
        "as=Table" in part and "g=meta.k8s.io" in part and "v=v1beta1" not in part
        for part in accept.split(",")
    )
