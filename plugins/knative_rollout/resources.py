"""Knative manifests, revision names, traffic math, guardrails and input validation.

Pure: no Airflow, no Kubernetes client. Operators validate everything here *before* any API call,
so bad input never leaves a half-changed Service behind. Errors are :class:`RolloutInputError`
(a ``ValueError``); the operators turn them into permanent task failures.

Design choices:

- A revision's name is ``{service}-{hash}`` where the hash covers the canonical template spec, so a
  retry or a rerun with the same inputs names (and therefore reuses) the same revision.
- Traffic always names revisions. The stable revision carries the tag ``stable`` and the candidate a
  configurable tag (``candidate``), so both have their own URL: ``http://{tag}-{service}.{ns}.{domain}``.
- The rollout state lives in the Service's annotations under :data:`ANNOTATION_PREFIX`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from knative_rollout.policy import HistoryEntry, RolloutPhase, RolloutState


class RolloutInputError(ValueError):
    """Input that can never work; retrying does not help. The message says what to change."""


class GuardrailViolation(RolloutInputError):
    """Input outside the platform's guardrails (namespaces, registries, resource limits)."""


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

ANNOTATION_PREFIX = "rollout.knative-rollout.dev/"
STABLE_ANNOTATION = ANNOTATION_PREFIX + "stable-revision"
CANDIDATE_ANNOTATION = ANNOTATION_PREFIX + "candidate-revision"
PREVIOUS_STABLE_ANNOTATION = ANNOTATION_PREFIX + "previous-stable-revision"
PHASE_ANNOTATION = ANNOTATION_PREFIX + "phase"
STEP_ANNOTATION = ANNOTATION_PREFIX + "step"
HISTORY_ANNOTATION = ANNOTATION_PREFIX + "history"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "knative-rollout"
SERVICE_LABEL = "serving.knative.dev/service"

STABLE_TAG = "stable"
DEFAULT_CANDIDATE_TAG = "candidate"
STABLE_ALIAS = "@stable"
CANDIDATE_ALIAS = "@candidate"
LATEST_ALIAS = "@latest"
ALIASES = (STABLE_ALIAS, CANDIDATE_ALIAS, LATEST_ALIAS)

REVISION_HASH_LENGTH = 10
MAX_NAME_LENGTH = 63
MAX_SERVICE_NAME_LENGTH = MAX_NAME_LENGTH - REVISION_HASH_LENGTH - 1
# Knative's queue-proxy listens on these ports in every pod, so the user container cannot.
RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091})
# Knative sets these in every container; a user value would be silently overwritten.
RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})
AUTOSCALING_PREFIX = "autoscaling.knative.dev/"
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
GPU_RESOURCE = "nvidia.com/gpu"

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE = re.compile(r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*$")


def check_dns1035(value: object, what: str) -> str:
    """Return ``value`` when it is a DNS-1035 label (what Knative requires of service names and tags).

    :raises RolloutInputError: naming ``what`` and the rule it breaks.
    """
    if not isinstance(value, str) or not value:
        raise RolloutInputError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LENGTH or not _DNS1035.match(value):
        raise RolloutInputError(
            f"{what} {value!r} is not a valid DNS-1035 label: use at most 63 lowercase letters, digits "
            "and '-', starting with a letter and ending with a letter or digit (e.g. 'iris-classifier')"
        )
    return value


def check_service_name(value: object) -> str:
    """Return a valid Service name: DNS-1035 and short enough to prefix its revision names."""
    name = check_dns1035(value, "service name")
    if len(name) > MAX_SERVICE_NAME_LENGTH:
        raise RolloutInputError(
            f"service name {name!r} has {len(name)} characters; use at most {MAX_SERVICE_NAME_LENGTH} "
            "so that "
            f"its revision names ({{service}}-{{{REVISION_HASH_LENGTH}-char hash}}) fit in 63"
        )
    return name


def check_namespace(value: object) -> str:
    """Return ``value`` when it is a valid namespace name (a DNS-1123 label)."""
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH or not _DNS1123.match(value):
        raise RolloutInputError(
            f"namespace {value!r} is not a valid DNS-1123 label: use at most 63 lowercase letters, "
            "digits and '-' (e.g. 'models')"
        )
    return value


def check_revision_name(value: object) -> str:
    """Return ``value`` when it can name a revision."""
    return check_dns1035(value, "revision name")


def check_percent(value: object, what: str) -> int:
    """Return ``value`` when it is an integer percent in 0..100."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RolloutInputError(f"{what} must be an integer percent between 0 and 100, got {value!r}")
    if not 0 <= value <= 100:
        raise RolloutInputError(f"{what} is {value}; use a percent between 0 and 100")
    return value


def check_image(value: object) -> str:
    """Return ``value`` when it looks like a container image reference."""
    if not isinstance(value, str) or not value or not _IMAGE.match(value) or value.endswith((":", "@", "/")):
        raise RolloutInputError(
            f"image {value!r} is not a valid image reference; use REGISTRY/REPOSITORY:TAG, "
            "e.g. 'registry.example.com/team/model-server:v2'"
        )
    return value


def image_registry(image: str) -> str:
    """Return the registry host of an image reference (``docker.io`` when it names none)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


# -- resource quantities ------------------------------------------------------------------------------

_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([-+]?[0-9]+))?([a-zA-Z]{0,2})$")


