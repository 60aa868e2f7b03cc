"""Istio's access control at the ingress: RequestAuthentication, then AuthorizationPolicy, per workload.

Istio enforces both in the sidecar of the pod a request reaches, so the ingress applies them after it has
picked the revision: the policies of the revision's namespace whose ``selector.matchLabels`` match the
revision's labels (those its pods carry, e.g. ``serving.knative.dev/service``), or that have no selector.
The answers are Envoy's: 401 with the JWT's problem (``Jwt is expired``) and a ``www-authenticate``
header, 403 ``RBAC: access denied``. The policies are followed from the store's events, so a change
applies to the next request; a namespace without policies costs one dictionary lookup.

``jwksUri`` (``http(s)://`` or ``file://``) is fetched when first needed and kept for 20 minutes, Istio's
default refresh; a fetch that fails answers 401 ``Jwks remote fetch is failed`` and is tried again on the
next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aiohttp

from local_knative import errors, kinds
from local_knative.istio_authz import Request, decide, policy_problems
from local_knative.istio_jwt import (
    JWKS_FETCH_FAILED,
    Identity,
    JwtError,
    JwtRule,
    find_token,
    issuer_of,
    key_set_json,
    rule_problems,
    verify,
)

if TYPE_CHECKING:
    from local_knative.store import Store

log = logging.getLogger(__name__)

JWKS_REFRESH_S = 20 * 60
JWKS_TIMEOUT_S = 5.0
ISTIO_WEBHOOK = "validation.istio.io"
_ISTIO_KINDS = (kinds.REQUEST_AUTHENTICATION, kinds.AUTHORIZATION_POLICY)


def admission_problems(kind: kinds.Kind, obj: Mapping[str, Any]) -> list[str]:
    """Return what Istio's validating webhook refuses in a RequestAuthentication or AuthorizationPolicy."""
    spec = obj.get("spec") or {}
    if kind == kinds.AUTHORIZATION_POLICY:
        return policy_problems(spec)
    problems = []
    issuers: set[Any] = set()
    for index, rule in enumerate(spec.get("jwtRules") or []):
        problems += rule_problems(rule, f"spec.jwtRules[{index}]")
        issuer = rule.get("issuer") if isinstance(rule, Mapping) else None
        if issuer in issuers:
            problems.append(f"spec.jwtRules[{index}].issuer: {issuer!r} is configured twice")
        issuers.add(issuer)
    return problems


def admit(kind: kinds.Kind, obj: Mapping[str, Any]) -> None:
    """Refuse an invalid Istio security object before it is stored, as Istio's webhook does.

    :raises local_knative.errors.ApiError: 400 naming every invalid field.
    """
    if kind not in _ISTIO_KINDS:
        return
    problems = admission_problems(kind, obj)
    if problems:
        raise errors.bad_request(
            f'admission webhook "{ISTIO_WEBHOOK}" denied the request: configuration is invalid: '
            + "; ".join(problems)
        )


@dataclass(frozen=True)
class Denial:
    """An answer in place of the revision's: status, Envoy's body text and extra headers."""

    status: int
    text: str
    headers: Mapping[str, str]


