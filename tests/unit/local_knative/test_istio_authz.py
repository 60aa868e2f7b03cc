"""AuthorizationPolicy decisions as Istio makes them: order of actions, rule matching, failing closed."""

from __future__ import annotations

from typing import Any

import pytest

from local_knative.istio_authz import Decision, Request, decide, policy_problems, string_matches
from local_knative.istio_jwt import Identity

ISSUER = "https://issuer.example.com"
CALLER = Identity(
    {
        "iss": ISSUER,
        "sub": "caller",
        "aud": ["api"],
        "azp": "web",
        "groups": ["ml", "ops"],
        "org": {"team": "fraud"},
    }
)


def request(
    method: str = "POST",
    path: str = "/v1/models/iris:predict",
    identity: Identity | None = CALLER,
    headers: dict[str, str] | None = None,
    host: str = "iris.models.example.com",
    remote_ip: str = "127.0.0.1",
) -> Request:
    return Request(method, path, host, headers or {}, remote_ip, identity)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("/healthz", "/healthz", True),
        ("/healthz", "/healthz/x", False),
        ("/v1/models/*", "/v1/models/iris:predict", True),
        ("/v1/models/*", "/v2/models/iris", False),
        ("*:predict", "/v1/models/iris:predict", True),
        ("*:predict", "/v1/models/iris", False),
        ("*", "anything", True),
        ("*", None, False),  # presence: no principal, no match
        (f"{ISSUER}/*", f"{ISSUER}/caller", True),
    ],
)
def test_string_matches(pattern: str, value: str | None, expected: bool) -> None:
    assert string_matches(pattern, value) is expected


def allow(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"action": "ALLOW", "rules": list(rules)}


def deny(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"action": "DENY", "rules": list(rules)}


def principals(*values: str, negated: bool = False) -> dict[str, Any]:
    field = "notRequestPrincipals" if negated else "requestPrincipals"
    return {"from": [{"source": {field: list(values)}}]}


def operation(**fields: list[str]) -> dict[str, Any]:
    return {"to": [{"operation": fields}]}


def when(key: str, values: list[str] | None = None, not_values: list[str] | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"key": key}
    if values:
        condition["values"] = values
    if not_values:
        condition["notValues"] = not_values
    return {"when": [condition]}


