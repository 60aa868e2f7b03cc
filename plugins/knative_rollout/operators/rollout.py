"""The rollout operators: deploy a revision, set traffic, promote, roll back.

Each one validates its input and the guardrails before any write, changes the Service in one
optimistic-concurrency write (spec and rollout state together), and then waits, deferred, for Knative
to serve what was written. A retry computes the same target, finds it already in place, and writes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from knative_rollout.exceptions import (
    KnativeInputError,
    KnativeNotFoundError,
    KnativeRevisionFailedError,
    KnativeRolloutConflictError,
    permanent_input_errors,
)
from knative_rollout.hooks import utc_now
from knative_rollout.links import KnativeServiceLink, KnativeTagLink
from knative_rollout.operators.base import KnativeBaseOperator, writer_of
from knative_rollout.policy import RolloutPhase, RolloutState
from knative_rollout.resources import (
    DEFAULT_CANDIDATE_TAG,
    STABLE_TAG,
    DeployKind,
    DeployPlan,
    RevisionInfo,
    RevisionSpec,
    adopted_stable,
    apply_state,
    check_percent,
    check_revision_name,
    check_tag,
    describe_split,
    parse_bool,
    pinned_traffic,
    plan_deploy,
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

DEPLOY_XCOM_KEY = "deploy"
"""Where a deploy that found nothing to roll out (and skipped) leaves its summary."""


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

    What a deploy does is decided before anything is written (:mod:`knative_rollout.resources.deploys`):
    the spec of the stable revision changes nothing ("nothing to roll out"); the spec of the previous
    stable or of an older revision is refused unless ``allow_older``; a revision that failed before is
    refused until ``attempt`` gives it a new name. A managed Service that serves traffic but records no
    stable revision first records the revision serving it as stable.

    :param image: container image. (templated)
    :param env: environment variables (a dict). (templated)
    :param resources: container ``requests``/``limits``; kept as ``container_resources``. (templated)
    :param annotations: revision template annotations. (templated)
    :param autoscaling: Knative autoscaling settings, e.g. ``{"min-scale": 1}``. (templated)
    :param container_port: port the container listens on (Knative passes it as ``PORT``).
    :param tag: tag of the candidate, giving it ``http://{tag}-{service}.{namespace}.{domain}``. (templated)
    :param traffic_percent: traffic the candidate gets once Ready; the stable keeps the rest. (templated)
    :param allow_older: roll out the previous stable or an older revision on purpose. (templated)
    :param attempt: 0, or a number mixed into the revision's name so that a spec whose revision failed
        can be deployed again once the cause is fixed (same attempt, same name). (templated)
    :param only_if_missing: only create the Service when it does not exist; an existing one is left as it
        is (a bootstrap step that is safe to run every time). (templated)
    :param skip_if_unchanged: when there is nothing to roll out, push the summary to the ``deploy`` XCom
        and skip, so the rollout's later steps are skipped too (``progressive_rollout`` sets it).
    :param create_service: create the Service when it does not exist (its first revision then serves
        100% at once); ``progressive_rollout`` turns it off, since a rollout needs a stable revision.
    :return: ``{"revision", "url", "tag_url", "stable_revision", "unchanged"}``.
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
        "allow_older",
        "attempt",
        "only_if_missing",
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
        traffic_percent: int | str = 0,
        allow_older: bool | str = False,
        attempt: int | str = 0,
        only_if_missing: bool | str = False,
        skip_if_unchanged: bool = False,
        create_service: bool = True,
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
        self.allow_older = allow_older
        self.attempt = attempt
        self.only_if_missing = only_if_missing
        self.skip_if_unchanged = skip_if_unchanged
        self.create_service = create_service

    def execute(self, context: Context) -> Any:
        """Validate, decide what the deploy means, write the template (traffic pinned), wait for Ready."""
        spec = self.revision_spec()
        with permanent_input_errors():
            check_tag(self.tag)
            self.traffic_percent = check_percent(self.traffic_percent, "traffic_percent")
            self.allow_older = parse_bool(self.allow_older, "allow_older")
            self.only_if_missing = parse_bool(self.only_if_missing, "only_if_missing")
        self.validate_target()
        with permanent_input_errors():
            self.guardrails.check_image(spec.image)
            self.guardrails.check_resources(spec.resources)
        template = render_template(self.service_name, spec)
        revision = template["metadata"]["name"]

        service = self.hook.find_service(self.service_name, self.namespace)
        if service is not None and self.only_if_missing:
            self.ensure_managed(service)
            return self._unchanged(context, service, f"service {self.service_path} exists; left as it is")
        if service is None and not self.create_service:
            raise KnativeNotFoundError(
                f"Knative Service {self.service_path} does not exist, and a rollout needs a stable revision "
                "to compare with and fall back to; deploy the first one with KnativeDeployRevisionOperator "
                "(only_if_missing=True makes that step safe to run every time)"
            )
        self.hold_lock()
        if service is None:
            service = self._create(context, spec, revision)
        if service is not None:
            self.ensure_managed(service)
            self._adopt_stable(context, service)
            revisions = self.revision_infos()
            plans: list[DeployPlan] = []
            service, _ = self.rewrite(
                context,
                lambda current, state: self._start(current, state, template, revisions, plans),
                starts_rollout=True,
            )
            if plans and plans[-1].kind is DeployKind.UNCHANGED:
                return self._unchanged(context, service, plans[-1].reason)
        trigger = KnativeRevisionReadyTrigger(
            name=revision,
            namespace=self.namespace,
            timeout_seconds=self.wait_timeout,
            hook_params=self.trigger_hook_params(),
            renew_lock=self.lock_renewal(),
        )
        return self.wait(context, trigger, "execute_complete")

    def revision_spec(self) -> RevisionSpec:
        """Return the checked spec of the revision this task deploys (its name is a hash of it)."""
        with permanent_input_errors():
            return RevisionSpec.build(
                image=self.image,
                env=self.env,
                resources=self.container_resources,
                annotations=self.annotations,
                autoscaling=self.autoscaling,
                container_port=self.container_port,
                attempt=self.attempt,
            )

    def _create(self, context: Context, spec: RevisionSpec, revision: str) -> dict[str, Any] | None:
        """Create the Service with its first revision; return ``None`` when this deploy created it."""
        state = RolloutState()
        if self.rollout_id:
            state = state.started_by(self.rollout_id, revision, utc_now())
        state = state.deploying().recorded(
            utc_now(), "Deploying", f"creating revision {revision}", writer_of(context)
        )
        created = self.hook.create_service(
            render_service(self.service_name, self.namespace, spec, apply_state({}, state))
        )
        if created is None:
            # Someone created it first: deploy into theirs like into any existing Service.
            return self.hook.get_service(self.service_name, self.namespace)
        self.log.info("Created Service %s with revision %s", self.service_path, revision)
        self.hook.record_event(created, "Deploying", f"creating revision {revision}")
        return None

    def _adopt_stable(self, context: Context, service: Mapping[str, Any]) -> None:
        """Record as stable the revision serving a Service that records none, before anything else."""
        if state_from_annotations(service["metadata"].get("annotations")).stable:
            return

        def adopt(
            current: dict[str, Any], state: RolloutState
        ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
            if state.stable:
                return None
            adopted = adopted_stable(split_of(pinned_traffic(current)), self.service_name)
            if adopted is None:
                return None
            spec = dict(current["spec"])
            spec["traffic"] = render_traffic({adopted: 100}, {adopted: STABLE_TAG})
            detail = f"{adopted} serves all traffic and no stable revision was recorded: adopted as stable"
            return spec, replace(state, stable=adopted, phase=RolloutPhase.STABLE), "Adopted", detail

        self.rewrite(context, adopt, starts_rollout=True)

    def _start(
        self,
        service: dict[str, Any],
        state: RolloutState,
        template: dict[str, Any],
        revisions: Mapping[str, RevisionInfo],
        plans: list[DeployPlan],
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        revision = template["metadata"]["name"]
        if state.is_active() and state.rollout_id != self.rollout_id:
            other = state.rollout_id or "a change made outside any rollout"
            raise KnativeRolloutConflictError(
                f"Knative Service {self.service_path} is in the middle of another rollout ({other}, "
                f"since {state.rollout_since or 'unknown'}: candidate {state.candidate}, phase "
                f"{state.phase.value}); nothing was changed. Finish it first: promote it, or roll it "
                "back with KnativeRollbackOperator"
            )
        plan = plan_deploy(
            revision, state, revisions, allow_older=bool(self.allow_older), attempt=int(self.attempt)
        )
        plans.append(plan)
        if plan.kind is DeployKind.UNCHANGED or (
            state.candidate == revision and state.rollout_id == self.rollout_id
        ):
            # Nothing to roll out, or this revision is the candidate already (a retry): write nothing.
            return None
        spec = dict(service["spec"])
        if plan.kind is DeployKind.CREATE:
            spec["template"] = template
        spec["traffic"] = (
            render_traffic({revision: 100}, {revision: STABLE_TAG})
            if state.stable is None
            else pinned_traffic(service)
        )
        started = state.started_by(self.rollout_id, revision, utc_now()) if self.rollout_id else state
        return spec, started.deploying(), "Deploying", plan.reason

    def _unchanged(self, context: Context, service: Mapping[str, Any], reason: str) -> dict[str, Any]:
        """Return (or, in a rollout, push and skip with) the summary of a deploy that changed nothing."""
        state = state_from_annotations(service["metadata"].get("annotations"))
        status = service.get("status") or {}
        result: dict[str, Any] = {
            "revision": state.stable,
            "url": status.get("url"),
            "tag_url": _url_of_tag(status, STABLE_TAG),
            "stable_revision": state.stable,
            "unchanged": True,
            "reason": reason,
        }
        self.push_urls(context, result["url"], result["tag_url"])
        self.log.info("Nothing to roll out: %s", reason)
        if self.skip_if_unchanged:
            context["ti"].xcom_push(key=DEPLOY_XCOM_KEY, value=result)
            raise AirflowSkipException(f"nothing to roll out: {reason}")
        return result

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Once the revision is Ready, route traffic to it; if it failed, record that and fail."""
        revision = str(event.get("name"))
        if event.get("status") == "failed":
            self._record_failure(context, revision, str(event.get("message")))
        self.check_event(event, f"waiting for revision {revision}")
        service, _ = self.rewrite(
            context, lambda current, state: self._with_traffic(current, state, revision)
        )
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
        percent = int(self.traffic_percent)
        split = {state.stable: 100 - percent, revision: percent}
        spec["traffic"] = render_traffic(split, {state.stable: STABLE_TAG, revision: self.tag})
        detail = f"candidate {revision} is Ready; traffic {describe_split(split)}"
        return spec, state.candidate_deployed(revision, percent), "CandidateDeployed", detail

    def _record_failure(self, context: Context, revision: str, message: str) -> None:
        def failed(
            service: dict[str, Any], state: RolloutState
        ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
            if state.history and state.history[-1].detail == message:
                return None
            return service["spec"], state.failed(), "RevisionFailed", message

        # Recorded even when the phase already says Failed: the history tells which revision and why.
        self.rewrite(context, failed, record_always=True)
        raise KnativeRevisionFailedError(
            f"{message}. Traffic was not changed. Fix the image or its configuration and deploy again with "
            f"attempt={int(self.attempt) + 1} (Knative never starts a failed revision again)"
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
            "unchanged": False,
        }
        self.push_urls(context, result["url"], result["tag_url"])
        return result


class _KnativeTrafficChangeOperator(KnativeBaseOperator):
    """Compute a new traffic split from the Service and its rollout state, write it, wait until it is served.

    Subclasses say what the split is (:meth:`compute`) and what the task returns (:meth:`summary`).

    :param revision: the revision this step acts on; inside a rollout, the one its deploy returned, so
        that nothing another writer deployed can be shifted or promoted by it. (templated)
    """

    template_fields = (*KnativeBaseOperator.template_fields, "revision")
    serving: str
    """What the Service serves once done, for messages: "to serve {serving}"."""

    def __init__(self, *, revision: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.revision = revision

    def check_input(self) -> None:
        """Check the operator's own arguments before any API call."""
        if self.revision is not None:
            with permanent_input_errors():
                self.revision = check_revision_name(str(self.revision).strip())

    def nothing_to_do(self, context: Context) -> dict[str, Any] | None:
        """Return the task's result when there is nothing for it to change (checked before the lock)."""
        return None

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
        skipped = self.nothing_to_do(context)
        if skipped is not None:
            return skipped
        self.managed_service()
        self.hold_lock()
        revisions = self.revision_infos()
        service, _ = self.rewrite(context, lambda current, state: self.compute(current, state, revisions))
        return self.wait_for_traffic(context, service, "execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Return the summary once the Service serves the change."""
        self.check_event(event, f"waiting for service {self.service_name} to serve {self.serving}")
        self.push_urls(context, event.get("url"))
        return self.summary(event)

    def candidate_of(self, state: RolloutState) -> RolloutState:
        """Return ``state`` with its candidate checked against (or set from) this step's ``revision``.

        :raises KnativeRolloutConflictError: when the Service's candidate is another revision.
        """
        if self.revision is None or state.candidate == self.revision:
            return state
        raise KnativeRolloutConflictError(
            f"the candidate of Knative Service {self.service_path} is {state.candidate}, not {self.revision} "
            "(the revision this step was given); nothing was changed. Another writer changed the rollout: "
            "see the Service's rollout history"
        )


class KnativeSetTrafficOperator(_KnativeTrafficChangeOperator):
    """Set the traffic split; revisions by name or as ``@stable``, ``@candidate``, ``@latest``.

    Percents must sum to 100 and every revision with traffic must exist and be Ready; this is checked
    before anything is written. The task ends when ``status.traffic`` shows the split. The aliases
    resolve against the Service's rollout record; with ``revision``, ``@candidate`` is that revision and
    the step fails unless the record's candidate is it.

    :param traffic: e.g. ``{"@stable": 90, "@candidate": 10}``; percents may be templated text. (templated)
    :return: ``{"traffic": {revision: percent}, "url"}``.
    """

    template_fields = (*_KnativeTrafficChangeOperator.template_fields, "traffic")
    template_fields_renderers = {"traffic": "json"}
    serving = "the new traffic"

    def __init__(self, *, traffic: Mapping[str, int | str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.traffic = traffic

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str]:
        """Resolve the requested split and tag its revisions."""
        state = self.candidate_of(state)
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
    """Promote the candidate (or ``revision``): 100% of traffic, recorded as stable; the old stable is kept.

    Promoting again after a promotion changes nothing. Inside a rollout, the promotion ends it: the
    rollout lock is released once the Service serves the promoted revision.

    :return: ``{"stable_revision", "previous_stable_revision", "url"}``.
    """

    serving = "the promoted revision"

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        """Move all traffic to the Ready candidate and record it as stable."""
        if state.phase is RolloutPhase.PROMOTED and self.revision in (None, state.stable):
            return None
        state = self.candidate_of(state)
        if state.candidate is None:
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
        """Return the new stable revision and the one kept for rollback; end the rollout's lock."""
        state = self.recorded_state()
        if self.rollout_id:
            self.lock.release(self.rollout_id)
        return {
            "stable_revision": state.stable,
            "previous_stable_revision": state.previous_stable,
            "url": event.get("url"),
        }


class KnativeRollbackOperator(_KnativeTrafficChangeOperator):
    """Send all traffic back to the stable revision (or ``revision``); works from any phase.

    The target is the recorded stable revision, whatever phase the Service is in; undoing a promotion
    (back to the stable revision before it) is asked for with ``undo_promotion=True`` or by naming the
    revision. The candidate loses its tag. Rolling back again changes nothing.

    Inside a rollout (``rollout_id``) it undoes only that rollout: when the Service's record names another
    rollout, or this rollout never changed it, or it promoted, nothing is changed. It then releases the
    rollout's lock.

    :param revision: revision to roll back to, instead of the recorded stable one. (templated)
    :param undo_promotion: right after a promotion, go back to the previous stable revision. (templated)
    :return: ``{"stable_revision", "url", "rolled_back"}``.
    """

    template_fields = (*_KnativeTrafficChangeOperator.template_fields, "undo_promotion")
    serving = "the rollback"

    def __init__(self, *, undo_promotion: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.undo_promotion = undo_promotion

    def check_input(self) -> None:
        """Check the revision name and the flag."""
        super().check_input()
        with permanent_input_errors():
            self.undo_promotion = parse_bool(self.undo_promotion, "undo_promotion")

    def nothing_to_do(self, context: Context) -> dict[str, Any] | None:
        """Inside a rollout, return the result of a rollback that has nothing of its own to undo."""
        if not self.rollout_id:
            return None
        service = self.hook.find_service(self.service_name, self.namespace)
        state = state_from_annotations((service or {}).get("metadata", {}).get("annotations"))
        reason = self._nothing_to_undo(service, state)
        if reason is None:
            return None
        self.log.info("Nothing to roll back: %s", reason)
        self.lock.release(self.rollout_id)
        url = (service or {}).get("status", {}).get("url")
        self.push_urls(context, url)
        return {"stable_revision": state.stable, "url": url, "rolled_back": False, "reason": reason}

    def _nothing_to_undo(self, service: Mapping[str, Any] | None, state: RolloutState) -> str | None:
        """Return why this rollout has nothing to roll back, or ``None`` when it has."""
        if service is None:
            return f"service {self.service_path} does not exist"
        if state.rollout_id != self.rollout_id:
            other = state.rollout_id or "no rollout"
            return (
                f"this rollout ({self.rollout_id}) did not change {self.service_path}; its record names "
                f"{other}"
            )
        if state.phase is RolloutPhase.PROMOTED and not self.undo_promotion and self.revision is None:
            return f"this rollout promoted {state.stable}; undoing a promotion needs undo_promotion=True"
        if state.stable is None:
            return f"service {self.service_path} has no stable revision yet; there is nothing to go back to"
        return None

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str] | None:
        """Move all traffic to the rollback target and record it as stable."""
        target = self.revision or state.rollback_target(undo_promotion=bool(self.undo_promotion))
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
        """Return the revision that now serves all traffic; end the rollout's lock."""
        if self.rollout_id:
            self.lock.release(self.rollout_id)
        return {"stable_revision": self.recorded_state().stable, "url": event.get("url"), "rolled_back": True}
