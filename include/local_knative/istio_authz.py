"""Decide a request the way Istio's ``AuthorizationPolicy`` does (Envoy's RBAC filter), with no I/O.

Order, as Istio documents it: a CUSTOM or DENY policy with a matching rule denies; then, if any ALLOW
policy selects the workload, the request must match a rule of one of them; with no ALLOW policy it is
allowed. A rule matches when each of ``from``, ``to`` and ``when`` does; entries of a list are ORed,
fields of an entry ANDed, values of a field ORed, and a ``not*`` field must match none of its values.
Strings match exactly, by prefix (``abc*``), by suffix (``*abc``) or by presence (``*``).

Requests through local_knative's ingress come from outside any mesh, so they carry no peer identity:
``principals`` and ``namespaces`` (and ``source.principal`` / ``source.namespace``) never match, their
``not*`` forms always do. What is not evaluated here (``ports``, other ``when`` keys, CUSTOM providers)
fails closed, as Istio treats a rule it cannot apply: it never matches in an ALLOW policy and always
matches in a DENY one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local_knative.istio_jwt import Identity

ACTIONS = ("ALLOW", "DENY", "AUDIT", "CUSTOM")
_SOURCE_FIELDS = ("principals", "requestPrincipals", "namespaces", "ipBlocks", "remoteIpBlocks")
_OPERATION_FIELDS = ("hosts", "ports", "methods", "paths")
_CLAIM_KEY = re.compile(r"^request\.auth\.claims((?:\[[^\[\]]+\])+)$")
_HEADER_KEY = re.compile(r"^request\.headers\[([^\[\]]+)\]$")


class _Unsupported(Exception):
    """A rule uses something this module does not evaluate: it fails closed."""


@dataclass(frozen=True)
class Request:
    """The attributes of one request that policies look at.

    :param headers: request headers by lower-case name.
    :param identity: what a valid JWT proved, or None without one.
    """

    method: str
    path: str
    host: str
    headers: Mapping[str, str]
    remote_ip: str
    identity: Identity | None = None


@dataclass(frozen=True)
class Decision:
    """Allowed, or denied by the named policy (``namespace/name``; none: no ALLOW policy matched)."""

    allowed: bool
    policy: str | None = None


def string_matches(pattern: str, value: str | None) -> bool:
    """Match one Istio string pattern: exact, ``prefix*``, ``*suffix`` or ``*`` (any value present)."""
    if value is None:
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _any_string(patterns: list[str], values: tuple[str, ...]) -> bool:
    return any(string_matches(pattern, value) for pattern in patterns for value in values)


def _in_blocks(blocks: list[str], address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(block, strict=False) for block in blocks)


def _values(field_name: str, request: Request) -> tuple[str, ...] | None:
    """Return the request's values for a source or operation field (empty: none; None: unsupported)."""
    if field_name == "requestPrincipals":
        return (request.identity.principal,) if request.identity else ()
    if field_name in ("principals", "namespaces"):
        return ()
    if field_name == "methods":
        return (request.method,)
    if field_name == "paths":
        return (request.path,)
    if field_name == "hosts":
        return (request.host.lower(),)
    return None


def _field_matches(field_name: str, patterns: list[str], request: Request) -> bool:
    if field_name in ("ipBlocks", "remoteIpBlocks"):
        return _in_blocks(patterns, request.remote_ip)
    values = _values(field_name, request)
    if values is None:
        raise _Unsupported(field_name)
    if field_name == "hosts":
        patterns = [pattern.lower() for pattern in patterns]
    return _any_string(patterns, values)


def _entry_matches(entry: Mapping[str, Any], fields: tuple[str, ...], request: Request) -> bool:
    for field_name in fields:
        negated = _negated(field_name)
        if entry.get(field_name) and not _field_matches(field_name, entry[field_name], request):
            return False
        if entry.get(negated) and _field_matches(field_name, entry[negated], request):
            return False
    return True


def _condition_values(key: str, request: Request) -> tuple[str, ...]:
    identity = request.identity
    if key == "request.auth.principal":
        return (identity.principal,) if identity else ()
    if key == "request.auth.audiences":
        return identity.audiences if identity else ()
    if key == "request.auth.presenter":
        return (identity.presenter,) if identity and identity.presenter is not None else ()
    if key in ("source.principal", "source.namespace"):
        return ()
    claim = _CLAIM_KEY.match(key)
    if claim:
        value: Any = identity.claims if identity else None
        for name in re.findall(r"\[([^\[\]]+)\]", claim.group(1)):
            value = value.get(name) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(item for item in value if isinstance(item, str))
        return ()
    header = _HEADER_KEY.match(key)
    if header:
        found = request.headers.get(header.group(1).lower())
        return (found,) if found is not None else ()
    raise _Unsupported(key)