CASES: list[tuple[str, list[dict[str, Any]], Request, bool]] = [
    ("no policy: allowed", [], request(identity=None), True),
    ("ALLOW any principal, with a token", [allow(principals("*"))], request(), True),
    ("ALLOW any principal, without a token", [allow(principals("*"))], request(identity=None), False),
    ("ALLOW one principal", [allow(principals(f"{ISSUER}/caller"))], request(), True),
    ("ALLOW another principal", [allow(principals(f"{ISSUER}/other"))], request(), False),
    ("ALLOW nothing (no rules)", [{"action": "ALLOW"}], request(), False),
    ("ALLOW everything (an empty rule)", [allow({})], request(identity=None), True),
    ("DENY without rules matches nothing", [{"action": "DENY"}], request(), True),
    ("DENY requests without a token", [deny(principals("*", negated=True))], request(identity=None), False),
    ("... lets a token through", [deny(principals("*", negated=True))], request(), True),
    ("DENY a path", [deny(operation(paths=["/admin*"]))], request(path="/admin/x"), False),
    ("DENY another path", [deny(operation(paths=["/admin*"]))], request(), True),
    ("DENY wins over ALLOW", [allow({}), deny(operation(methods=["POST"]))], request(), False),
    (
        "ALLOW in one of two policies",
        [allow(principals("nobody")), allow(operation(methods=["POST"]))],
        request(),
        True,
    ),
    (
        "methods and paths ANDed",
        [allow(operation(methods=["GET"], paths=["/v1/models/*"]))],
        request(),
        False,
    ),
    ("notPaths", [allow(operation(notPaths=["/metrics"]))], request(path="/metrics"), False),
    ("notMethods", [allow(operation(notMethods=["DELETE"]))], request(), True),
    ("hosts, case-insensitive", [allow(operation(hosts=["IRIS.models.example.com"]))], request(), True),
    ("from and to ANDed", [allow({**principals("*"), **operation(paths=["/x"])})], request(), False),
    ("claim", [allow(when("request.auth.claims[groups]", ["ml"]))], request(), True),
    ("claim not held", [allow(when("request.auth.claims[groups]", ["admins"]))], request(), False),
    ("nested claim", [allow(when("request.auth.claims[org][team]", ["fraud"]))], request(), True),
    (
        "claim without a token",
        [allow(when("request.auth.claims[groups]", ["ml"]))],
        request(identity=None),
        False,
    ),
    ("claim notValues", [allow(when("request.auth.claims[groups]", not_values=["ops"]))], request(), False),
    ("audiences", [allow(when("request.auth.audiences", ["api"]))], request(), True),
    ("presenter", [allow(when("request.auth.presenter", ["mobile"]))], request(), False),
    ("principal condition", [allow(when("request.auth.principal", [f"{ISSUER}/*"]))], request(), True),
    (
        "header condition",
        [allow(when("request.headers[X-Team]", ["fraud"]))],
        request(headers={"x-team": "fraud"}),
        True,
    ),
    ("source.ip", [allow(when("source.ip", ["10.0.0.0/8"]))], request(), False),
    ("ipBlocks", [allow({"from": [{"source": {"ipBlocks": ["127.0.0.0/8"]}}]})], request(), True),
    (
        "no peer identity: namespaces never match",
        [allow({"from": [{"source": {"namespaces": ["ns"]}}]})],
        request(),
        False,
    ),
    (
        "... and notPrincipals always does",
        [deny({"from": [{"source": {"notPrincipals": ["x"]}}]})],
        request(),
        False,
    ),
    ("unsupported field fails closed in ALLOW", [allow(operation(ports=["8080"]))], request(), False),
    ("unsupported field fails closed in DENY", [deny(operation(ports=["9999"]))], request(), False),
    ("unsupported key fails closed", [allow(when("connection.sni", ["x"]))], request(), False),
    (
        "CUSTOM denies (no external authorizer here)",
        [{"action": "CUSTOM", "provider": {"name": "opa"}}],
        request(),
        False,
    ),
    ("AUDIT never decides", [{"action": "AUDIT", "rules": [{}]}], request(), True),
]


@pytest.mark.parametrize(
    ("policies", "req", "allowed"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_decide(policies: list[dict[str, Any]], req: Request, allowed: bool) -> None:
    named = [(f"ns/p{index}", spec) for index, spec in enumerate(policies)]
    assert decide(named, req).allowed is allowed


def test_the_deny_policy_is_named() -> None:
    assert decide([("ns/a", allow({})), ("ns/b", deny({}))], request()) == Decision(False, "ns/b")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (allow(principals("*")), []),
        ({"action": "REJECT"}, ["spec.action: 'REJECT' is not one of ALLOW, DENY, AUDIT, CUSTOM"]),
        ({"action": "CUSTOM"}, ["spec.provider.name: a CUSTOM policy must name its provider"]),
        (
            allow({"when": [{"key": "request.auth.claims[x]"}]}),
            ["spec.rules[0].when[0]: at least one of values or notValues must be set"],
        ),
        (allow({"when": [{"values": ["x"]}]}), ["spec.rules[0].when[0].key: key must be set"]),
        (allow({"from": [{"source": {}}]}), ["spec.rules[0].from[0].source: source must not be empty"]),
        (allow({"to": [{"operation": {}}]}), ["spec.rules[0].to[0].operation: operation must not be empty"]),
        (
            allow({"from": [{"source": {"ipBlocks": ["10.0.0.300"]}}]}),
            ["spec.rules[0].from[0].source.ipBlocks: '10.0.0.300' is not an IP address or CIDR"],
        ),
        ([], ["spec: must be an object"]),
        ({"rules": ["x"]}, ["spec.rules[0]: must be an object"]),
        (
            allow(operation(paths="/admin")),
            ["spec.rules[0].to[0].operation.paths: must be a list of strings"],
        ),
    ],
)
def test_policy_problems(spec: Any, expected: list[str]) -> None:
    assert policy_problems(spec) == expected
