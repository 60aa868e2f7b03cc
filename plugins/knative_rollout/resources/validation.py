"""Input validation shared by the whole provider: Kubernetes names, percents, image references.

Operators validate everything *before* any API call, so bad input never leaves a half-changed Service
behind. Errors are :class:`RolloutInputError` (a ``ValueError``); the operators turn them into permanent
task failures.
"""

from __future__ import annotations

import re


class RolloutInputError(ValueError):
    """Input that can never work; retrying does not help. The message says what to change."""


REVISION_HASH_LENGTH = 10
MAX_NAME_LENGTH = 63
MAX_SERVICE_NAME_LENGTH = MAX_NAME_LENGTH - REVISION_HASH_LENGTH - 1

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
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


_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})


def parse_int(value: object, what: str, *, minimum: int | None = None) -> int:
    """Return an integer argument, also when a template rendered it as text (``"3"``).

    Strict: ``True``, ``2.5``, ``"2.5"`` and ``"abc"`` are errors, not numbers.
    """
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        wanted = "an integer" if minimum is None else f"an integer of {minimum} or more"
        raise RolloutInputError(f"{what} must be {wanted}, got {value!r}")
    if minimum is not None and value < minimum:
        raise RolloutInputError(f"{what} must be an integer of {minimum} or more, got {value}")
    return value


def parse_bool(value: object, what: str) -> bool:
    """Return a boolean argument, also when a template rendered it as text: ``"False"`` is false.

    Strict: only booleans, 0/1 and the words true/false, yes/no, on/off (any case) are accepted.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS and word:
            return False
    raise RolloutInputError(f"{what} must be true or false, got {value!r}")


def check_percent(value: object, what: str) -> int:
    """Return ``value`` when it is an integer percent in 0..100 (text such as ``"10"`` is parsed)."""
    try:
        percent = parse_int(value, what)
    except RolloutInputError:
        raise RolloutInputError(
            f"{what} must be an integer percent between 0 and 100, got {value!r}"
        ) from None
    if not 0 <= percent <= 100:
        raise RolloutInputError(f"{what} is {percent}; use a percent between 0 and 100")
    return percent


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
