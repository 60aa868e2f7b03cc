"""The rollout state, kept in the Knative Service's annotations under :data:`ANNOTATION_PREFIX`.

Any task, retry, rerun or another DAG reads where a rollout stands from the Service itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from knative_rollout.policy import HistoryEntry, RolloutPhase, RolloutState

ANNOTATION_PREFIX = "rollout.knative-rollout.dev/"
STABLE_ANNOTATION = ANNOTATION_PREFIX + "stable-revision"
CANDIDATE_ANNOTATION = ANNOTATION_PREFIX + "candidate-revision"
PREVIOUS_STABLE_ANNOTATION = ANNOTATION_PREFIX + "previous-stable-revision"
PHASE_ANNOTATION = ANNOTATION_PREFIX + "phase"
STEP_ANNOTATION = ANNOTATION_PREFIX + "step"
HISTORY_ANNOTATION = ANNOTATION_PREFIX + "history"
ROLLOUT_ID_ANNOTATION = ANNOTATION_PREFIX + "rollout-id"
ROLLOUT_REVISION_ANNOTATION = ANNOTATION_PREFIX + "rollout-revision"
ROLLOUT_SINCE_ANNOTATION = ANNOTATION_PREFIX + "rollout-since"
BASELINE_ANNOTATION = ANNOTATION_PREFIX + "baseline-revision"


def state_to_annotations(state: RolloutState) -> dict[str, str | None]:
    """Return the annotations that record ``state``; ``None`` means the annotation is absent."""
    return {
        STABLE_ANNOTATION: state.stable,
        CANDIDATE_ANNOTATION: state.candidate,
        PREVIOUS_STABLE_ANNOTATION: state.previous_stable,
        PHASE_ANNOTATION: state.phase.value,
        STEP_ANNOTATION: str(state.step),
        ROLLOUT_ID_ANNOTATION: state.rollout_id,
        ROLLOUT_REVISION_ANNOTATION: state.rollout_revision,
        ROLLOUT_SINCE_ANNOTATION: state.rollout_since,
        BASELINE_ANNOTATION: state.baseline,
        HISTORY_ANNOTATION: json.dumps(
            [
                {"time": entry.time, "action": entry.action, "detail": entry.detail, "by": entry.by}
                for entry in state.history
            ],
            separators=(",", ":"),
        ),
    }


def apply_state(annotations: Mapping[str, str] | None, state: RolloutState) -> dict[str, str]:
    """Return ``annotations`` with the rollout state replaced by ``state``."""
    merged = {
        key: value for key, value in (annotations or {}).items() if not key.startswith(ANNOTATION_PREFIX)
    }
    merged.update({key: value for key, value in state_to_annotations(state).items() if value is not None})
    return merged


def state_from_annotations(annotations: Mapping[str, str] | None) -> RolloutState:
    """Return the rollout state recorded in ``annotations``; missing or unreadable parts read as empty."""
    annotations = annotations or {}
    try:
        phase = RolloutPhase(annotations.get(PHASE_ANNOTATION, RolloutPhase.NONE.value))
    except ValueError:
        phase = RolloutPhase.NONE
    try:
        step = int(annotations.get(STEP_ANNOTATION, "0"))
    except ValueError:
        step = 0
    try:
        raw_history = json.loads(annotations.get(HISTORY_ANNOTATION, "[]"))
    except json.JSONDecodeError:
        raw_history = []
    history = (
        tuple(
            HistoryEntry(
                time=str(item.get("time", "")),
                action=str(item.get("action", "")),
                detail=str(item.get("detail", "")),
                by=str(item.get("by", "")),
            )
            for item in raw_history
            if isinstance(item, dict)
        )
        if isinstance(raw_history, list)
        else ()
    )
    return RolloutState(
        stable=annotations.get(STABLE_ANNOTATION) or None,
        candidate=annotations.get(CANDIDATE_ANNOTATION) or None,
        previous_stable=annotations.get(PREVIOUS_STABLE_ANNOTATION) or None,
        phase=phase,
        step=step,
        rollout_id=annotations.get(ROLLOUT_ID_ANNOTATION) or None,
        rollout_revision=annotations.get(ROLLOUT_REVISION_ANNOTATION) or None,
        rollout_since=annotations.get(ROLLOUT_SINCE_ANNOTATION) or None,
        baseline=annotations.get(BASELINE_ANNOTATION) or None,
        history=history,
    )
