"""Tear down what a rollout no longer needs: old revisions that serve nothing, or the whole Service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from knative_rollout.exceptions import permanent_input_errors
from knative_rollout.operators.base import KnativeBaseOperator
from knative_rollout.resources import check_keep, deletable_revisions, parse_bool, state_from_annotations

if TYPE_CHECKING:
    from airflow.sdk import Context

    from knative_rollout.policy import RolloutState


class KnativeTeardownOperator(KnativeBaseOperator):
    """Delete what is no longer needed: old revisions, or the whole Service.

    Revisions that are in traffic (even at 0% with a tag), recorded as stable, candidate or rollback
    target, or that the template names, are never deleted; of the others the newest ``keep`` stay.

    Nothing is deleted while another rollout holds the Service's lock; deleting the Service also deletes
    its (free) rollout lock.

    :param keep: how many unprotected revisions to keep, newest first. (templated)
    :param delete_service: delete the Service itself (and so all its revisions) instead. (templated)
    :param dry_run: delete nothing; return what would be deleted. (templated)
    :return: ``{"deleted_revisions": [...], "deleted_service": bool}``; a dry run adds
        ``"dry_run": True``, the names being what would be deleted.
    """

    template_fields = (*KnativeBaseOperator.template_fields, "keep", "delete_service", "dry_run")

    def __init__(
        self,
        *,
        keep: int | str = 2,
        delete_service: bool | str = False,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep = keep
        self.delete_service = delete_service
        self.dry_run = dry_run

    def execute(self, context: Context) -> dict[str, Any]:
        """Delete the unprotected revisions beyond ``keep``, or the Service."""
        with permanent_input_errors():
            self.keep = check_keep(self.keep)
            self.delete_service = parse_bool(self.delete_service, "delete_service")
            self.dry_run = parse_bool(self.dry_run, "dry_run")
        self.validate_target()
        service = self.hook.find_service(self.service_name, self.namespace)
        self.push_urls(context, None if service is None else service.get("status", {}).get("url"))
        if service is None:
            self.log.info(
                "Service %s/%s does not exist; nothing to tear down", self.namespace, self.service_name
            )
            return {"deleted_revisions": [], "deleted_service": False}
        self.ensure_managed(service)
        if self.dry_run:
            would_go = (
                sorted(self.revision_infos())
                if self.delete_service
                else deletable_revisions(
                    self.revision_infos().values(), protected=_protected(service), keep=self.keep
                )
            )
            self.log.info("Dry run: would delete %s", would_go or "nothing")
            return {"deleted_revisions": would_go, "deleted_service": self.delete_service, "dry_run": True}
        self.hold_lock()
        if self.delete_service:
            self.hook.record_event(service, "Deleting", f"deleting service {self.service_name}")
            existed = self.hook.delete_service(self.service_name, self.namespace)
            if self.rollout_id:
                self.lock.release(self.rollout_id)
            self.lock.delete_if_free()
            return {"deleted_revisions": [], "deleted_service": existed}

        deleted: list[str] = []
        for name in deletable_revisions(
            self.revision_infos().values(), protected=_protected(service), keep=self.keep
        ):
            # Someone may have routed traffic to it since the list was made: check again right before.
            fresh = self.hook.get_service(self.service_name, self.namespace)
            if name in _protected(fresh):
                continue
            if self.hook.delete_revision(name, self.namespace):
                deleted.append(name)
        if deleted:
            detail = f"deleted revisions {', '.join(deleted)}"

            def record(
                service: dict[str, Any], state: RolloutState
            ) -> tuple[dict[str, Any], RolloutState, str, str]:
                return service["spec"], state, "TornDown", detail

            self.rewrite(context, record, record_always=True)
        return {"deleted_revisions": deleted, "deleted_service": False}


def _protected(service: Mapping[str, Any]) -> set[str]:
    """Return the revisions of a Service that a teardown must keep."""
    state = state_from_annotations(service.get("metadata", {}).get("annotations"))
    spec = service.get("spec") or {}
    status = service.get("status") or {}
    names = set(state.protected_revisions())
    names.update(str(target.get("revisionName")) for target in spec.get("traffic") or [])
    names.update(str(target.get("revisionName")) for target in status.get("traffic") or [])
    names.add(str((spec.get("template") or {}).get("metadata", {}).get("name")))
    names.update(str(status.get(key)) for key in ("latestCreatedRevisionName", "latestReadyRevisionName"))
    return names
