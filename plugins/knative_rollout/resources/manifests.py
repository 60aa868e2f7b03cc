"""Knative manifests: the revision template a DAG asks for, its deterministic name, a new Service.

A revision's name is ``{service}-{hash}`` where the hash covers the canonical template spec, so a retry
or a rerun with the same inputs names (and therefore reuses) the same revision.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from knative_rollout.resources.quantities import check_resources
from knative_rollout.resources.state_annotations import ANNOTATION_PREFIX
from knative_rollout.resources.traffic import STABLE_TAG, render_traffic
from knative_rollout.resources.validation import (
    REVISION_HASH_LENGTH,
    RolloutInputError,
    check_image,
    check_qualified_name,
    parse_int,
)


@dataclass(frozen=True)
class Resource:
    """A Kubernetes API resource reference."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """Return ``group/version`` as used in ``apiVersion``."""
        return f"{self.group}/{self.version}"


KSVC = Resource("serving.knative.dev", "v1", "services", "Service")
REVISION = Resource("serving.knative.dev", "v1", "revisions", "Revision")

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "knative-rollout"
SERVICE_LABEL = "serving.knative.dev/service"

# Knative's queue-proxy listens on these ports in every pod, so the user container cannot.
RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091})
# Knative sets these in every container; a user value would be silently overwritten.
RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})
AUTOSCALING_PREFIX = "autoscaling.knative.dev/"
ATTEMPT_ANNOTATION = ANNOTATION_PREFIX + "attempt"
AUTOSCALING_KEYS = frozenset(
    {
        "class",
        "metric",
        "target",
        "target-utilization-percentage",
        "min-scale",
        "max-scale",
        "initial-scale",
        "scale-down-delay",
        "window",
        "panic-window-percentage",
        "panic-threshold-percentage",
        "activation-scale",
    }
)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RevisionSpec:
    """What a DAG asks to deploy; its canonical form names the revision."""

    image: str
    env: tuple[tuple[str, str], ...] = ()
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    annotations: tuple[tuple[str, str], ...] = ()
    autoscaling: tuple[tuple[str, str], ...] = ()
    container_port: int | None = None
    attempt: int = 0
    """Mixed into the name when above 0, so a revision that failed can be deployed again once fixed."""

    @classmethod
    def build(
        cls,
        *,
        image: object,
        env: object = None,
        resources: object = None,
        annotations: object = None,
        autoscaling: object = None,
        container_port: object = None,
        attempt: object = 0,
    ) -> RevisionSpec:
        """Return a validated spec.

        :raises RolloutInputError: on the first invalid input, saying what to change.
        """
        return cls(
            image=check_image(image),
            env=_check_env(env),
            resources=check_resources(resources),
            annotations=_check_annotations(annotations),
            autoscaling=_check_autoscaling(autoscaling),
            container_port=_check_port(container_port),
            attempt=parse_int(attempt, "attempt", minimum=0),
        )

    def template_spec(self) -> dict[str, Any]:
        """Return the canonical ``spec.template`` content (without the name) of the revision."""
        container: dict[str, Any] = {"image": self.image}
        if self.env:
            container["env"] = [{"name": key, "value": value} for key, value in self.env]
        if self.resources:
            container["resources"] = {key: dict(value) for key, value in sorted(self.resources.items())}
        if self.container_port is not None:
            container["ports"] = [{"containerPort": self.container_port}]
        annotations = dict(self.annotations)
        annotations.update({AUTOSCALING_PREFIX + key: value for key, value in self.autoscaling})
        if self.attempt:
            annotations[ATTEMPT_ANNOTATION] = str(self.attempt)
        template: dict[str, Any] = {"metadata": {}, "spec": {"containers": [container]}}
        if annotations:
            template["metadata"]["annotations"] = dict(sorted(annotations.items()))
        template["metadata"]["labels"] = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
        return template


def _check_env(env: object) -> tuple[tuple[str, str], ...]:
    if env is None:
        return ()
    if not isinstance(env, Mapping):
        raise RolloutInputError(
            f"env must be a mapping of variable names to values, got {type(env).__name__}"
        )
    checked = []
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise RolloutInputError(
                f"env name {key!r} is not a valid variable name; use letters, digits and '_', not starting "
                "with a digit"
            )
        if key in RESERVED_ENV:
            raise RolloutInputError(f"env {key} is set by Knative in every container; remove it from env")
        if isinstance(value, (dict, list, tuple, set)) or value is None:
            raise RolloutInputError(f"env {key} must be a string or a number, got {value!r}")
        checked.append((key, str(value)))
    return tuple(sorted(checked))


def _check_annotations(annotations: object) -> tuple[tuple[str, str], ...]:
    if annotations is None:
        return ()
    if not isinstance(annotations, Mapping):
        raise RolloutInputError("annotations must be a mapping of strings to strings")
    checked = []
    for key, value in annotations.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise RolloutInputError(f"annotation {key!r}: {value!r} must map a non-empty string to a string")
        if key.startswith(ANNOTATION_PREFIX):
            raise RolloutInputError(
                f"annotation {key!r} is reserved for the rollout state; choose another key"
            )
        check_qualified_name(key, "annotation key")
        checked.append((key, value))
    return tuple(sorted(checked))


def _check_autoscaling(autoscaling: object) -> tuple[tuple[str, str], ...]:
    if autoscaling is None:
        return ()
    if not isinstance(autoscaling, Mapping):
        raise RolloutInputError("autoscaling must be a mapping like {'min-scale': 1, 'target': 10}")
    checked = []
    for key, value in autoscaling.items():
        short = str(key).removeprefix(AUTOSCALING_PREFIX)
        if short not in AUTOSCALING_KEYS:
            raise RolloutInputError(
                f"autoscaling key {key!r} is not a Knative autoscaling setting; "
                f"use one of {sorted(AUTOSCALING_KEYS)}"
            )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise RolloutInputError(f"autoscaling {short} must be a string or a number, got {value!r}")
        checked.append((short, str(value)))
    return tuple(sorted(checked))


def _check_port(port: object) -> int | None:
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RolloutInputError(f"container_port must be an integer between 1 and 65535, got {port!r}")
    if port in RESERVED_PORTS:
        raise RolloutInputError(
            f"container_port {port} is reserved by Knative's queue-proxy ({sorted(RESERVED_PORTS)}); "
            "use e.g. 8080"
        )
    return port


def revision_name(service: str, template_spec: Mapping[str, Any]) -> str:
    """Return the deterministic revision name ``{service}-{hash of the canonical template}``."""
    canonical = json.dumps(template_spec, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_HASH_LENGTH]
    return f"{service}-{digest}"


def render_template(service: str, spec: RevisionSpec) -> dict[str, Any]:
    """Return the Service's ``spec.template`` for ``spec``, named deterministically."""
    template = spec.template_spec()
    template["metadata"]["name"] = revision_name(service, template)
    return template


def render_service(
    service: str, namespace: str, spec: RevisionSpec, state_annotations: Mapping[str, str]
) -> dict[str, Any]:
    """Return a new Knative Service with the revision of ``spec`` at 100%, tagged stable."""
    template = render_template(service, spec)
    return {
        "apiVersion": KSVC.api_version,
        "kind": KSVC.kind,
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": dict(state_annotations),
        },
        "spec": {
            "template": template,
            "traffic": render_traffic(
                {template["metadata"]["name"]: 100}, {template["metadata"]["name"]: STABLE_TAG}
            ),
        },
    }


def is_managed(service: Mapping[str, Any]) -> bool:
    """Return whether the Service carries this provider's ownership label."""
    labels = service.get("metadata", {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE)