def parse_quantity(value: object, what: str) -> Decimal:
    """Return a Kubernetes resource quantity (``500m``, ``2``, ``512Mi``, ``1G``) as a number.

    :raises RolloutInputError: when ``value`` is not a quantity.
    """
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    match = _QUANTITY.match(text)
    if not match:
        raise RolloutInputError(
            f"{what} {value!r} is not a Kubernetes quantity; "
            "use e.g. '500m' or '2' for CPU, '512Mi' for memory"
        )
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number) * (Decimal(10) ** int(exponent or 0))
    except InvalidOperation as error:  # pragma: no cover - the regex admits only decimal numbers
        raise RolloutInputError(f"{what} {value!r} is not a number") from error
    if suffix in _BINARY_SUFFIXES:
        return amount * _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return amount * _DECIMAL_SUFFIXES[suffix]
    raise RolloutInputError(
        f"{what} {value!r} has an unknown unit {suffix!r}; use one of m, k, M, G, T, Ki, Mi, Gi, Ti"
    )


def check_resources(resources: object) -> dict[str, dict[str, str]]:
    """Return a container ``resources`` block with only ``requests``/``limits`` of valid quantities."""
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise RolloutInputError(
            "resources must be a mapping like {'requests': {'cpu': '500m'}}, "
            f"got {type(resources).__name__}"
        )
    checked: dict[str, dict[str, str]] = {}
    for section, amounts in resources.items():
        if section not in ("requests", "limits"):
            raise RolloutInputError(f"resources has an unknown key {section!r}; use 'requests' and 'limits'")
        if not isinstance(amounts, Mapping):
            raise RolloutInputError(f"resources.{section} must be a mapping like {{'cpu': '500m'}}")
        for resource_name, amount in amounts.items():
            parse_quantity(amount, f"resources.{section}.{resource_name}")
        checked[str(section)] = {str(key): str(amount) for key, amount in amounts.items()}
    return checked


