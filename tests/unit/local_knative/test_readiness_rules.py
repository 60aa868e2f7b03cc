"""Readiness fault rules: what they accept, and when they hold a revision's pods NotReady."""

from __future__ import annotations

import pytest

from local_knative.faults.rules import FaultInjector, FaultRule, FaultSpecError


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"layer": "readiness"}, "needs period"),
        ({"layer": "readiness", "period": 0}, "period must be a number from 0.1"),
        ({"layer": "readiness", "period": 1, "error": 503}, "unknown field 'error' for layer readiness"),
        ({"layer": "readiness", "period": 1, "duration": "long"}, "duration must be a number"),
    ],
)
def test_bad_readiness_rules_are_refused_naming_the_field(spec, message) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultRule.parse(spec, "r1")


@pytest.mark.parametrize(
    ("elapsed", "down"),
    [
        (0.0, True),
        (1.9, True),
        (2.0, False),
        (3.9, False),
        (4.0, True),
        (5.9, True),
        (6.0, False),
        (9.0, False),
    ],
)
def test_hold_alternates_each_period_until_the_duration(elapsed, down) -> None:
    rule = FaultRule.parse({"layer": "readiness", "period": 2, "duration": 6}, "r1")
    assert rule.holds_down(rule.added + elapsed) is down


def test_injector_matches_namespace_service_and_revision_and_records() -> None:
    injector = FaultInjector(seed=1)
    rule = injector.add({"layer": "readiness", "namespaces": ["ns"], "names": ["svc"], "period": 1})
    now = rule.added
    assert injector.readiness_hold("ns", "svc", "svc-00001", now) is rule
    assert injector.readiness_hold("other", "svc", "svc-00001", now) is None
    assert injector.readiness_hold("ns", "svc", "svc-00001", now + 1.5) is None
    injector.record(rule, {"namespace": "ns", "revision": "svc-00001", "pod": "p"})
    snapshot = injector.snapshot()
    assert snapshot["rules"][0]["fired"] == 1 and snapshot["rules"][0]["period"] == 1
    assert "probability" not in snapshot["rules"][0] and snapshot["fired"][0]["pod"] == "p"
