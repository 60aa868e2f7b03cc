"""Guardrails: what the platform allows a DAG to deploy (namespaces, registries, resource maximums)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from knative_rollout.resources.quantities import parse_quantity
from knative_rollout.resources.validation import RolloutInputError, image_registry


class GuardrailViolation(RolloutInputError):
    """Input outside the platform's guardrails (namespaces, registries, resource limits)."""


GPU_RESOURCE = "nvidia.com/gpu"


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
