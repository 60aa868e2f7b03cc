"""Knative manifests, revision names, traffic math, rollout state, guardrails and input validation.

Pure: no Airflow, no Kubernetes client. Operators validate everything here *before* any API call, so
bad input never leaves a half-changed Service behind. Errors are :class:`RolloutInputError` (a
``ValueError``); the operators turn them into permanent task failures.

The rest of the provider imports from this package; the submodules are its seams:

- :mod:`~knative_rollout.resources.validation`: the error type, Kubernetes names, percents, images.
- :mod:`~knative_rollout.resources.quantities`: resource quantities and a container's ``resources``.
- :mod:`~knative_rollout.resources.guardrails`: what the platform allows a DAG to deploy.
- :mod:`~knative_rollout.resources.manifests`: the revision template, its deterministic name, a Service.
- :mod:`~knative_rollout.resources.traffic`: traffic splits, tags and aliases.
- :mod:`~knative_rollout.resources.revisions`: revision readiness and teardown selection.
- :mod:`~knative_rollout.resources.state_annotations`: the rollout state kept in the Service's annotations.
- :mod:`~knative_rollout.resources.deploys`: what a deploy does (nothing, create, reuse) or why it is refused.
- :mod:`~knative_rollout.resources.baselines`: a canary analysis' fresh baseline: its template and weights.
- :mod:`~knative_rollout.resources.leases`: the per-Service rollout lock (a Lease) and who holds it.
"""

from __future__ import annotations

from knative_rollout.resources.baselines import baseline_percent, baseline_template, canary_split
from knative_rollout.resources.deploys import DeployKind, DeployPlan, adopted_stable, plan_deploy
from knative_rollout.resources.guardrails import GPU_RESOURCE, Guardrails, GuardrailViolation
from knative_rollout.resources.leases import (
    DEFAULT_LEASE_SECONDS,
    LEASE,
    LeaseHolding,
    held_lease,
    holding_of,
    lease_name,
    released_lease,
)
from knative_rollout.resources.manifests import (
    ATTEMPT_ANNOTATION,
    AUTOSCALING_KEYS,
    AUTOSCALING_PREFIX,
    KSVC,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    RESERVED_ENV,
    RESERVED_PORTS,
    REVISION,
    SERVICE_LABEL,
    Resource,
    RevisionSpec,
    is_managed,
    render_service,
    render_template,
    revision_name,
)
from knative_rollout.resources.quantities import check_resources, parse_quantity
from knative_rollout.resources.revisions import (
    RevisionInfo,
    check_keep,
    condition,
    deletable_revisions,
    revision_info,
)
from knative_rollout.resources.state_annotations import (
    ANNOTATION_PREFIX,
    BASELINE_ANNOTATION,
    CANDIDATE_ANNOTATION,
    HISTORY_ANNOTATION,
    PHASE_ANNOTATION,
    PREVIOUS_STABLE_ANNOTATION,
    ROLLOUT_ID_ANNOTATION,
    ROLLOUT_REVISION_ANNOTATION,
    ROLLOUT_SINCE_ANNOTATION,
    STABLE_ANNOTATION,
    STEP_ANNOTATION,
    apply_state,
    state_from_annotations,
    state_to_annotations,
)
from knative_rollout.resources.traffic import (
    ALIASES,
    BASELINE_TAG,
    CANDIDATE_ALIAS,
    DEFAULT_CANDIDATE_TAG,
    LATEST_ALIAS,
    STABLE_ALIAS,
    STABLE_TAG,
    TrafficKey,
    check_tag,
    describe_split,
    pinned_traffic,
    render_traffic,
    resolve_revision,
    resolve_traffic,
    split_of,
    tag_url,
    traffic_keys,
    traffic_tags,
)
from knative_rollout.resources.validation import (
    MAX_NAME_LENGTH,
    MAX_SERVICE_NAME_LENGTH,
    REVISION_HASH_LENGTH,
    RolloutInputError,
    check_dns1035,
    check_image,
    check_namespace,
    check_percent,
    check_qualified_name,
    check_revision_name,
    check_rollout_id,
    check_service_name,
    image_registry,
    parse_bool,
    parse_int,
)

__all__ = [
    "ALIASES",
    "ANNOTATION_PREFIX",
    "ATTEMPT_ANNOTATION",
    "AUTOSCALING_KEYS",
    "AUTOSCALING_PREFIX",
    "BASELINE_ANNOTATION",
    "BASELINE_TAG",
    "CANDIDATE_ALIAS",
    "CANDIDATE_ANNOTATION",
    "DEFAULT_CANDIDATE_TAG",
    "DEFAULT_LEASE_SECONDS",
    "GPU_RESOURCE",
    "HISTORY_ANNOTATION",
    "KSVC",
    "LATEST_ALIAS",
    "LEASE",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "MAX_NAME_LENGTH",
    "MAX_SERVICE_NAME_LENGTH",
    "PHASE_ANNOTATION",
    "PREVIOUS_STABLE_ANNOTATION",
    "RESERVED_ENV",
    "RESERVED_PORTS",
    "REVISION",
    "REVISION_HASH_LENGTH",
    "ROLLOUT_ID_ANNOTATION",
    "ROLLOUT_REVISION_ANNOTATION",
    "ROLLOUT_SINCE_ANNOTATION",
    "SERVICE_LABEL",
    "STABLE_ALIAS",
    "STABLE_ANNOTATION",
    "STABLE_TAG",
    "STEP_ANNOTATION",
    "DeployKind",
    "DeployPlan",
    "GuardrailViolation",
    "Guardrails",
    "LeaseHolding",
    "Resource",
    "RevisionInfo",
    "RevisionSpec",
    "RolloutInputError",
    "TrafficKey",
    "adopted_stable",
    "apply_state",
    "baseline_percent",
    "baseline_template",
    "canary_split",
    "check_dns1035",
    "check_image",
    "check_keep",
    "check_namespace",
    "check_percent",
    "check_qualified_name",
    "check_resources",
    "check_revision_name",
    "check_rollout_id",
    "check_service_name",
    "check_tag",
    "condition",
    "deletable_revisions",
    "describe_split",
    "held_lease",
    "holding_of",
    "image_registry",
    "is_managed",
    "lease_name",
    "parse_bool",
    "parse_int",
    "parse_quantity",
    "pinned_traffic",
    "plan_deploy",
    "released_lease",
    "render_service",
    "render_template",
    "render_traffic",
    "resolve_revision",
    "resolve_traffic",
    "revision_info",
    "revision_name",
    "split_of",
    "state_from_annotations",
    "state_to_annotations",
    "tag_url",
    "traffic_keys",
    "traffic_tags",
]
