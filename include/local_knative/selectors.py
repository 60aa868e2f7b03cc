"""Parse and match Kubernetes label and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from local_knative.errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]

# A requirement is split at commas that are not inside the value list of `in (...)` / `notin (...)`.
_SPLIT = re.compile(r",(?![^()]*\))")
_SET_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQUALITY_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_./-]*)\s*$")
_EXISTS_REQUIREMENT = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


def _always(_obj: dict[str, Any]) -> bool:
    return True


def parse_label_selector(selector: str | None) -> Matcher:
    """Return a predicate for ``selector`` (``a=b,c!=d,e in (x,y),f notin (z),g,!h``) over objects' labels.

    :raises ApiError: 400 when the selector cannot be parsed.
    """
    if not selector or not selector.strip():
        return _always
    checks: list[Callable[[dict[str, str]], bool]] = []
    for requirement in _SPLIT.split(selector):
        checks.append(_label_requirement(requirement, selector))

    def matches(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return matches


def _label_requirement(requirement: str, selector: str) -> Callable[[dict[str, str]], bool]:
    if match := _SET_REQUIREMENT.match(requirement):
        key, operator, raw_values = match.groups()
        values = {v.strip() for v in raw_values.split(",") if v.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY_REQUIREMENT.match(requirement):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_REQUIREMENT.match(requirement):
        negated, key = match.groups()
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(
        f"unable to parse requirement {requirement.strip()!r} in labelSelector {selector!r}: "
        "use key=value, key!=value, key in (a,b), key notin (a,b), key or !key"
    )


def parse_field_selector(selector: str | None) -> Matcher:
    """Return a predicate for ``selector`` (``metadata.name=x,involvedObject.kind!=Pod``) on dotted paths.

    Any dotted path into the object is accepted, which is a superset of what a real server allows per kind.

    :raises ApiError: 400 when the selector cannot be parsed.
    """
    if not selector or not selector.strip():
        return _always
    checks: list[tuple[list[str], bool, str]] = []
    for requirement in selector.split(","):
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(==|!=|=)\s*(.*?)\s*$", requirement)
        if not match:
            raise bad_request(
                f"invalid field selector {selector!r}: requirement {requirement!r} is not "
                "path=value, path==value or path!=value"
            )
        path, operator, value = match.groups()
        checks.append((path.split("."), operator == "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, path) == value) != negated for path, negated, value in checks)

    return matches


def _field_value(obj: dict[str, Any], path: list[str]) -> str:
    current: Any = obj
    for part in path:
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)
