"""Table tests of resources.traffic: rendered splits, tags, aliases and refused traffic."""

from __future__ import annotations

import pytest

from knative_rollout.policy import RolloutState
from knative_rollout.resources import (
    RevisionInfo,
    RolloutInputError,
    check_tag,
    pinned_traffic,
    render_traffic,
    resolve_traffic,
    tag_url,
    traffic_keys,
    traffic_tags,
)


def test_render_traffic_drops_untagged_zero_targets_and_keeps_tagged_ones() -> None:
    targets = render_traffic({"a": 100, "b": 0, "c": 0}, {"a": "stable", "b": "candidate"})
    assert traffic_keys(targets) == {("a", 100, "stable"), ("b", 0, "candidate")}


def test_stable_keeps_its_tag_even_without_traffic() -> None:
    state = RolloutState(stable="a", candidate="b")
    assert traffic_tags({"b": 100}, state, "candidate") == {"a": "stable", "b": "candidate"}
    assert traffic_tags({"a": 100}, state, "canary") == {"a": "stable"}


REVISIONS = {
    "iris-a": RevisionInfo("iris-a", ready=True),
    "iris-b": RevisionInfo("iris-b", ready=True),
    "iris-bad": RevisionInfo("iris-bad", ready=False, reason="ContainerMissing: image not found"),
}


STATE = RolloutState(stable="iris-a", candidate="iris-b")


def test_aliases_resolve_to_recorded_revisions() -> None:
    split = resolve_traffic(
        {"@stable": 90, "@candidate": 10}, state=STATE, revisions=REVISIONS, latest="iris-bad"
    )
    assert split == {"iris-a": 90, "iris-b": 10}
    assert resolve_traffic(
        {"@latest": 0, "iris-a": 100}, state=STATE, revisions=REVISIONS, latest="iris-bad"
    ) == {
        "iris-bad": 0,
        "iris-a": 100,
    }


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"@stable": 90, "@candidate": 20}, "sum to 110, want 100"),
        ({"@stable": 50}, "sum to 50, want 100"),
        ({"@stable": 101, "@candidate": -1}, "between 0 and 100"),
        ({"@stable": 90.5, "@candidate": 9.5}, "integer percent"),
        ({"@stable": True}, "integer percent"),
        ({"@canary": 100}, "unknown traffic alias"),
        ({"iris-zzz": 100}, "does not exist"),
        ({"iris-bad": 100}, "not Ready \\(ContainerMissing"),
        ({"Iris": 100}, "DNS-1035"),
        ({"@stable": 50, "iris-a": 50}, "twice"),
        ({}, "non-empty mapping"),
        ([("a", 100)], "non-empty mapping"),
    ],
)
def test_bad_traffic_is_refused(traffic: object, message: str) -> None:
    with pytest.raises(RolloutInputError, match=message):
        resolve_traffic(traffic, state=STATE, revisions=REVISIONS, latest=None)


def test_alias_without_a_revision_says_what_to_do() -> None:
    with pytest.raises(RolloutInputError, match="no candidate revision yet; deploy one first"):
        resolve_traffic(
            {"@candidate": 100}, state=RolloutState(stable="iris-a"), revisions=REVISIONS, latest=None
        )


def test_pinned_traffic_names_the_revision_latest_targets_serve() -> None:
    service = {
        "metadata": {"name": "iris"},
        "spec": {"traffic": [{"latestRevision": True, "percent": 100}]},
        "status": {"traffic": [{"latestRevision": True, "percent": 100, "revisionName": "iris-00001"}]},
    }
    assert pinned_traffic(service) == [
        {"latestRevision": False, "percent": 100, "revisionName": "iris-00001"}
    ]
    with pytest.raises(RolloutInputError, match="not Ready yet"):
        pinned_traffic({"metadata": {"name": "iris"}, "spec": service["spec"], "status": {}})


def test_check_tag() -> None:
    assert check_tag("canary") == "canary"
    with pytest.raises(RolloutInputError, match="reserved for the stable"):
        check_tag("stable")


def test_tag_url() -> None:
    assert (
        tag_url("http://iris.models.example.com", "candidate") == "http://candidate-iris.models.example.com"
    )