def _selects(spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    return all(labels.get(key) == value for key, value in match_labels.items())


class AccessControl:
    """The Istio security objects of every namespace and the labels of every revision, kept current.

    :param store: read once; the owner passes the store's later events to :meth:`on_event` (one
        subscription for the ingress, as each subscriber costs a parse of every write).
    """

    def __init__(self, store: Store) -> None:
        self._objects: dict[kinds.Kind, dict[str, dict[str, Mapping[str, Any]]]] = {
            kind: {} for kind in _ISTIO_KINDS
        }
        self._labels: dict[tuple[str, str], Mapping[str, str]] = {}
        self._keys: dict[str, tuple[float, str]] = {}
        for kind in (*_ISTIO_KINDS, kinds.REVISION):
            for obj in store.list(kind)[0]:
                self.on_event("ADDED", kind, obj)

    def on_event(self, event_type: str, kind: kinds.Kind, obj: dict[str, Any]) -> None:
        """Follow one store event (kinds other than Revisions and Istio's are ignored)."""
        if kind != kinds.REVISION and kind not in self._objects:
            return
        metadata = obj["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        if kind == kinds.REVISION:
            if event_type == "DELETED":
                self._labels.pop((namespace, name), None)
            else:
                self._labels[(namespace, name)] = metadata.get("labels") or {}
            return
        in_namespace = self._objects[kind].setdefault(namespace, {})
        if event_type == "DELETED":
            in_namespace.pop(name, None)
            if not in_namespace:
                del self._objects[kind][namespace]
        else:
            in_namespace[name] = obj.get("spec") or {}

    def applies(self, namespace: str) -> bool:
        """Return whether any policy exists in the namespace (the fast path skips the rest)."""
        return any(namespace in by_namespace for by_namespace in self._objects.values())

    def _selecting(
        self, kind: kinds.Kind, namespace: str, revision: str
    ) -> list[tuple[str, Mapping[str, Any]]]:
        labels = self._labels.get((namespace, revision), {})
        return [
            (f"{namespace}/{name}", spec)
            for name, spec in sorted(self._objects[kind].get(namespace, {}).items())
            if _selects(spec, labels)
        ]

    async def check(
        self,
        namespace: str,
        revision: str,
        *,
        method: str,
        path: str,
        host: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        remote_ip: str,
    ) -> Denial | None:
        """Return the 401 or 403 a request to ``revision`` gets, or None when it may go on.

        :param headers: request headers by lower-case name.
        """
        rules = tuple(
            JwtRule.parse(rule)
            for _name, spec in self._selecting(kinds.REQUEST_AUTHENTICATION, namespace, revision)
            for rule in spec.get("jwtRules") or []
        )
        identity: Identity | None = None
        token = find_token(rules, headers, query) if rules else None
        if token is not None:
            try:
                issuer = issuer_of(token)
                rule = next((rule for rule in rules if rule.issuer == issuer), None)
                # Fetched before the checks, raised only if they get as far as the signature (Envoy's order).
                keys = await self._key_set(rule) if rule is not None else JwtError(JWKS_FETCH_FAILED)
                identity = verify(token, rules, lambda _rule: _raise_if_error(keys))
            except JwtError as error:
                return Denial(
                    401,
                    str(error),
                    {"www-authenticate": f'Bearer realm="http://{host}{path}", error="invalid_token"'},
                )
        decision = decide(
            self._selecting(kinds.AUTHORIZATION_POLICY, namespace, revision),
            Request(
                method=method, path=path, host=host, headers=headers, remote_ip=remote_ip, identity=identity
            ),
        )
        if decision.allowed:
            return None
        # Envoy's answer names no policy; `--log-level DEBUG` does (per request, so not at INFO).
        log.debug(
            "%s %s%s to %s/%s denied: %s",
            method,
            host,
            path,
            namespace,
            revision,
            f"DENY policy {decision.policy}" if decision.policy else "no ALLOW policy matches",
        )
        return Denial(403, "RBAC: access denied", {})

    async def _key_set(self, rule: JwtRule) -> str | JwtError:
        """Return the rule's JWKS text, or the error to answer when it cannot be had."""
        if rule.jwks is not None or rule.jwks_uri is None:
            return rule.jwks or '{"keys": []}'
        cached = self._keys.get(rule.jwks_uri)
        if cached is not None and time.monotonic() - cached[0] < JWKS_REFRESH_S:
            return cached[1]
        try:
            text = key_set_json(await _fetch(rule.jwks_uri))
        except (OSError, aiohttp.ClientError, TimeoutError, JwtError) as error:
            log.warning("cannot fetch the JWKS of issuer %s from %s: %s", rule.issuer, rule.jwks_uri, error)
            return JwtError(JWKS_FETCH_FAILED)
        self._keys[rule.jwks_uri] = (time.monotonic(), text)
        return text


def _raise_if_error(keys: str | JwtError) -> str:
    if isinstance(keys, JwtError):
        raise keys
    return keys


async def _fetch(uri: str) -> str:
    if uri.startswith("file://"):
        return await asyncio.to_thread(Path(unquote(urlsplit(uri).path)).read_text)
    timeout = aiohttp.ClientTimeout(total=JWKS_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(uri) as response:
        response.raise_for_status()
        return await response.text()