# -- guardrails ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guardrails:
    """What the platform allows a DAG to deploy. Empty allow-lists and ``None`` limits allow anything.

    :param allowed_namespaces: namespaces a rollout may touch.
    :param allowed_registries: registry hosts (optionally with a path prefix) images may come from.
    :param max_cpu: largest CPU request per container, as a quantity (``"2"``, ``"1500m"``).
    :param max_memory: largest memory request per container (``"4Gi"``).
    :param max_gpu: largest ``nvidia.com/gpu`` request per container.
    """

    allowed_namespaces: tuple[str, ...] = ()
    allowed_registries: tuple[str, ...] = ()
    max_cpu: str | None = None
    max_memory: str | None = None
    max_gpu: str | None = None

    _KEYS = ("allowed_namespaces", "allowed_registries", "max_cpu", "max_memory", "max_gpu")

    @classmethod
    def from_config(cls, config: object, source: str) -> Guardrails:
        """Return guardrails from a JSON object (a dict or its JSON text) read from ``source``.

        :raises RolloutInputError: naming ``source`` when the configuration is malformed.
        """
        if config is None or config == "":
            return cls()
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as error:
                raise RolloutInputError(f"guardrails in {source} are not valid JSON: {error}") from error
        if not isinstance(config, Mapping):
            raise RolloutInputError(
                f"guardrails in {source} must be a JSON object with keys {list(cls._KEYS)}"
            )
        unknown = sorted(set(config) - set(cls._KEYS))
        if unknown:
            raise RolloutInputError(
                f"guardrails in {source} have unknown keys {unknown}; use {list(cls._KEYS)}"
            )
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("allowed_namespaces", "allowed_registries"):
            values = config.get(key) or []
            if isinstance(values, str) or not all(isinstance(item, str) for item in values):
                raise RolloutInputError(f"guardrails {key} in {source} must be a list of strings")
            lists[key] = tuple(values)
        limits: dict[str, str | None] = {}
        for key in ("max_cpu", "max_memory", "max_gpu"):
            value = config.get(key)
            if value is not None:
                parse_quantity(value, f"guardrails {key} in {source}")
            limits[key] = None if value is None else str(value)
        return cls(
            allowed_namespaces=lists["allowed_namespaces"],
            allowed_registries=lists["allowed_registries"],
            max_cpu=limits["max_cpu"],
            max_memory=limits["max_memory"],
            max_gpu=limits["max_gpu"],
        )

    def check_namespace(self, namespace: str) -> None:
        """Refuse a namespace outside the allow-list."""
        if self.allowed_namespaces and namespace not in self.allowed_namespaces:
            raise GuardrailViolation(
                f"namespace {namespace!r} is not allowed by the guardrails; allowed namespaces: "
                f"{list(self.allowed_namespaces)}. Use one of them or ask the platform team to extend it"
            )

    def check_image(self, image: str) -> None:
        """Refuse an image from a registry outside the allow-list."""
        if not self.allowed_registries:
            return
        registry = image_registry(image)
        for allowed in self.allowed_registries:
            host, _, path = allowed.partition("/")
            if registry == host and (not path or image.startswith(f"{host}/{path.rstrip('/')}/")):
                return
        raise GuardrailViolation(
            f"image {image!r} comes from registry {registry!r}, which the guardrails do not allow; allowed: "
            f"{list(self.allowed_registries)}. Push the image to an allowed registry"
        )

    def check_resources(self, resources: Mapping[str, Mapping[str, str]]) -> None:
        """Refuse CPU, memory or GPU requests or limits above the guardrail maximums."""
        for name, maximum in (
            ("cpu", self.max_cpu),
            ("memory", self.max_memory),
            (GPU_RESOURCE, self.max_gpu),
        ):
            if maximum is None:
                continue
            for section in ("requests", "limits"):
                amount = resources.get(section, {}).get(name)
                if amount is None:
                    continue
                if parse_quantity(amount, f"resources.{section}.{name}") > parse_quantity(
                    maximum, f"max {name}"
                ):
                    raise GuardrailViolation(
                        f"resources.{section}.{name} of {amount} is above the guardrail limit of {maximum}; "
                        f"ask for at most {maximum}"
                    )


# -- revision template --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionSpec:
    """What a DAG asks to deploy; its canonical form names the revision."""

    image: str
    env: tuple[tuple[str, str], ...] = ()
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    annotations: tuple[tuple[str, str], ...] = ()
    autoscaling: tuple[tuple[str, str], ...] = ()
    container_port: int | None = None

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


# -- traffic ------------------------------------------------------------------------------------------

TrafficKey = tuple[str, int, str | None]


