"""Kubernetes resource quantities (``500m``, ``512Mi``) and a container's ``resources`` block."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from knative_rollout.resources.validation import RolloutInputError, check_qualified_name

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
            check_qualified_name(resource_name, f"resources.{section} name")
            parse_quantity(amount, f"resources.{section}.{resource_name}")
        checked[str(section)] = {str(key): str(amount) for key, amount in amounts.items()}
    return checked
