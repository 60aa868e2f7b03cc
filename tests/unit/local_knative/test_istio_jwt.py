"""RequestAuthentication's JWT checks as Envoy makes them: tokens found, verified, refused in its words."""

from __future__ import annotations

import time

import jwt
import pytest

from local_knative.istio_jwt import (
    BAD_AUDIENCE,
    BAD_SIGNATURE,
    EXPIRED,
    JWKS_FETCH_FAILED,
    LEEWAY_S,
    MALFORMED,
    NOT_YET_VALID,
    UNKNOWN_ISSUER,
    JwtError,
    JwtRule,
    find_token,
    key_set_json,
    rule_problems,
    verify,
)
from tests.jwt_keys import AUDIENCE, ISSUER, ec_key, jwks, rsa_key

RSA, EC, OTHER = rsa_key("rsa-1"), ec_key("ec-1"), rsa_key("rsa-1")  # OTHER: same kid, another key
RULE = JwtRule(ISSUER, (AUDIENCE,), jwks=jwks(RSA, EC))
NOW = int(time.time())


def _verify(token: str, rule: JwtRule = RULE) -> str:
    try:
        return verify(token, (rule,), lambda r: r.jwks or "", now=NOW).principal
    except JwtError as error:
        return str(error)


@pytest.mark.parametrize(
    ("token", "rule", "expected"),
    [
        (RSA.token(), RULE, f"{ISSUER}/caller"),
        (EC.token(), RULE, f"{ISSUER}/caller"),
        (RSA.token(sub="svc-42"), RULE, f"{ISSUER}/svc-42"),
        (RSA.token(audience=["other", AUDIENCE]), RULE, f"{ISSUER}/caller"),
        (RSA.token(audience="other"), RULE, BAD_AUDIENCE),
        (RSA.token(audience=None), RULE, BAD_AUDIENCE),
        (
            RSA.token(audience="other"),
            JwtRule(ISSUER, jwks=jwks(RSA)),
            f"{ISSUER}/caller",
        ),  # no audiences: any
        (RSA.token(issuer="https://elsewhere.example.com"), RULE, UNKNOWN_ISSUER),
        (RSA.token(exp=NOW - LEEWAY_S - 1), RULE, EXPIRED),
        (RSA.token(exp=NOW - LEEWAY_S + 5), RULE, f"{ISSUER}/caller"),  # within Envoy's clock skew
        (RSA.token(nbf=NOW + LEEWAY_S + 5), RULE, NOT_YET_VALID),
        (RSA.token(nbf=NOW + 5), RULE, f"{ISSUER}/caller"),
        (OTHER.token(), RULE, BAD_SIGNATURE),
        (OTHER.token(exp=NOW - 3600), RULE, EXPIRED),  # Envoy checks time before the signature
        (OTHER.token(audience="other"), RULE, BAD_AUDIENCE),
        (
            jwt.encode({"iss": ISSUER, "aud": AUDIENCE}, "secret-of-32-bytes-at-the-least!", "HS256"),
            RULE,
            BAD_SIGNATURE,
        ),
        (RSA.token()[:-6] + "AAAAAA", RULE, BAD_SIGNATURE),
        ("not-a-jwt", RULE, MALFORMED),
        ("a.b.c", RULE, MALFORMED),
        (RSA.token(), JwtRule(ISSUER, (AUDIENCE,), jwks=jwks(EC)), BAD_SIGNATURE),  # key not in the set
    ],
)
def test_verify(token: str, rule: JwtRule, expected: str) -> None:
    assert _verify(token, rule) == expected


def test_a_failed_key_fetch_is_answered_only_when_the_signature_is_checked() -> None:
    def unreachable(_rule: JwtRule) -> str:
        raise JwtError(JWKS_FETCH_FAILED)

    with pytest.raises(JwtError, match=JWKS_FETCH_FAILED):
        verify(RSA.token(), (RULE,), unreachable, now=NOW)
    with pytest.raises(JwtError, match=EXPIRED):
        verify(RSA.token(exp=NOW - 3600), (RULE,), unreachable, now=NOW)


def test_identity_from_the_claims() -> None:
    identity = verify(RSA.token(azp="client-7", groups=["a", "b"]), (RULE,), lambda r: r.jwks or "", now=NOW)
    assert identity.presenter == "client-7"
    assert identity.audiences == (AUDIENCE,)
    assert identity.claims["groups"] == ["a", "b"]


CUSTOM = JwtRule.parse({"issuer": ISSUER, "fromHeaders": [{"name": "X-Jwt", "prefix": "Token "}]})


@pytest.mark.parametrize(
    ("rules", "headers", "query", "expected"),
    [
        ((RULE,), {"authorization": "Bearer abc.def.ghi"}, {}, "abc.def.ghi"),
        ((RULE,), {"authorization": "Basic dXNlcjpwYXNz"}, {}, None),  # not a bearer token: no JWT
        ((RULE,), {}, {"access_token": "abc.def.ghi"}, "abc.def.ghi"),
        ((RULE,), {}, {}, None),
        ((CUSTOM,), {"x-jwt": "Token abc.def.ghi"}, {}, "abc.def.ghi"),
        ((CUSTOM,), {"authorization": "Bearer abc.def.ghi"}, {}, None),  # fromHeaders replaces the default
        ((CUSTOM, RULE), {"authorization": "Bearer abc.def.ghi"}, {}, "abc.def.ghi"),
    ],
)
def test_find_token(rules, headers, query, expected) -> None:
    assert find_token(rules, headers, query) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"issuer": ISSUER, "jwks": jwks(RSA)}, []),
        ({"issuer": ISSUER, "jwksUri": "https://example.com/certs"}, []),
        ({"jwks": jwks(RSA)}, ["r.issuer: issuer must be set"]),
        (
            {"issuer": ISSUER, "jwks": jwks(RSA), "jwksUri": "file:///k"},
            ["r: only one of jwks and jwksUri may be set"],
        ),
        (
            {"issuer": ISSUER, "jwksUri": "/etc/keys.json"},
            ["r.jwksUri: '/etc/keys.json' must be an http://, https:// or file:// URL"],
        ),
        (
            {"issuer": ISSUER, "fromHeaders": [{"prefix": "Bearer "}]},
            ["r.fromHeaders[0].name: a header name must be set"],
        ),
        ("issuer", ["r: must be an object"]),
    ],
)
def test_rule_problems(rule, expected) -> None:
    assert rule_problems(rule, "r") == expected


def test_rule_problems_names_a_bad_inline_jwks() -> None:
    (problem,) = rule_problems({"issuer": ISSUER, "jwks": "{not json"}, "r")
    assert problem.startswith("r.jwks: not a JSON Web Key Set")


@pytest.mark.parametrize("text", ["<html>", "[]", '{"kid": "x"}'])
def test_a_fetched_document_that_is_no_key_set_is_a_failed_fetch(text: str) -> None:
    with pytest.raises(JwtError, match=JWKS_FETCH_FAILED):
        key_set_json(text)
