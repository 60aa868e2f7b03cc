"""The rollout operators: deploy a revision, set traffic, promote, roll back, tear down.

Each one validates its input and the guardrails before any write, changes the Service in one
optimistic-concurrency write (spec and rollout state together), and then waits, deferred, for Knative
to serve what was written. A retry computes the same target, finds it already in place, and writes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from knative_rollout.exceptions import KnativeInputError, KnativeRevisionFailedError, permanent_input_errors
from knative_rollout.hooks import utc_now
from knative_rollout.links import KnativeServiceLink, KnativeTagLink
from knative_rollout.operators.base import KnativeBaseOperator
from knative_rollout.policy import RolloutPhase, RolloutState
from knative_rollout.resources import (
    DEFAULT_CANDIDATE_TAG,
    STABLE_TAG,
    RevisionInfo,
    RevisionSpec,
    apply_state,
    check_keep,
    check_percent,
    check_revision_name,
    check_tag,
    deletable_revisions,
    describe_split,
    pinned_traffic,
    render_service,
    render_template,
    render_traffic,
    resolve_traffic,
    split_of,
    state_from_annotations,
    traffic_tags,
)
from knative_rollout.triggers import KnativeRevisionReadyTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


def _url_of_tag(event: Mapping[str, Any], tag: str | None) -> str | None:
    for target in event.get("traffic") or []:
        if tag and target.get("tag") == tag:
            return str(target.get("url") or "") or None
    return None


def _candidate_tag(service: Mapping[str, Any], state: RolloutState) -> str:
    """Return the tag the candidate carries now (it may be a custom one), or the default."""
    for target in service.get("spec", {}).get("traffic") or []:
        if state.candidate and target.get("revisionName") == state.candidate and target.get("tag"):
            return str(target["tag"])
    return DEFAULT_CANDIDATE_TAG


class KnativeDeployRevisionOperator(KnativeBaseOperator):
    """Deploy a revision: create the Service at 100%, or add a candidate next to the pinned stable revision.

    The revision's name is derived from its spec, so a retry or a rerun with the same inputs reuses it.
    The new revision must become Ready before any traffic moves to it; if it fails (bad image, crash,
    probe), the task fails with Knative's reason and traffic stays as it was.

    :param image: container image. (templated)
    :param env: environment variables (a dict). (templated)
    :param resources: container ``requests``/``limits``; kept as ``container_resources``. (templated)
    :param annotations: revision template annotations. (templated)
    :param autoscaling: Knative autoscaling settings, e.g. ``{"min-scale": 1}``. (templated)
    :param container_port: port the container listens on (Knative passes it as ``PORT``).
    :param tag: tag of the candidate, giving it ``http://{tag}-{service}.{namespace}.{domain}``. (templated)
    :param traffic_percent: traffic the candidate gets once Ready; the stable keeps the rest.
    :return: ``{"revision", "url", "tag_url", "stable_revision"}``.
    """

    template_fields = (
        *KnativeBaseOperator.template_fields,
        "image",
        "env",
        "container_resources",
        "annotations",
        "autoscaling",
        "tag",
        "traffic_percent",
    )
    template_fields_renderers = {
        "env": "json",
        "container_resources": "json",
        "annotations": "json",
        "autoscaling": "json",
    }
    operator_extra_links = (KnativeServiceLink(), KnativeTagLink())

    def __init__(
        self,
        *,
        image: str,
        env: dict[str, str] | None = None,
        resources: dict[str, dict[str, str]] | None = None,
        annotations: dict[str, str] | None = None,
        autoscaling: dict[str, Any] | None = None,
        container_port: int | None = None,
        tag: str = DEFAULT_CANDIDATE_TAG,
        traffic_percent: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = image
        self.env = env
        # BaseOperator already has ``resources`` (executor resources), so the container's live here.
        self.container_resources = resources
        self.annotations = annotations
        self.autoscaling = autoscaling
        self.container_port = container_port
        self.tag = tag
        self.traffic_percent = traffic_percent

    def execute(self, context: Context) -> Any:
        """Validate, write the revision's template (traffic pinned), and wait for it to be Ready."""
        with permanent_input_errors():
            spec = RevisionSpec.build(
                image=self.image,
                env=self.env,
                resources=self.container_resources,
                annotations=self.annotations,
                autoscaling=self.autoscaling,
                container_port=self.container_port,
            )
            check_tag(self.tag)
            check_percent(self.traffic_percent, "traffic_percent")
        self.validate_target()
        with permanent_input_errors():
            self.guardrails.check_image(spec.image)
            self.guardrails.check_resources(spec.resources)
        template = render_template(self.service_name, spec)
        revision = template["metadata"]["name"]

        service = self.hook.find_service(self.service_name, self.namespace)
        if service is None:
            state = (
                RolloutState().deploying().recorded(utc_now(), "Deploying", f"creating revision {revision}")
            )
            created = self.hook.create_service(
                render_service(self.service_name, self.namespace, spec, apply_state({}, state))
            )
            if created is not None:
                self.log.info(
                    "Created Service %s/%s with revision %s", self.namespace, self.service_name, revision
                )
                self.hook.record_event(created, "Deploying", f"creating revision {revision}")
            service = created
        if service is None or self.hook.find_revision(revision, self.namespace) is None:
            self.ensure_managed(service or self.hook.get_service(self.service_name, self.namespace))
            self.rewrite(lambda current, state: self._with_template(current, state, template))
        else:
            self.ensure_managed(service)
        trigger = KnativeRevisionReadyTrigger(
            name=revision,
            namespace=self.namespace,
            timeout_seconds=self.wait_timeout,
            hook_params=self.trigger_hook_params(),
        )
        return self.wait(context, trigger, "execute_complete")

    def _with_template(
        self, service: dict[str, Any], state: RolloutState, template: dict[str, Any]
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        revision = template["metadata"]["name"]
        if revision in (state.stable, state.candidate):
            return None
        spec = dict(service["spec"])
        spec["template"] = template
        if state.stable is None:
            spec["traffic"] = render_traffic({revision: 100}, {revision: STABLE_TAG})
        else:
            spec["traffic"] = pinned_traffic(service)
        return spec, state.deploying(), "Deploying", f"creating revision {revision}"

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the revision is Ready, route traffic to it; if it failed, record that and fail."""
        revision = str(event.get("name"))
        if event.get("status") == "failed":
            self._record_failure(revision, str(event.get("message")))
        self.check_event(event, f"waiting for revision {revision}")
        service, _ = self.rewrite(lambda current, state: self._with_traffic(current, state, revision))
        return self.wait_for_traffic(context, service, "traffic_complete", revision=revision)

    def _with_traffic(
        self, service: dict[str, Any], state: RolloutState, revision: str
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        if state.stable == revision:
            return None
        spec = dict(service["spec"])
        if state.stable is None:
            spec["traffic"] = render_traffic({revision: 100}, {revision: STABLE_TAG})
            return spec, state.first_deployed(revision), "Deployed", f"revision {revision} is stable at 100%"
        split = {state.stable: 100 - self.traffic_percent, revision: self.traffic_percent}
        spec["traffic"] = render_traffic(split, {state.stable: STABLE_TAG, revision: self.tag})
        detail = f"candidate {revision} is Ready; traffic {describe_split(split)}"
        return spec, state.candidate_deployed(revision, self.traffic_percent), "CandidateDeployed", detail

    def _record_failure(self, revision: str, message: str) -> None:
        def failed(
            service: dict[str, Any], state: RolloutState
        ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
            if state.history and state.history[-1].detail == message:
                return None
            return service["spec"], state.failed(), "RevisionFailed", message

        # Recorded even when the phase already says Failed: the history tells which revision and why.
        self.rewrite(failed, record_always=True)
        raise KnativeRevisionFailedError(
            f"{message}. Traffic was not changed. Fix the image or its configuration and deploy again"
        )

    def traffic_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Return the deployment's summary once the Service serves the new traffic."""
        revision = str(event.get("revision"))
        self.check_event(event, f"waiting for service {self.service_name} to route to {revision}")
        state = self.recorded_state()
        tag = STABLE_TAG if state.stable == revision else self.tag
        result = {
            "revision": revision,
            "url": event.get("url"),
            "tag_url": _url_of_tag(event, tag),
            "stable_revision": state.stable,
        }
        self.push_urls(context, result["url"], result["tag_url"])
        return result


class _KnativeTrafficChangeOperator(KnativeBaseOperator):
    """Compute a new traffic split from the Service and its rollout state, write it, wait until it is served.

    Subclasses say what the split is (:meth:`compute`) and what the task returns (:meth:`summary`).
    """

    serving: str
    """What the Service serves once done, for messages: "to serve {serving}"."""

    def check_input(self) -> None:
        """Check the operator's own arguments before any API call."""

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        """Return the new spec, state, action and detail (see ``rewrite``), or ``None`` for no change."""
        raise NotImplementedError

    def summary(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Return the task's result once the Service serves the change."""
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        """Validate the change against the Service's revisions, write it, and wait until it is served."""
        self.check_input()
        self.validate_target()
        self.managed_service()
        revisions = self.revision_infos()
        service, _ = self.rewrite(lambda current, state: self.compute(current, state, revisions))
        return self.wait_for_traffic(context, service, "execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Return the summary once the Service serves the change."""
        self.check_event(event, f"waiting for service {self.service_name} to serve {self.serving}")
        self.push_urls(context, event.get("url"))
        return self.summary(event)


class KnativeSetTrafficOperator(_KnativeTrafficChangeOperator):
    """Set the traffic split; revisions by name or as ``@stable``, ``@candidate``, ``@latest``.

    Percents must sum to 100 and every revision with traffic must exist and be Ready; this is checked
    before anything is written. The task ends when ``status.traffic`` shows the split.

    :param traffic: e.g. ``{"@stable": 90, "@candidate": 10}``. (templated)
    :return: ``{"traffic": {revision: percent}, "url"}``.
    """

    template_fields = (*KnativeBaseOperator.template_fields, "traffic")
    template_fields_renderers = {"traffic": "json"}
    serving = "the new traffic"

    def __init__(self, *, traffic: Mapping[str, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.traffic = traffic

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str]:
        """Resolve the requested split and tag its revisions."""
        latest = service.get("status", {}).get("latestCreatedRevisionName")
        split = resolve_traffic(self.traffic, state=state, revisions=revisions, latest=latest)
        tags = traffic_tags(split, state, _candidate_tag(service, state))
        spec = dict(service["spec"])
        spec["traffic"] = render_traffic(split, tags)
        new_state = state.traffic_set(split.get(state.candidate or "", 0))
        return spec, new_state, "TrafficSet", f"traffic {describe_split(split)}"

    def summary(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Return the split the Service now serves."""
        return {"traffic": split_of(event.get("traffic") or []), "url": event.get("url")}


class KnativePromoteOperator(_KnativeTrafficChangeOperator):
    """Promote the candidate: 100% of traffic, recorded as stable; the old stable is kept as rollback target.

    Promoting again after a promotion changes nothing.

    :return: ``{"stable_revision", "previous_stable_revision", "url"}``.
    """

    serving = "the promoted revision"

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        """Move all traffic to the Ready candidate and record it as stable."""
        if state.candidate is None:
            if state.phase is RolloutPhase.PROMOTED:
                return None
            raise KnativeInputError(
                f"service {self.service_name} has no candidate revision to promote (phase "
                f"{state.phase.value}); deploy one with KnativeDeployRevisionOperator first"
            )
        resolve_traffic({state.candidate: 100}, state=state, revisions=revisions, latest=None)
        spec = dict(service["spec"])
        spec["traffic"] = render_traffic({state.candidate: 100}, {state.candidate: STABLE_TAG})
        detail = f"{state.candidate} promoted to stable at 100%; previous stable {state.stable} kept"
        return spec, state.promoted(), "Promoted", detail

    def summary(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Return the new stable revision and the one kept for rollback."""
        state = self.recorded_state()
        return {
            "stable_revision": state.stable,
            "previous_stable_revision": state.previous_stable,
            "url": event.get("url"),
        }


class KnativeRollbackOperator(_KnativeTrafficChangeOperator):
    """Send all traffic back to the stable revision (or ``revision``); works from any phase.

    During a canary the target is the stable revision; right after a promotion it is the previous stable
    (an "undo"). The candidate loses its tag. Rolling back again changes nothing.

    :param revision: revision to roll back to, instead of the recorded one. (templated)
    :return: ``{"stable_revision", "url"}``.
    """

    template_fields = (*KnativeBaseOperator.template_fields, "revision")
    serving = "the rollback"

    def __init__(self, *, revision: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.revision = revision

    def check_input(self) -> None:
        """Check the revision name, when one is given."""
        if self.revision is not None:
            with permanent_input_errors():
                check_revision_name(self.revision)

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        """Move all traffic to the rollback target and record it as stable."""
        target = self.revision or state.rollback_target()
        if target is None:
            raise KnativeInputError(
                f"service {self.service_name} has no recorded stable revision to roll back to; pass "
                "revision= with the name of a Ready revision"
            )
        resolve_traffic({target: 100}, state=state, revisions=revisions, latest=None)
        current = split_of(service["spec"].get("traffic") or [])
        if target == state.stable and state.candidate is None and current == {target: 100}:
            return None
        spec = dict(service["spec"])
        spec["traffic"] = render_traffic({target: 100}, {target: STABLE_TAG})
        away = sorted(name for name, percent in current.items() if percent and name != target)
        detail = f"all traffic back to {target}" + (f" (from {', '.join(away)})" if away else "")
        return spec, state.rolled_back(target), "RolledBack", detail

    def summary(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Return the revision that now serves all traffic."""
        return {"stable_revision": self.recorded_state().stable, "url": event.get("url")}


class KnativeTeardownOperator(KnativeBaseOperator):
    """Delete what is no longer needed: old revisions, or the whole Service.

    Revisions that are in traffic (even at 0% with a tag), recorded as stable, candidate or rollback
    target, or that the template names, are never deleted; of the others the newest ``keep`` stay.

    :param keep: how many unprotected revisions to keep, newest first.
    :param delete_service: delete the Service itself (and so all its revisions) instead.
    :return: ``{"deleted_revisions": [...], "deleted_service": bool}``.
    """

    template_fields = (*KnativeBaseOperator.template_fields, "keep", "delete_service")

    def __init__(self, *, keep: int = 2, delete_service: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep = keep
        self.delete_service = delete_service

    def execute(self, context: Context) -> dict[str, Any]:
        """Delete the unprotected revisions beyond ``keep``, or the Service."""
        with permanent_input_errors():
            check_keep(self.keep)
        self.validate_target()
        service = self.hook.find_service(self.service_name, self.namespace)
        self.push_urls(context, None if service is None else service.get("status", {}).get("url"))
        if service is None:
            self.log.info(
                "Service %s/%s does not exist; nothing to tear down", self.namespace, self.service_name
            )
            return {"deleted_revisions": [], "deleted_service": False}
        self.ensure_managed(service)
        if self.delete_service:
            self.hook.record_event(service, "Deleting", f"deleting service {self.service_name}")
            existed = self.hook.delete_service(self.service_name, self.namespace)
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

            self.rewrite(record, record_always=True)
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
