"""Reconcile a Knative Service: own a Configuration and a Route of its name, summarise their status."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from local_knative import kinds
from local_knative.knative.objects import (
    CONFIGURATION_GENERATION_LABEL,
    LAST_APPLIED_ANNOTATION,
    SERVICE_LABEL,
    SERVICE_UID_LABEL,
    Conditions,
    condition_of,
    is_controlled_by,
    owner_reference,
    record_event,
    write_status,
)

if TYPE_CHECKING:
    from local_knative.kinds import Kind
    from local_knative.store import Store


def reconcile_service(store: Store, namespace: str, name: str) -> None:
    """Make the Service's Configuration and Route match it, then summarise theirs into its status."""
    service = store.try_get(kinds.KSVC, namespace, name)
    if service is None:
        return  # its children go with it: the store's garbage collection deletes them
    status = copy.deepcopy(service.get("status") or {})
    conditions = Conditions(status.get("conditions"))
    status["observedGeneration"] = service["metadata"].get("generation", 1)
    try:
        _reconcile_children(store, service, status, conditions)
    finally:
        conditions.aggregate(("ConfigurationsReady", "RoutesReady"))
        status["conditions"] = conditions.as_list()
        write_status(store, kinds.KSVC, service, status)


def _reconcile_children(
    store: Store, service: dict[str, Any], status: dict[str, Any], conditions: Conditions
) -> None:
    name = service["metadata"]["name"]
    spec = service.get("spec") or {}
    config = _ensure_child(
        store, kinds.CONFIGURATION, service, {"template": copy.deepcopy(spec.get("template"))}
    )
    if config is None:
        conditions.mark(
            "ConfigurationsReady",
            "False",
            "NotOwned",
            f'There is an existing Configuration "{name}" that we do not own.',
        )
        return
    config_status = config.get("status") or {}
    template_name = ((spec.get("template") or {}).get("metadata") or {}).get("name") or ""
    if config["metadata"].get("generation") != config_status.get("observedGeneration"):
        conditions.mark(
            "ConfigurationsReady",
            "Unknown",
            "OutOfDate",
            "The Configuration is still working to reflect the latest desired specification.",
        )
        if template_name:
            # With a named Revision, the Route may only move once the Revision exists.
            return
    else:
        for field in ("latestCreatedRevisionName", "latestReadyRevisionName"):
            if field in config_status:
                status[field] = config_status[field]
        conditions.propagate("ConfigurationsReady", condition_of(config))
    if template_name and not _revision_name_available(store, config, template_name):
        conditions.mark(
            "RoutesReady",
            "False",
            "RevisionNameTaken",
            f'The revision name "{template_name}" is taken by a conflicting Revision, '
            "so traffic will not be migrated",
        )
        return

    traffic = []
    for target in spec.get("traffic") or []:
        target = copy.deepcopy(target)
        if not target.get("revisionName") and not target.get("configurationName"):
            target["configurationName"] = name
        traffic.append(target)
    route = _ensure_child(store, kinds.ROUTE, service, {"traffic": traffic})
    if route is None:
        conditions.mark(
            "RoutesReady", "False", "NotOwned", f'There is an existing Route "{name}" that we do not own.'
        )
        return
    route_status = route.get("status") or {}
    if route["metadata"].get("generation") != route_status.get("observedGeneration"):
        conditions.mark(
            "RoutesReady",
            "Unknown",
            "OutOfDate",
            "The Route is still working to reflect the latest desired specification.",
        )
    else:
        for field in ("url", "address", "traffic"):
            if field in route_status:
                status[field] = copy.deepcopy(route_status[field])
        conditions.propagate("RoutesReady", condition_of(route))
    if conditions.status("RoutesReady") == "True" and not _traffic_migrated(route, config):
        conditions.mark(
            "RoutesReady",
            "Unknown",
            "TrafficNotMigrated",
            "Traffic is not yet migrated to the latest revision.",
        )


def _ensure_child(
    store: Store, kind: Kind, service: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any] | None:
    """Create or update the Service's child of ``kind``; None when a foreign object holds the name."""
    meta = service["metadata"]
    labels = {**(meta.get("labels") or {}), SERVICE_LABEL: meta["name"], SERVICE_UID_LABEL: meta["uid"]}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED_ANNOTATION}
    existing = store.try_get(kind, meta["namespace"], meta["name"])
    if existing is None:
        created = store.create(
            kind,
            {
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [owner_reference(service)],
                },
                "spec": spec,
            },
        )
        record_event(store, service, "Normal", "Created", f'Created {kind.kind} "{meta["name"]}"')
        return created
    if not is_controlled_by(existing, service):
        return None
    existing_meta = existing["metadata"]
    if (
        existing.get("spec") == spec
        and (existing_meta.get("labels") or {}) == labels
        and (existing_meta.get("annotations") or {}) == annotations
    ):
        return existing
    updated = copy.deepcopy(existing)
    updated["spec"] = spec
    updated["metadata"]["labels"] = labels
    updated["metadata"]["annotations"] = annotations
    return store.replace(kind, updated)


def _revision_name_available(store: Store, config: dict[str, Any], revision_name: str) -> bool:
    """Tell whether the named Revision is free or already this Configuration's (Knative's name check)."""
    revision = store.try_get(kinds.REVISION, config["metadata"]["namespace"], revision_name)
    if revision is None:
        return True
    if not is_controlled_by(revision, config):
        return False
    labels = revision["metadata"].get("labels") or {}
    if labels.get(CONFIGURATION_GENERATION_LABEL) == str(config["metadata"].get("generation")):
        return True
    return bool(revision.get("spec") == ((config.get("spec") or {}).get("template") or {}).get("spec"))


def _traffic_migrated(route: dict[str, Any], config: dict[str, Any]) -> bool:
    """Tell whether the Route's status serves what its spec asks, with latest targets resolved."""
    wanted = ((route.get("spec") or {}).get("traffic")) or []
    got = ((route.get("status") or {}).get("traffic")) or []
    if len(wanted) != len(got):
        return False
    latest_ready = (config.get("status") or {}).get("latestReadyRevisionName")
    config_name = config["metadata"]["name"]
    for want, have in zip(wanted, got, strict=True):
        want = {k: v for k, v in want.items() if k not in ("url", "latestRevision")}
        have = {k: v for k, v in have.items() if k not in ("url", "latestRevision")}
        if want.get("configurationName") == config_name:
            want.pop("configurationName")
            want["revisionName"] = latest_ready
        if want != have:
            return False
    return True
