"""Table tests of resources.baselines: the baseline's weights beside the canary, and its template."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from knative_rollout.policy import RolloutState
from knative_rollout.resources import (
    RevisionInfo,
    baseline_percent,
    baseline_template,
    canary_split,
    render_traffic,
    resolve_traffic,
    traffic_tags,
)
from knative_rollout.resources.baselines import BASELINE_OF_ANNOTATION, BASELINE_ROLLOUT_ANNOTATION


@pytest.mark.parametrize(
    ("candidate", "baseline", "stable"),
    [(1, 1, 98), (10, 10, 80), (25, 25, 50), (49, 49, 2), (50, 50, 0), (60, 40, 0), (99, 1, 0), (100, 0, 0)],
)
def test_the_baseline_gets_the_canarys_weight_capped_by_what_is_left(
    candidate: int, baseline: int, stable: int
) -> None:
    assert baseline_percent(candidate) == baseline
    split = canary_split(candidate, "svc-base")
    assert split.get("svc-base", 0) == baseline and split["@stable"] == stable
    assert sum(split.values()) == 100 and min(split.values()) >= 0


@pytest.mark.parametrize("candidate", [10, 50, 100])
def test_without_a_baseline_the_stable_keeps_the_rest(candidate: int) -> None:
    assert canary_split(candidate, None) == {"@stable": 100 - candidate, "@candidate": candidate}


def test_at_100_percent_the_baseline_leaves_the_traffic() -> None:
    assert canary_split(100, "svc-base") == {"@stable": 0, "@candidate": 100}


STABLE_REVISION: dict[str, Any] = {
    "metadata": {
        "name": "svc-aaaa",
        "labels": {
            "app.kubernetes.io/managed-by": "knative-rollout",
            "serving.knative.dev/configuration": "svc",
            "serving.knative.dev/configurationGeneration": "1",
            "serving.knative.dev/service": "svc",
            "serving.knative.dev/routingState": "active",
        },
        "annotations": {
            "autoscaling.knative.dev/min-scale": "1",
            "serving.knative.dev/creator": "system:admin",
            "serving.knative.dev/routes": "svc",
            "serving.knative.dev/routingStateModified": "2026-01-01T00:00:00Z",
            "serving.knative.dev/progress-deadline": "120s",
            "rollout.knative-rollout.dev/attempt": "2",
            "team": "ml",
        },
    },
    "spec": {
        "containers": [{"name": "user-container", "image": "registry.example.com/m:v1"}],
        "containerConcurrency": 0,
        "timeoutSeconds": 300,
    },
    "status": {
        "containerStatuses": [{"name": "user-container", "imageDigest": "registry.example.com/m@sha256:ab"}]
    },
}


def test_the_baseline_template_runs_the_stables_spec_under_a_name_of_its_own() -> None:
    template = baseline_template("svc", STABLE_REVISION, "dag/run/canary")
    name = template["metadata"]["name"]
    assert name.startswith("svc-") and name != "svc-aaaa"
    assert template["spec"] == {
        "containers": [{"name": "user-container", "image": "registry.example.com/m@sha256:ab"}],
        "containerConcurrency": 0,
        "timeoutSeconds": 300,
    }
    assert template["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "knative-rollout"}
    assert template["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "1",
        "serving.knative.dev/progress-deadline": "120s",
        "team": "ml",
        BASELINE_OF_ANNOTATION: "svc-aaaa",
        BASELINE_ROLLOUT_ANNOTATION: "dag/run/canary",
    }


def test_the_baseline_name_is_the_same_for_a_resumed_task_and_new_for_another_rollout() -> None:
    first = baseline_template("svc", STABLE_REVISION, "dag/run/canary")
    assert baseline_template("svc", copy.deepcopy(STABLE_REVISION), "dag/run/canary") == first
    other = baseline_template("svc", STABLE_REVISION, "dag/run2/canary")["metadata"]["name"]
    assert other != first["metadata"]["name"]


def test_without_a_reported_digest_the_image_is_kept() -> None:
    stable = {**STABLE_REVISION, "status": {}}
    template = baseline_template("svc", stable, "r")
    assert template["spec"]["containers"][0]["image"] == "registry.example.com/m:v1"
    assert STABLE_REVISION["spec"]["containers"][0]["image"] == "registry.example.com/m:v1", "not mutated"


def test_a_recorded_baseline_is_tagged_and_gets_its_share_only_when_ready() -> None:
    state = RolloutState(stable="a", candidate="b", baseline="c")
    ready = {name: RevisionInfo(name=name, ready=True) for name in "abc"}
    split = resolve_traffic(canary_split(25, "c"), state=state, revisions=ready, latest=None)
    assert split == {"a": 50, "b": 25, "c": 25}
    tags = traffic_tags(split, state, "candidate")
    assert tags == {"a": "stable", "b": "candidate", "c": "baseline"}
    assert {(t["revisionName"], t["percent"], t.get("tag")) for t in render_traffic(split, tags)} == {
        ("a", 50, "stable"),
        ("b", 25, "candidate"),
        ("c", 25, "baseline"),
    }
    # Out of the split (the 100% step, the end): untagged, so it leaves the traffic.
    assert traffic_tags({"b": 100}, state, "candidate") == {"a": "stable", "b": "candidate"}
    cold = {**ready, "c": RevisionInfo(name="c", ready=False)}
    with pytest.raises(ValueError, match="'c' is not Ready"):
        resolve_traffic(canary_split(25, "c"), state=state, revisions=cold, latest=None)
