"""Fault rules: parsing with clear refusals, matching by verb/resource/namespace/name, after/count, seeds."""

from __future__ import annotations

import pytest

from local_knative.faults.rules import FaultInjector, FaultRule, FaultSpecError


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("not a mapping", "must be a mapping"),
        ({"layer": "db", "error": 500}, "layer must be one of api, ingress"),
        ({"verbs": ["fetch"], "error": 500}, "unknown verb 'fetch'"),
        ({"error": 302}, "error must be an HTTP status code from 400 to 599"),
        ({"error": True}, "error must be an HTTP status code"),
        ({"verbs": ["get"]}, "the rule does nothing"),
        ({"error": 500, "reset": True}, "choose error or reset"),
        ({"watchEvents": 2, "verbs": ["list"]}, "set verbs to [watch]"),
        ({"watchEvents": 2, "error": 500}, "cannot be combined"),
        ({"delay": -1}, "delay must be a number from 0"),
        ({"probability": 1.5, "error": 500}, "probability must be a number from 0 to 1"),
        ({"count": -1, "error": 500}, "count must be a whole number"),
        ({"revisions": ["r"], "error": 500}, "unknown field 'revisions' for layer api"),
        (
            {"layer": "ingress", "resources": ["x"], "error": 500},
            "unknown field 'resources' for layer ingress",
        ),
        ({"layer": "ingress", "paths": ["no-slash"], "error": 500}, "path prefixes starting with '/'"),
        ({"errr": 500}, "unknown field 'errr'"),
    ],
)
def test_bad_rules_are_refused(spec, message) -> None:
    with pytest.raises(FaultSpecError, match=None) as raised:
        FaultRule.parse(spec, "f1")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("resources", "request_", "applies"),
    [
        (None, ("get", "services", "serving.knative.dev", None, "ns", "a"), True),
        (["services"], ("get", "services", "serving.knative.dev", None, "ns", "a"), True),
        (["services.serving.knative.dev"], ("get", "services", "serving.knative.dev", None, "ns", "a"), True),
        (
            ["services.serving.knative.dev"],
            ("get", "services", "serving.knative.dev", "status", "ns", "a"),
            False,
        ),
        (["services/status"], ("update", "services", "serving.knative.dev", "status", "ns", "a"), True),
        (["pods/log"], ("get", "pods", "", "log", "ns", "p"), True),
        (["configmaps"], ("get", "secrets", "", None, "ns", "a"), False),
        ("*", ("list", "leases", "coordination.k8s.io", None, None, None), True),
    ],
)
def test_resource_matching(resources, request_, applies) -> None:
    spec = {"error": 500} if resources is None else {"resources": resources, "error": 500}
    assert FaultRule.parse(spec, "f1").applies_to_api(*request_) is applies


def test_verbs_namespaces_and_names_narrow_a_rule() -> None:
    rule = FaultRule.parse({"verbs": "patch,update", "namespaces": ["a"], "names": ["x"], "error": 409}, "f1")
    assert rule.applies_to_api("patch", "services", "serving.knative.dev", None, "a", "x")
    assert not rule.applies_to_api("get", "services", "serving.knative.dev", None, "a", "x")
    assert not rule.applies_to_api("patch", "services", "serving.knative.dev", None, "b", "x")
    assert not rule.applies_to_api("patch", "services", "serving.knative.dev", None, "a", "y")


def test_after_count_and_first_rule_wins() -> None:
    injector = FaultInjector(seed=1)
    injector.add({"id": "narrow", "names": ["x"], "after": 1, "count": 2, "error": 500})
    injector.add({"id": "broad", "error": 503})
    fired = [getattr(injector.for_api("get", "pods", "", None, "ns", "x"), "id", None) for _ in range(5)]
    # The narrow rule lets one request through (the broad one takes it), then fires twice, then is spent.
    assert fired == ["broad", "narrow", "narrow", "broad", "broad"]
    snapshot = injector.snapshot()
    assert [(r["id"], r["matched"], r["fired"]) for r in snapshot["rules"]] == [
        ("narrow", 5, 2),
        ("broad", 3, 3),
    ]
    assert [event["rule"] for event in snapshot["fired"]] == fired


def test_the_same_seed_fails_the_same_requests() -> None:
    def pattern(seed: int) -> list[bool]:
        injector = FaultInjector(seed=seed)
        injector.add({"probability": 0.3, "error": 500})
        return [injector.for_api("list", "pods", "", None, "ns", None) is not None for _ in range(200)]

    assert pattern(42) == pattern(42)
    assert pattern(42) != pattern(43)
    assert 30 < sum(pattern(42)) < 90


def test_errors_are_worded_like_the_api_server() -> None:
    conflict = FaultRule.parse({"error": 409}, "f1").api_error(
        "services.serving.knative.dev", "serving.knative.dev", "x"
    )
    assert conflict.reason == "Conflict"
    assert conflict.message.startswith('Operation cannot be fulfilled on services.serving.knative.dev "x"')
    throttled = FaultRule.parse({"error": 429}, "f2").api_error("pods", "", "p")
    assert (throttled.reason, throttled.headers["Retry-After"]) == ("TooManyRequests", "1")
    assert throttled.to_status()["details"]["retryAfterSeconds"] == 1


def test_replace_is_all_or_nothing() -> None:
    injector = FaultInjector(seed=5)
    injector.add({"id": "keep", "error": 500})
    with pytest.raises(FaultSpecError, match="two fault rules have the id 'a'"):
        injector.replace({"rules": [{"id": "a", "error": 500}, {"id": "a", "delay": 1}]})
    with pytest.raises(FaultSpecError, match="error must be"):
        injector.replace({"rules": [{"error": 500}, {"error": 1}]})
    assert [rule.id for rule in injector.rules] == ["keep"]
    injector.replace({"seed": 9, "rules": [{"error": 500}]})
    assert (injector.seed, [rule.id for rule in injector.rules]) == (9, ["f1"])
    with pytest.raises(FaultSpecError, match="exists"):
        injector.add({"id": "f1", "error": 500})


def test_ingress_rules_match_service_revision_and_path() -> None:
    rule = FaultRule.parse(
        {"layer": "ingress", "names": ["svc"], "revisions": ["svc-2"], "paths": ["/v1/"], "error": 503}, "f1"
    )
    assert rule.applies_to_ingress("ns", "svc", "svc-2", "/v1/models/m:predict")
    assert not rule.applies_to_ingress("ns", "svc", "svc-1", "/v1/models/m:predict")
    assert not rule.applies_to_ingress("ns", "svc", "svc-2", "/healthz")
    assert not rule.applies_to_api("get", "pods", "", None, "ns", "svc")
