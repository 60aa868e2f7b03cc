"""Reconcile a Knative Route: resolve each traffic target to a ready Revision and publish it in status.

``status.traffic`` is what the ingress serves. It only changes when every target can serve: a target
that names a missing, failed or not yet ready Revision is reported in ``AllTrafficAssigned`` and the
previous ``status.traffic`` stays, so no request is sent where nothing can answer it.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from local_knative import kinds
from local_knative.knative.objects import Conditions, condition_of, write_status

if TYPE_CHECKING:
    from local_knative.store import Store

# (namespace, "revision" | "configuration", name): what a Route's traffic names.
Target = tuple[str, str, str]
# (condition status, reason, message) for AllTrafficAssigned.
Failure = tuple[str, str, str]


def route_url(name: str, namespace: str, domain: str, tag: str = "") -> str:
    """Return the external URL of a Route, or of one of its tags (``http://{tag}-{name}.{ns}.{domain}``)."""
    host = f"{tag}-{name}" if tag else name
    return f"http://{host}.{namespace}.{domain}"


def reconcile_route(store: Store, namespace: str, name: str, *, domain: str) -> set[Target]:
    """Resolve the Route's targets to ready Revisions and publish them in its status.

    :returns: the Revisions and Configurations the Route names (empty when the Route is gone), so the
        caller can look at the Route again when one of them changes.
    """
    route = store.try_get(kinds.ROUTE, namespace, name)
    if route is None:
        return set()
    status = copy.deepcopy(route.get("status") or {})
    conditions = Conditions(status.get("conditions"))
    status["observedGeneration"] = route["metadata"].get("generation", 1)
    status["url"] = route_url(name, namespace, domain)
    status["address"] = {"url": f"http://{name}.{namespace}.svc.cluster.local"}

    resolved: list[dict[str, Any]] = []
    failures: list[Failure] = []
    targets: set[Target] = set()
    for target in (route.get("spec") or {}).get("traffic") or []:
        revision_name, failure = _resolve_target(store, namespace, target, targets)
        if failure is not None:
            failures.append(failure)
        entry: dict[str, Any] = {}
        if target.get("tag"):
            entry["tag"] = target["tag"]
        entry["revisionName"] = revision_name
        entry["latestRevision"] = bool(target.get("latestRevision", not target.get("revisionName")))
        if "percent" in target:
            entry["percent"] = target["percent"]
        if target.get("tag"):
            entry["url"] = route_url(name, namespace, domain, target["tag"])
        resolved.append(entry)

    if failures:
        # A failed target is worse news than one still coming up: report it first, as Knative does.
        conditions.mark("AllTrafficAssigned", *next((f for f in failures if f[0] == "False"), failures[0]))
        conditions.mark_if_missing(
            "IngressReady", "Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled."
        )
    else:
        status["traffic"] = resolved
        conditions.mark("AllTrafficAssigned", "True")
        # The ingress is in-process and reads this status directly: it is programmed once written.
        conditions.mark("IngressReady", "True")
    conditions.mark("CertificateProvisioned", "True", "TLSNotEnabled", "external-domain-tls is not enabled")
    conditions.aggregate(("AllTrafficAssigned", "IngressReady", "CertificateProvisioned"))
    status["conditions"] = conditions.as_list()
    write_status(store, kinds.ROUTE, route, status)
    return targets


def _resolve_target(
    store: Store, namespace: str, target: dict[str, Any], targets: set[Target]
) -> tuple[str, Failure | None]:
    """Return the Revision a traffic target serves and, when it cannot serve, the condition to report."""
    revision_name = target.get("revisionName") or ""
    if revision_name:
        targets.add((namespace, "revision", revision_name))
        revision = store.try_get(kinds.REVISION, namespace, revision_name)
        if revision is None:
            return revision_name, (
                "False",
                "RevisionMissing",
                f'Revision "{revision_name}" referenced in traffic not found.',
            )
        ready = condition_of(revision)["status"]
        if ready == "False":
            return revision_name, (
                "False",
                "RevisionMissing",
                f'Revision "{revision_name}" failed to become ready.',
            )
        if ready != "True":
            return revision_name, (
                "Unknown",
                "RevisionMissing",
                f'Revision "{revision_name}" is not yet ready.',
            )
        return revision_name, None
    config_name = target.get("configurationName") or ""
    targets.add((namespace, "configuration", config_name))
    config = store.try_get(kinds.CONFIGURATION, namespace, config_name)
    if config is None:
        return "", (
            "False",
            "ConfigurationMissing",
            f'Configuration "{config_name}" referenced in traffic not found.',
        )
    latest_ready = (config.get("status") or {}).get("latestReadyRevisionName") or ""
    if latest_ready:
        return str(latest_ready), None
    if condition_of(config)["status"] == "False":
        return "", (
            "False",
            "RevisionMissing",
            f'Configuration "{config_name}" does not have any ready Revision.',
        )
    return "", (
        "Unknown",
        "RevisionMissing",
        f'Configuration "{config_name}" is waiting for a Revision to become ready.',
    )
