"""Validate a request's JWT the way Istio's ``RequestAuthentication`` does (Envoy's ``jwt_authn`` filter).

Every rule of every RequestAuthentication that selects a workload is one provider. The first token found
in any provider's locations (default ``Authorization: Bearer ...`` and the ``access_token`` query
parameter) is checked against the provider of its issuer, in Envoy's order, so a token that fails several
checks gets the message of the first: form, issuer, time (60 s leeway, Envoy's default clock skew),
audiences, signature. A request without a token passes: requiring one is an AuthorizationPolicy's job.
No I/O here: the caller passes the issuer's JSON Web Key Set in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

LEEWAY_S = 60
# The asymmetric algorithms Envoy verifies that PyJWT with cryptography does too.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_DEFAULT_HEADER = ("authorization", "Bearer ")
_DEFAULT_PARAM = "access_token"

# Envoy's texts (jwt_verify_lib status strings), which clients and runbooks match on.
MALFORMED = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
UNKNOWN_ISSUER = "Jwt issuer is not configured"
EXPIRED = "Jwt is expired"
NOT_YET_VALID = "Jwt not yet valid"
BAD_AUDIENCE = "Audiences in Jwt are not allowed"
BAD_SIGNATURE = "Jwt verification fails"
JWKS_FETCH_FAILED = "Jwks remote fetch is failed"


class JwtError(Exception):
    """A token was presented and is not valid: the request gets 401 with this message."""


@dataclass(frozen=True)
class JwtRule:
    """One ``jwtRules`` entry: an issuer, its accepted audiences, its keys and where its tokens are."""

    issuer: str
    audiences: tuple[str, ...] = ()
    jwks: str | None = None
    jwks_uri: str | None = None
    headers: tuple[tuple[str, str], ...] = (_DEFAULT_HEADER,)
    params: tuple[str, ...] = (_DEFAULT_PARAM,)

    @classmethod
    def parse(cls, rule: Mapping[str, Any]) -> JwtRule:
        """Read a ``jwtRules`` entry (already validated by :func:`rule_problems`)."""
        headers = tuple(
            (str(entry["name"]).lower(), str(entry.get("prefix") or ""))
            for entry in rule.get("fromHeaders") or ()
        )
        params = tuple(str(name) for name in rule.get("fromParams") or ())
        if not headers and not params:
            headers, params = (_DEFAULT_HEADER,), (_DEFAULT_PARAM,)
        return cls(
            issuer=str(rule["issuer"]),
            audiences=tuple(str(audience) for audience in rule.get("audiences") or ()),
            jwks=rule.get("jwks"),
            jwks_uri=rule.get("jwksUri"),
            headers=headers,
            params=params,
        )


def rule_problems(rule: Any, path: str) -> list[str]:
    """Return what is wrong with one ``jwtRules`` entry, each naming its field (empty when valid)."""
    if not isinstance(rule, Mapping):
        return [f"{path}: must be an object"]
    problems = []
    if not rule.get("issuer"):
        problems.append(f"{path}.issuer: issuer must be set")
    if rule.get("jwks") and rule.get("jwksUri"):
        problems.append(f"{path}: only one of jwks and jwksUri may be set")
    if rule.get("jwks"):
        try:
            jwt.PyJWKSet.from_json(str(rule["jwks"]))
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            problems.append(f"{path}.jwks: not a JSON Web Key Set: {error}")
    uri = rule.get("jwksUri")
    if uri and not str(uri).startswith(("http://", "https://", "file://")):
        problems.append(f"{path}.jwksUri: {uri!r} must be an http://, https:// or file:// URL")
    for index, header in enumerate(rule.get("fromHeaders") or ()):
        if not isinstance(header, Mapping) or not header.get("name"):
            problems.append(f"{path}.fromHeaders[{index}].name: a header name must be set")
    return problems


@dataclass(frozen=True)
class Identity:
    """What a valid token tells authorization: ``request.auth.*`` of an AuthorizationPolicy."""

    claims: Mapping[str, Any]

    @property
    def principal(self) -> str:
        """Return ``iss/sub``, what ``requestPrincipals`` match."""
        return f"{self.claims.get('iss', '')}/{self.claims.get('sub', '')}"

    @property
    def audiences(self) -> tuple[str, ...]:
        """Return the ``aud`` claim as a tuple (a single string or a list)."""
        audience = self.claims.get("aud")
        if audience is None:
            return ()
        return tuple(str(item) for item in audience) if isinstance(audience, list) else (str(audience),)

    @property
    def presenter(self) -> str | None:
        """Return the authorized party (``azp``)."""
        presenter = self.claims.get("azp")
        return None if presenter is None else str(presenter)


def find_token(
    rules: tuple[JwtRule, ...], headers: Mapping[str, str], query: Mapping[str, str]
) -> str | None:
    """Return the first token in any rule's locations, or None when the request carries none.

    :param headers: request headers, looked up by lower-case name.
    """
    for rule in rules:
        for name, prefix in rule.headers:
            value = headers.get(name)
            if value is None:
                continue
            if prefix and not value.startswith(prefix):
                continue
            return value[len(prefix) :].strip()
        for param in rule.params:
            if query.get(param):
                return query[param]
    return None


def issuer_of(token: str) -> str:
    """Return the unverified ``iss`` of a token.

    :raises JwtError: when the token is not a JWT.
    """
    if token.count(".") != 2:
        raise JwtError(MALFORMED)
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise JwtError(MALFORMED) from error
    return str(claims.get("iss", ""))


def verify(
    token: str,
    rules: tuple[JwtRule, ...],
    keys_of: Callable[[JwtRule], str],
    *,
    now: float | None = None,
) -> Identity:
    """Return the identity a token proves, checked as Envoy checks it.

    :param rules: the providers of the workload (at least one).
    :param keys_of: returns a rule's JWKS as JSON text (inline or fetched); raises JwtError if it cannot.
    :param now: the time to judge ``exp`` / ``nbf`` against (default: now).
    :raises JwtError: with Envoy's message when the token is not valid.
    """
    issuer = issuer_of(token)
    rule = next((rule for rule in rules if rule.issuer == issuer), None)
    if rule is None:
        raise JwtError(UNKNOWN_ISSUER)
    claims = jwt.decode(token, options={"verify_signature": False})
    check_claims(claims, rule, time.time() if now is None else now)
    header = jwt.get_unverified_header(token)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise JwtError(BAD_SIGNATURE)
    try:
        key_set = jwt.PyJWKSet.from_json(keys_of(rule))
    except (jwt.PyJWTError, ValueError) as error:
        raise JwtError(BAD_SIGNATURE) from error
    kid = header.get("kid")
    candidates = [key for key in key_set.keys if kid is None or key.key_id in (kid, None)]
    for key in candidates:
        try:
            jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                # check_claims did these, with Envoy's messages
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            continue
        return Identity(claims)
    raise JwtError(BAD_SIGNATURE)


def check_claims(claims: Mapping[str, Any], rule: JwtRule, now: float) -> None:
    """Check ``exp``, ``nbf`` (with :data:`LEEWAY_S`) and the audiences of a token's claims.

    :raises JwtError: with Envoy's message for the first check that fails.
    """
    expires, not_before = claims.get("exp"), claims.get("nbf")
    if isinstance(expires, int | float) and now > expires + LEEWAY_S:
        raise JwtError(EXPIRED)
    if isinstance(not_before, int | float) and now + LEEWAY_S < not_before:
        raise JwtError(NOT_YET_VALID)
    if rule.audiences and not set(Identity(claims).audiences) & set(rule.audiences):
        raise JwtError(BAD_AUDIENCE)


def key_set_json(text: str) -> str:
    """Return a fetched JWKS document as it will be parsed, refusing what is not one.

    :raises JwtError: when ``text`` is not a JSON object with ``keys``.
    """
    try:
        document = json.loads(text)
    except ValueError as error:
        raise JwtError(JWKS_FETCH_FAILED) from error
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwtError(JWKS_FETCH_FAILED)
    return text