def render_traffic(split: Mapping[str, int], tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Return ``spec.traffic`` naming every revision explicitly; revisions at 0% appear only when tagged."""
    targets = []
    for revision, percent in split.items():
        if percent == 0 and revision not in tags:
            continue
        target: dict[str, Any] = {"revisionName": revision, "percent": percent, "latestRevision": False}
        if revision in tags:
            target["tag"] = tags[revision]
        targets.append(target)
    for revision, tag in tags.items():
        if revision not in split:
            targets.append({"revisionName": revision, "percent": 0, "latestRevision": False, "tag": tag})
    return sorted(targets, key=lambda target: (-int(target["percent"]), str(target["revisionName"])))


def traffic_keys(targets: Iterable[Mapping[str, Any]]) -> frozenset[TrafficKey]:
    """Return comparable (revision, percent, tag) triples of a traffic list (spec or status)."""
    return frozenset(
        (str(target.get("revisionName", "")), int(target.get("percent") or 0), target.get("tag") or None)
        for target in targets
    )


def split_of(targets: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Return percent per revision of a traffic list (a revision may appear in several targets)."""
    split: dict[str, int] = {}
    for target in targets:
        name = str(target.get("revisionName", ""))
        split[name] = split.get(name, 0) + int(target.get("percent") or 0)
    return split


def pinned_traffic(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the Service's current traffic with every target naming its revision.

    Knative routes ``latestRevision: true`` targets to whatever revision the template creates next,
    so before changing the template those targets are pinned to the revision they serve now.

    :raises RolloutInputError: when a latest-revision target has not been resolved by Knative yet.
    """
    spec_traffic = list(service.get("spec", {}).get("traffic") or [])
    status_traffic = list(service.get("status", {}).get("traffic") or [])
    resolved = {
        target.get("tag"): target.get("revisionName")
        for target in status_traffic
        if target.get("latestRevision")
    }
    pinned = []
    for target in spec_traffic:
        if target.get("revisionName"):
            pinned.append({**target, "latestRevision": False})
            continue
        revision = resolved.get(target.get("tag")) or service.get("status", {}).get("latestReadyRevisionName")
        if not revision:
            raise RolloutInputError(
                f"service {service.get('metadata', {}).get('name')!r} routes traffic to its latest revision, "
                "which "
                "is not Ready yet; wait until the service is Ready, then retry"
            )
        pinned.append(
            {key: value for key, value in target.items() if key != "configurationName"}
            | {"revisionName": revision, "latestRevision": False}
        )
    return pinned


@dataclass(frozen=True)
class RevisionInfo:
    """What traffic validation needs to know about one existing revision."""

    name: str
    ready: bool
    created: str = ""
    reason: str = ""


def resolve_revision(reference: str, state: RolloutState, latest: str | None) -> str:
    """Return the revision an alias (``@stable``, ``@candidate``, ``@latest``) or a name refers to."""
    if reference.startswith("@"):
        resolved = {STABLE_ALIAS: state.stable, CANDIDATE_ALIAS: state.candidate, LATEST_ALIAS: latest}
        if reference not in resolved:
            raise RolloutInputError(
                f"unknown traffic alias {reference!r}; use one of {list(ALIASES)} or a name"
            )
        target = resolved[reference]
        if not target:
            raise RolloutInputError(
                f"traffic alias {reference} does not resolve: the service has no {reference[1:]} "
                "revision yet; "
                "deploy one first or name a revision"
            )
        return target
    return check_revision_name(reference)


def resolve_traffic(
    requested: object,
    *,
    state: RolloutState,
    revisions: Mapping[str, RevisionInfo],
    latest: str | None,
) -> dict[str, int]:
    """Return the requested traffic as percent per revision name, after checking it can be applied.

    :param requested: mapping of revision names or aliases to integer percents.
    :param revisions: the Service's existing revisions by name.
    :param latest: name of the latest created revision, for ``@latest``.
    :raises RolloutInputError: when percents do not sum to 100, a revision is unknown or not Ready, ...
    """
    if not isinstance(requested, Mapping) or not requested:
        raise RolloutInputError(
            "traffic must be a non-empty mapping of revision names or aliases to percents, "
            "e.g. {'@stable': 90, '@candidate': 10}"
        )
    split: dict[str, int] = {}
    for reference, percent in requested.items():
        if not isinstance(reference, str):
            raise RolloutInputError(f"traffic key {reference!r} must be a revision name or an alias")
        check_percent(percent, f"traffic percent for {reference!r}")
        name = resolve_revision(reference, state, latest)
        if name in split:
            raise RolloutInputError(
                f"traffic names revision {name!r} twice (as {reference!r} and another key); name it once"
            )
        split[name] = percent
    total = sum(split.values())
    if total != 100:
        raise RolloutInputError(f"traffic percents sum to {total}, want 100: {dict(requested)}")
    for name, percent in split.items():
        info = revisions.get(name)
        if info is None:
            raise RolloutInputError(
                f"revision {name!r} does not exist in this service; existing revisions: {sorted(revisions)}"
            )
        if percent > 0 and not info.ready:
            reason = f" ({info.reason})" if info.reason else ""
            raise RolloutInputError(
                f"revision {name!r} is not Ready{reason}; only Ready revisions can receive traffic. "
                "Wait for it or deploy a fixed revision"
            )
    return split


def traffic_tags(split: Mapping[str, int], state: RolloutState, candidate_tag: str) -> dict[str, str]:
    """Return the tags of a split: ``stable`` on the stable revision, the candidate tag on the candidate."""
    tags: dict[str, str] = {}
    if state.stable:
        tags[state.stable] = STABLE_TAG
    if state.candidate and state.candidate != state.stable:
        tags[state.candidate] = candidate_tag
    return {revision: tag for revision, tag in tags.items() if revision in split or revision == state.stable}


def check_tag(tag: object) -> str:
    """Return a valid candidate tag (DNS-1035, not the stable tag)."""
    checked = check_dns1035(tag, "tag")
    if checked == STABLE_TAG:
        raise RolloutInputError(
            f"tag {STABLE_TAG!r} is reserved for the stable revision; use e.g. 'candidate'"
        )
    return checked


def tag_url(service_url: str, tag: str) -> str:
    """Return a tag's URL from the Service URL: ``http://{tag}-{service}.{ns}.{domain}``."""
    scheme, _, host = service_url.partition("://")
    return f"{scheme}://{tag}-{host}"


# -- rollout state <-> annotations ----------------------------------------------------------------------


def state_to_annotations(state: RolloutState) -> dict[str, str | None]:
    """Return the annotations that record ``state``; ``None`` means the annotation is absent."""
    return {
        STABLE_ANNOTATION: state.stable,
        CANDIDATE_ANNOTATION: state.candidate,
        PREVIOUS_STABLE_ANNOTATION: state.previous_stable,
        PHASE_ANNOTATION: state.phase.value,
        STEP_ANNOTATION: str(state.step),
        HISTORY_ANNOTATION: json.dumps(
            [{"time": entry.time, "action": entry.action, "detail": entry.detail} for entry in state.history],
            separators=(",", ":"),
        ),
    }


def apply_state(annotations: Mapping[str, str] | None, state: RolloutState) -> dict[str, str]:
    """Return ``annotations`` with the rollout state replaced by ``state``."""
    merged = {
        key: value for key, value in (annotations or {}).items() if not key.startswith(ANNOTATION_PREFIX)
    }
    merged.update({key: value for key, value in state_to_annotations(state).items() if value is not None})
    return merged


def state_from_annotations(annotations: Mapping[str, str] | None) -> RolloutState:
    """Return the rollout state recorded in ``annotations``; missing or unreadable parts read as empty."""
    annotations = annotations or {}
    try:
        phase = RolloutPhase(annotations.get(PHASE_ANNOTATION, RolloutPhase.NONE.value))
    except ValueError:
        phase = RolloutPhase.NONE
    try:
        step = int(annotations.get(STEP_ANNOTATION, "0"))
    except ValueError:
        step = 0
    try:
        raw_history = json.loads(annotations.get(HISTORY_ANNOTATION, "[]"))
    except json.JSONDecodeError:
        raw_history = []
    history = (
        tuple(
            HistoryEntry(
                time=str(item.get("time", "")),
                action=str(item.get("action", "")),
                detail=str(item.get("detail", "")),
            )
            for item in raw_history
            if isinstance(item, dict)
        )
        if isinstance(raw_history, list)
        else ()
    )
    return RolloutState(
        stable=annotations.get(STABLE_ANNOTATION) or None,
        candidate=annotations.get(CANDIDATE_ANNOTATION) or None,
        previous_stable=annotations.get(PREVIOUS_STABLE_ANNOTATION) or None,
        phase=phase,
        step=step,
        history=history,
    )


# -- reading Knative objects ----------------------------------------------------------------------------


def condition(obj: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    """Return the status condition of ``condition_type``, or ``None``."""
    for item in obj.get("status", {}).get("conditions") or []:
        if item.get("type") == condition_type:
            return item  # type: ignore[no-any-return]
    return None


def revision_info(revision: Mapping[str, Any]) -> RevisionInfo:
    """Return name, readiness and creation time of a Revision object."""
    ready = condition(revision, "Ready") or {}
    reason = ": ".join(part for part in (ready.get("reason"), ready.get("message")) if part)
    return RevisionInfo(
        name=str(revision["metadata"]["name"]),
        ready=ready.get("status") == "True",
        created=str(revision["metadata"].get("creationTimestamp", "")),
        reason=reason,
    )


def check_keep(keep: object) -> int:
    """Return ``keep`` when it is a count of revisions to keep (an integer of 0 or more)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise RolloutInputError(f"keep must be an integer of 0 or more, got {keep!r}")
    return keep


def deletable_revisions(
    revisions: Iterable[RevisionInfo], *, protected: Iterable[str], keep: int
) -> list[str]:
    """Return the revisions a teardown deletes: unprotected ones beyond the newest ``keep``.

    :param protected: revisions that serve or may serve traffic (in traffic, stable, candidate,
        rollback target, the template's own revision); never deleted, not counted in ``keep``.
    """
    check_keep(keep)
    protected_names = set(protected)
    candidates = sorted(
        (info for info in revisions if info.name not in protected_names),
        key=lambda info: (info.created, info.name),
        reverse=True,
    )
    return [info.name for info in candidates[keep:]]


def is_managed(service: Mapping[str, Any]) -> bool:
    """Return whether the Service carries this provider's ownership label."""
    labels = service.get("metadata", {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE)


def describe_split(split: Mapping[str, int]) -> str:
    """Return a short human-readable split, e.g. ``iris-1a2b=90%, iris-3c4d=10%``."""
    return ", ".join(
        f"{name}={percent}%" for name, percent in sorted(split.items(), key=lambda item: -item[1])
    )