def _condition_matches(condition: Mapping[str, Any], request: Request) -> bool:
    key = str(condition.get("key", ""))
    if key in ("source.ip", "remote.ip"):
        values_match = _in_blocks(condition.get("values") or [], request.remote_ip)
        not_values_match = _in_blocks(condition.get("notValues") or [], request.remote_ip)
    else:
        values = _condition_values(key, request)
        values_match = _any_string(condition.get("values") or [], values)
        not_values_match = _any_string(condition.get("notValues") or [], values)
    return (not condition.get("values") or values_match) and not not_values_match


def rule_matches(rule: Mapping[str, Any], request: Request) -> bool:
    """Return whether one rule matches (raises :class:`_Unsupported` for what is not evaluated)."""
    sources = rule.get("from") or []
    if sources and not any(
        _entry_matches(entry.get("source") or {}, _SOURCE_FIELDS, request) for entry in sources
    ):
        return False
    operations = rule.get("to") or []
    if operations and not any(
        _entry_matches(entry.get("operation") or {}, _OPERATION_FIELDS, request) for entry in operations
    ):
        return False
    return all(_condition_matches(condition, request) for condition in rule.get("when") or [])


def policy_matches(spec: Mapping[str, Any], request: Request) -> bool:
    """Return whether any rule of a policy matches; a rule that cannot be evaluated fails closed."""
    action = spec.get("action") or "ALLOW"
    if action == "CUSTOM":
        return True  # no external authorizer runs here: deny rather than let everything through
    for rule in spec.get("rules") or []:
        try:
            if rule_matches(rule, request):
                return True
        except _Unsupported:
            if action == "DENY":
                return True
    return False


def decide(policies: list[tuple[str, Mapping[str, Any]]], request: Request) -> Decision:
    """Decide a request against the policies (``(namespace/name, spec)``) that select its workload."""
    allow = []
    for name, spec in policies:
        action = spec.get("action") or "ALLOW"
        if action in ("DENY", "CUSTOM") and policy_matches(spec, request):
            return Decision(False, name)
        if action == "ALLOW":
            allow.append((name, spec))
    if not allow or any(policy_matches(spec, request) for _name, spec in allow):
        return Decision(True)
    return Decision(False, None)


def policy_problems(spec: Any) -> list[str]:
    """Return what Istio's validation refuses in an AuthorizationPolicy spec, each naming its field."""
    if not isinstance(spec, Mapping):
        return ["spec: must be an object"]
    problems = []
    action = spec.get("action") or "ALLOW"
    if action not in ACTIONS:
        problems.append(f"spec.action: {action!r} is not one of {', '.join(ACTIONS)}")
    if action == "CUSTOM" and not (spec.get("provider") or {}).get("name"):
        problems.append("spec.provider.name: a CUSTOM policy must name its provider")
    rules = spec.get("rules") or []
    if not isinstance(rules, list):
        return [*problems, "spec.rules: must be a list"]
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            problems.append(f"spec.rules[{index}]: must be an object")
            continue
        problems += _rule_problems(rule, f"spec.rules[{index}]")
    return problems


def _rule_problems(rule: Mapping[str, Any], path: str) -> list[str]:
    problems = []
    for condition_index, condition in enumerate(rule.get("when") or []):
        where = f"{path}.when[{condition_index}]"
        if not isinstance(condition, Mapping):
            problems.append(f"{where}: must be an object")
        elif not condition.get("key"):
            problems.append(f"{where}.key: key must be set")
        elif not condition.get("values") and not condition.get("notValues"):
            problems.append(f"{where}: at least one of values or notValues must be set")
    for part, inner, fields in (("from", "source", _SOURCE_FIELDS), ("to", "operation", _OPERATION_FIELDS)):
        for entry_index, entry in enumerate(rule.get(part) or []):
            where = f"{path}.{part}[{entry_index}].{inner}"
            body = entry.get(inner) if isinstance(entry, Mapping) else None
            if not isinstance(body, Mapping) or not any(
                body.get(name) or body.get(_negated(name)) for name in fields
            ):
                problems.append(f"{where}: {inner} must not be empty")
                continue
            for name in (*fields, *(_negated(name) for name in fields)):
                if body.get(name) is not None and not (
                    isinstance(body[name], list) and all(isinstance(value, str) for value in body[name])
                ):
                    problems.append(f"{where}.{name}: must be a list of strings")
            for name in ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"):
                for block in body.get(name) or []:
                    try:
                        ipaddress.ip_network(block, strict=False)
                    except (ValueError, TypeError):
                        problems.append(f"{where}.{name}: {block!r} is not an IP address or CIDR")
    return problems


def _negated(field_name: str) -> str:
    return "not" + field_name[0].upper() + field_name[1:]
