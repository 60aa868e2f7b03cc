"""The canary analysis' fresh baseline as operator steps: deploy it, tell whether it serves, delete it.

What the baseline is, and why it is made, weighted and removed this way on Knative, is in
:mod:`knative_rollout.resources.baselines`; when each step runs is the single-task rollout's loop
(:class:`~knative_rollout.operators.canary.KnativeCanaryRolloutOperator` with ``baseline=True``) or the
task group's tasks (:func:`~knative_rollout.task_groups.progressive_rollout` with ``baseline=True``:
:class:`KnativeRolloutBaselineOperator` and :class:`KnativeBaselineTrafficOperator` below). Each write is
one optimistic-concurrency write of the spec and the rollout record together, like every other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from knative_rollout.exceptions import (
    KnativeAnalysisFailedError,
    KnativeNotFoundError,
    KnativeRolloutConflictError,
)
from knative_rollout.operators.base import KnativeBaseOperator
from knative_rollout.operators.rollout import KnativeDeployRevisionOperator, KnativeSetTrafficOperator
from knative_rollout.resources import (
    baseline_percent,
    baseline_template,
    canary_split,
    pinned_traffic,
    render_template,
    split_of,
    state_from_annotations,
)
from knative_rollout.triggers import KnativeRevisionReadyTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from knative_rollout.policy import RolloutState
    from knative_rollout.resources import RevisionInfo

Change = tuple[dict[str, Any], "RolloutState", str, str]


def _template_name(service: Mapping[str, Any]) -> str | None:
    name = (service["spec"].get("template") or {}).get("metadata", {}).get("name")
    return str(name) if name else None


class BaselineSteps(KnativeBaseOperator):
    """Deploy, check and delete the baseline in a Service's rollout record (a mixin of the canary rollout)."""

    def baseline_served(self, state: RolloutState, percent: int) -> bool:
        """Return whether the recorded baseline serves its share at ``percent`` and is not the template."""
        if not state.baseline:
            return False
        service = self.hook.get_service(self.service_name, self.namespace)
        wanted = split_of(service["spec"].get("traffic") or []).get(state.baseline)
        served = split_of((service.get("status") or {}).get("traffic") or []).get(state.baseline)
        return _template_name(service) != state.baseline and wanted == served == baseline_percent(percent)

    def deploy_baseline(
        self,
        context: Context,
        state: RolloutState,
        revision: str,
        percent: int,
        method_name: str,
        **carry: Any,
    ) -> Any:
        """Set the template to the stable's spec under the baseline's name (once); wait until it is Ready.

        :param revision: the candidate the baseline is for; with ``percent`` and ``carry``, what
            ``method_name`` gets in its event.
        """
        stable = self.hook.find_revision(str(state.stable), self.namespace)
        if stable is None:
            raise KnativeNotFoundError(
                f"the stable revision {state.stable} of Knative Service {self.service_path} does not exist, "
                f"so no baseline of it can be deployed; {revision} still has {percent}%. Roll back to a "
                "revision that exists (KnativeRollbackOperator(revision=...)), or run without baseline"
            )
        template = baseline_template(self.service_name, stable, str(self.rollout_id))
        name = template["metadata"]["name"]
        if state.baseline and state.baseline != name:
            # An earlier rollout's, still in the record this rollout took over (its task died).
            self.drop_baseline(context)

        def deploy(service: dict[str, Any], recorded: RolloutState) -> Change:
            spec = {**service["spec"], "template": template, "traffic": pinned_traffic(service)}
            detail = f"deploying baseline {name}: {recorded.stable}'s spec again, to judge {revision} against"
            return spec, replace(recorded, baseline=name), "BaselineDeploying", detail

        if state.baseline != name or self.hook.find_revision(name, self.namespace) is None:
            self.rewrite(context, deploy)
        trigger = KnativeRevisionReadyTrigger(
            name=name,
            namespace=self.namespace,
            timeout_seconds=self.wait_timeout,
            hook_params=self.trigger_hook_params(),
            carry={"revision": revision, "percent": percent, **carry},
            renew_lock=self.lock_renewal(),
        )
        return self.wait(context, trigger, method_name)

    def baseline_started(
        self, context: Context, event: Mapping[str, Any], candidate: dict[str, Any]
    ) -> str | None:
        """Set the template back to ``candidate`` after the baseline's wait; return why it failed, or None.

        :param event: the event of :meth:`deploy_baseline`'s trigger.
        :param candidate: the candidate's template, the one the template had before the baseline's.
        """
        name = event.get("name")
        if event.get("status") == "failed":
            self.restore_template(
                context, candidate, "BaselineFailed", f"baseline {name}: {event.get('message')}"
            )
            return f"the baseline could not start: {event.get('message')}"
        self.check_event(event, f"waiting for the baseline revision {name}")
        self.restore_template(context, candidate, "BaselineReady", f"baseline {name} is Ready")
        return None

    def restore_template(self, context: Context, candidate: dict[str, Any], action: str, detail: str) -> None:
        """Set the template back to ``candidate`` if it names the baseline (Knative reuses that revision)."""

        def restore(service: dict[str, Any], state: RolloutState) -> Change | None:
            if not state.baseline or _template_name(service) != state.baseline:
                return None
            spec = {**service["spec"], "template": candidate}
            return spec, state, action, f"{detail}; template back to {candidate['metadata']['name']}"

        self.rewrite(context, restore)

    def in_traffic(self, revision: str | None, service: Mapping[str, Any] | None = None) -> bool:
        """Return whether the Service routes to ``revision`` (in its spec, or still in its status)."""
        if not revision:
            return False
        service = service or self.hook.get_service(self.service_name, self.namespace)
        targets = [
            *(service["spec"].get("traffic") or []),
            *((service.get("status") or {}).get("traffic") or []),
        ]
        return revision in split_of(targets)

    def drop_baseline(self, context: Context) -> None:
        """Delete the recorded baseline once nothing routes to it and the template names another; forget it.

        The record may name an earlier rollout's (its task died and this rollout took the record over):
        that one goes too.
        """
        service = self.hook.get_service(self.service_name, self.namespace)
        state = state_from_annotations(service["metadata"].get("annotations"))
        baseline = state.baseline
        if baseline is None:
            return
        self.check_owner(state)
        if _template_name(service) == baseline or self.in_traffic(baseline, service):
            # Never deleted while it serves; and Knative would create the template's revision again.
            self.log.warning("Baseline %s still serves or is the template: not deleted", baseline)
            return
        if self.hook.delete_revision(baseline, self.namespace):
            self.log.info("Deleted the baseline revision %s", baseline)

        def forget(service: dict[str, Any], recorded: RolloutState) -> Change | None:
            if recorded.baseline != baseline:
                return None
            return service["spec"], replace(recorded, baseline=None), "BaselineDeleted", f"deleted {baseline}"

        self.rewrite(context, forget)


