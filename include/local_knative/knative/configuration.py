"""Reconcile a Knative Configuration: one Revision per template generation, and the latest ready one."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from local_knative import kinds
from local_knative.knative.objects import (
    CONFIGURATION_GENERATION_LABEL,
    CONFIGURATION_LABEL,
    CONFIGURATION_UID_LABEL,
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
    from local_knative.store import Store


def revision_name_for(config: dict[str, Any]) -> str:
    """Return the name of the Revision for the Configuration's generation (``{name}-{generation:05d}``)."""
    template = (config.get("spec") or {}).get("template") or {}
    named = (template.get("metadata") or {}).get("name")
    return (
        str(named) if named else f"{config['metadata']['name']}-{config['metadata'].get('generation', 1):05d}"
    )


def reconcile_configuration(store: Store, namespace: str, name: str) -> None:
    """Create the Revision of the Configuration's generation and track the latest ready one."""
    config = store.try_get(kinds.CONFIGURATION, namespace, name)
    if config is None:
        return
    revision_name = revision_name_for(config)
    status = copy.deepcopy(config.get("status") or {})
    conditions = Conditions(status.get("conditions"))
    status["observedGeneration"] = config["metadata"].get("generation", 1)

    revision = store.try_get(kinds.REVISION, namespace, revision_name)
    if revision is None:
        revision = store.create(kinds.REVISION, make_revision(config, revision_name))
        record_event(store, config, "Normal", "Created", f'Created Revision "{revision_name}"')
    elif not is_controlled_by(revision, config):
        conditions.mark(
            "Ready",
            "False",
            "RevisionFailed",
            "Revision creation failed with message: "
            f'{kinds.REVISION.resource} "{revision_name}" already exists.',
        )
        status["conditions"] = conditions.as_list()
        write_status(store, kinds.CONFIGURATION, config, status)
        return
    status["latestCreatedRevisionName"] = revision_name

    latest_ready = status.get("latestReadyRevisionName") or ""
    if (
        latest_ready
        and latest_ready != revision_name
        and store.try_get(kinds.REVISION, namespace, latest_ready) is None
    ):
        conditions.mark("Ready", "False", "RevisionDeleted", f'Revision "{latest_ready}" was deleted.')
        status.pop("latestReadyRevisionName", None)
    ready = condition_of(revision)
    if ready["status"] == "True":
        status["latestReadyRevisionName"] = revision_name
        conditions.mark("Ready", "True")
    elif ready["status"] == "False":
        conditions.mark(
            "Ready",
            "False",
            "RevisionFailed",
            f'Revision "{revision_name}" failed with message: {ready.get("message", "")}.',
        )
    elif (conditions.get("Ready") or {}).get("reason") != "RevisionDeleted":
        # A deleted latest ready Revision stays reported until a new Revision becomes ready or fails.
        conditions.mark("Ready", "Unknown")
    status["conditions"] = conditions.as_list()
    write_status(store, kinds.CONFIGURATION, config, status)
    _record_transitions(store, config, status)


def _record_transitions(store: Store, config: dict[str, Any], status: dict[str, Any]) -> None:
    """Record the transitions Knative's Configuration controller reports as Events."""
    latest_ready = status.get("latestReadyRevisionName")
    if latest_ready and latest_ready != (config.get("status") or {}).get("latestReadyRevisionName"):
        record_event(
            store,
            config,
            "Normal",
            "LatestReadyUpdate",
            f'LatestReadyRevisionName updated to "{latest_ready}"',
        )
    was, now = condition_of(config), condition_of({"status": status})
    if now["status"] == "True" and was["status"] != "True":
        record_event(store, config, "Normal", "ConfigurationReady", "Configuration becomes ready")
    if now.get("reason") == "RevisionFailed" and was.get("reason") != "RevisionFailed":
        record_event(
            store,
            config,
            "Warning",
            "LatestCreatedFailed",
            f'Latest created revision "{status.get("latestCreatedRevisionName", "")}" has failed',
        )


def make_revision(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the Revision ``name`` built from the Configuration's template, owned by the Configuration."""
    meta = config["metadata"]
    template = (config.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    config_labels = meta.get("labels") or {}
    labels = {
        **(template_meta.get("labels") or {}),
        CONFIGURATION_LABEL: meta["name"],
        CONFIGURATION_UID_LABEL: meta["uid"],
        CONFIGURATION_GENERATION_LABEL: str(meta.get("generation", 1)),
        SERVICE_LABEL: config_labels.get(SERVICE_LABEL, ""),
    }
    if config_labels.get(SERVICE_UID_LABEL):
        labels[SERVICE_UID_LABEL] = config_labels[SERVICE_UID_LABEL]
    return {
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(config)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
