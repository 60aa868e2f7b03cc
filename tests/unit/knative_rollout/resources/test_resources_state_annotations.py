"""Table tests of resources.state_annotations: the rollout state round-trips through annotations."""

from __future__ import annotations

import json

import pytest

from knative_rollout.policy import HistoryEntry, RolloutPhase, RolloutState
from knative_rollout.resources import HISTORY_ANNOTATION, apply_state, state_from_annotations


def test_state_round_trips_through_annotations_and_keeps_foreign_ones() -> None:
    state = RolloutState(
        stable="iris-a",
        candidate="iris-b",
        previous_stable=None,
        phase=RolloutPhase.CANARY,
        step=10,
        baseline="iris-c",
        history=(HistoryEntry("2026-01-01T00:00:00Z", "TrafficSet", "iris-a=90%, iris-b=10%"),),
    )
    annotations = apply_state(
        {"team": "ml", "rollout.knative-rollout.dev/previous-stable-revision": "old"}, state
    )
    assert annotations["team"] == "ml"
    assert "rollout.knative-rollout.dev/previous-stable-revision" not in annotations
    assert state_from_annotations(annotations) == state


@pytest.mark.parametrize(
    "annotations",
    [
        None,
        {},
        {HISTORY_ANNOTATION: "not json"},
        {HISTORY_ANNOTATION: json.dumps({"a": 1})},
        {"rollout.knative-rollout.dev/phase": "Bogus", "rollout.knative-rollout.dev/step": "x"},
    ],
)
def test_unreadable_state_reads_as_empty(annotations: dict[str, str] | None) -> None:
    state = state_from_annotations(annotations)
    assert state.phase is RolloutPhase.NONE and state.history == () and state.step == 0