class KnativeRolloutBaselineOperator(BaselineSteps, KnativeDeployRevisionOperator):
    """Deploy the baseline of ``progressive_rollout(baseline=True)``: the stable's spec as a new revision.

    The group's ``deploy_baseline`` task, before its first traffic step. It takes the candidate's spec
    arguments (the deploy's), only to set the template back to the candidate once the baseline is Ready
    (so Knative reuses the candidate's revision); it deploys nothing else and moves no traffic.

    :param revision: the candidate this rollout deployed. (templated)
    :param percent: the first traffic step (for the baseline's own wait; it gets traffic with that step).
    :return: ``{"baseline": name}``.
    """

    template_fields = (*KnativeDeployRevisionOperator.template_fields, "revision")
    ui_color = "#e8ccff"

    def __init__(self, *, revision: str, percent: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.revision = revision
        self.percent = percent

    def _candidate(self) -> dict[str, Any]:
        candidate = render_template(self.service_name, self.revision_spec())
        if candidate["metadata"]["name"] != self.revision:
            raise KnativeRolloutConflictError(
                f"the candidate of this rollout is {self.revision}, but its spec renders "
                f"{candidate['metadata']['name']}; nothing was changed. Give it the deploy's spec"
            )
        return candidate

    def execute(self, context: Context) -> Any:
        """Set the template to the stable's spec under the baseline's name; wait until it is Ready."""
        self.validate_target()
        self._candidate()
        state = self.recorded_state()
        self.check_owner(state)
        self.hold_lock()
        return self.deploy_baseline(context, state, str(self.revision), self.percent, "execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Set the template back to the candidate; fail (the group rolls back) if the baseline failed."""
        failure = self.baseline_started(context, event, self._candidate())
        if failure is not None:
            raise KnativeAnalysisFailedError(
                f"rollout of {self.revision} in {self.service_path}: {failure}. Traffic was not changed by "
                "this step; the group's rollback leaves the stable revision at 100%"
            )
        return {"baseline": event.get("name")}


class KnativeBaselineTrafficOperator(KnativeSetTrafficOperator):
    """Give the candidate its step and the recorded baseline as much (the group's ``traffic_<percent>``).

    The split is :func:`~knative_rollout.resources.canary_split` of the baseline the Service records now,
    as the single task's shifts are; at 100% the baseline leaves the traffic.

    :param percent: the candidate's traffic at this step.
    """

    def __init__(self, *, percent: int, **kwargs: Any) -> None:
        super().__init__(traffic=canary_split(percent, None), **kwargs)
        self.percent = percent

    def compute(
        self, service: dict[str, Any], state: RolloutState, revisions: Mapping[str, RevisionInfo]
    ) -> tuple[dict[str, Any], RolloutState, str, str]:
        """Resolve the canary split with the recorded baseline beside the candidate."""
        self.traffic = canary_split(self.percent, state.baseline)
        return super().compute(service, state, revisions)
