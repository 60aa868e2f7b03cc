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

# Patterns are matched whole (fullmatch): "$" alone would also accept a trailing newline.
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_IMAGE = re.compile(r"[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*")
_DIGEST = re.compile(r"[a-z0-9]+([+._-][a-z0-9]+)*:[a-f0-9]{32,}")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ROLLOUT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+@~=-]*")
MAX_IMAGE_LENGTH = 1024
MAX_ROLLOUT_ID_LENGTH = 253


def shown(value: object, limit: int = 80) -> str:
    """Return ``repr(value)`` for a message, cut to ``limit`` characters (a huge input is not echoed)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_dns1035(value: object, what: str) -> str:
    """Return ``value`` when it is a DNS-1035 label (what Knative requires of service names and tags).

    :raises RolloutInputError: naming ``what`` and the rule it breaks.
    """
    if not isinstance(value, str) or not value:
        raise RolloutInputError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LENGTH or not _DNS1035.fullmatch(value):
        raise RolloutInputError(
            f"{what} {shown(value)} is not a valid DNS-1035 label: use at most 63 lowercase letters, digits "
            "and '-', starting with a letter and ending with a letter or digit (e.g. 'iris-classifier')"
        )
    return value


def check_service_name(value: object) -> str:
    """Return a valid Service name: DNS-1035 and short enough to prefix its revision names."""
    name = value if isinstance(value, str) and len(value) > MAX_SERVICE_NAME_LENGTH else None
    name = name or check_dns1035(value, "service name")
    if len(name) > MAX_SERVICE_NAME_LENGTH:
        raise RolloutInputError(
            f"service name {shown(name)} has {len(name)} characters; use at most {MAX_SERVICE_NAME_LENGTH} "
            "so that "
            f"its revision names ({{service}}-{{{REVISION_HASH_LENGTH}-char hash}}) fit in 63"
        )
    return name


def check_namespace(value: object) -> str:
    """Return ``value`` when it is a valid namespace name (a DNS-1123 label)."""
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH or not _DNS1123.fullmatch(value):
        raise RolloutInputError(
            f"namespace {shown(value)} is not a valid DNS-1123 label: use at most 63 lowercase letters, "
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

    Strict: only booleans and the words true/false, yes/no, on/off, 1/0 (any case) are accepted; a bare
    number is refused, since 0 and 1 are more often a typo for a count than a choice.
    """
    if isinstance(value, bool):
        return value
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


def check_qualified_name(value: object, what: str) -> str:
    """Return ``value`` when it is a Kubernetes qualified name, ``[prefix/]name`` (annotation keys...)."""
    text = value if isinstance(value, str) else ""
    prefix, _, name = text.rpartition("/")
    if (
        not name
        or len(name) > MAX_NAME_LENGTH
        or not _QUALIFIED_NAME.fullmatch(name)
        or (prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)))
        or (not prefix and "/" in text)
    ):
        raise RolloutInputError(
            f"{what} {shown(value)} is not a valid Kubernetes name: an optional DNS prefix and '/', then at "
            "most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit "
            "(e.g. 'example.com/team')"
        )
    return text


def check_rollout_id(value: object) -> str:
    """Return a rollout id: printable, no spaces, at most 253 characters (it names a Lease's holder)."""
    if not isinstance(value, str) or len(value) > MAX_ROLLOUT_ID_LENGTH or not _ROLLOUT_ID.fullmatch(value):
        raise RolloutInputError(
            f"rollout_id {shown(value)} is not valid: use at most {MAX_ROLLOUT_ID_LENGTH} letters, digits "
            "and '._:/+@~=-', with no spaces or control characters (the default dag_id/run_id/group_id is)"
        )
    return value


def check_image(value: object) -> str:
    """Return ``value`` when it looks like an image reference (a well-formed ``@digest``, no ``..``)."""
    name, _, digest = value.partition("@") if isinstance(value, str) else ("", "", "")
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_IMAGE_LENGTH
        or not _IMAGE.fullmatch(value)
        or value.endswith((":", "@", "/"))
        or ".." in name.split("/")
        or any(part.startswith(".") or part.endswith(".") for part in name.split("/")[1:])
        or ("@" in value and not _DIGEST.fullmatch(digest))
    ):
        raise RolloutInputError(
            f"image {shown(value)} is not a valid image reference; use REGISTRY/REPOSITORY:TAG, "
            "e.g. 'registry.example.com/team/model-server:v2'"
        )
    return value


def image_registry(image: str) -> str:
    """Return the registry host of an image reference (``docker.io`` when it names none)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"
