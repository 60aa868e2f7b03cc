"""Table tests of the rollout state machine and the verdict-to-next-action plan."""

from __future__ import annotations

import pytest

from knative_rollout.policy import (
    HISTORY_LIMIT,
    ActionKind,
    NextAction,
    RolloutPhase,
    RolloutPlan,
    RolloutState,
    StepCheck,
    Verdict,
)


def test_a_full_rollout_then_undo() -> None:
    state = RolloutState().deploying().first_deployed("v1")
    assert (state.stable, state.phase) == ("v1", RolloutPhase.STABLE)
    state = state.candidate_deployed("v2", 0)
    assert (state.candidate, state.phase, state.step) == ("v2", RolloutPhase.CANARY, 0)
    state = state.traffic_set(50)
    assert state.step == 50
    state = state.promoted()
    assert (state.stable, state.previous_stable, state.candidate) == ("v2", "v1", None)
    # A promotion is undone only when asked: a phase left by a rollout is no evidence against the next.
    assert state.rollback_target() == "v2"
    assert state.rollback_target(undo_promotion=True) == "v1"
    state = state.rolled_back("v1")
    assert (state.stable, state.previous_stable, state.phase) == ("v1", None, RolloutPhase.ROLLED_BACK)
    # A retried rollback now targets the stable revision: it does not flip back to v2.
    assert state.rollback_target(undo_promotion=True) == "v1"


def test_rollback_during_a_canary_returns_to_stable_and_keeps_the_undo_target() -> None:
    state = RolloutState(
        stable="v2", previous_stable="v1", candidate="v3", phase=RolloutPhase.CANARY, step=10
    )
    assert state.rollback_target() == "v2"
    after = state.rolled_back("v2")
    assert (after.stable, after.candidate, after.previous_stable) == ("v2", None, "v1")


def test_rollback_to_a_named_revision_remembers_the_old_stable() -> None:
    after = RolloutState(stable="v2", previous_stable="v1").rolled_back("v0")
    assert (after.stable, after.previous_stable) == ("v0", "v2")


def test_promote_without_candidate_is_refused() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        RolloutState(stable="v1").promoted()


def test_same_position_ignores_history_only() -> None:
    state = RolloutState(stable="v1")
    assert state.same_position(state.recorded("t", "a", "b"))
    assert not state.same_position(state.failed())


def test_history_is_bounded_and_keeps_the_newest() -> None:
    state = RolloutState()
    for index in range(HISTORY_LIMIT + 5):
        state = state.recorded(str(index), "act", "detail")
    assert len(state.history) == HISTORY_LIMIT
    assert state.history[-1].time == str(HISTORY_LIMIT + 4)


def test_protected_revisions() -> None:
    state = RolloutState(stable="a", candidate="b", previous_stable="c")
    assert state.protected_revisions() == {"a", "b", "c"}


PLAN = RolloutPlan.of([10, 50])


@pytest.mark.parametrize(
    ("percent", "verdict", "inconclusive", "expected"),
    [
        (0, Verdict.PASS, 0, NextAction(ActionKind.SHIFT, 10, "gate passed at 0%")),
        (10, Verdict.PASS, 0, NextAction(ActionKind.SHIFT, 50, "gate passed at 10%")),
        (50, Verdict.PASS, 0, NextAction(ActionKind.SHIFT, 100, "gate passed at 50%")),
        (100, Verdict.PASS, 0, NextAction(ActionKind.PROMOTE, 100, "gate passed at 100%")),
        (10, Verdict.FAIL, 0, NextAction(ActionKind.ROLLBACK, 0, "gate failed at 10%")),
        (
            10,
            Verdict.INCONCLUSIVE,
            0,
            NextAction(ActionKind.RETRY_GATE, 10, "gate inconclusive, measuring again"),
        ),
        (10, Verdict.INCONCLUSIVE, 1, NextAction(ActionKind.ROLLBACK, 0, "gate inconclusive 2 times")),
    ],
)
def test_next_action(percent: int, verdict: Verdict, inconclusive: int, expected: NextAction) -> None:
    assert PLAN.next_action(percent, verdict, inconclusive) == expected


@pytest.mark.parametrize(
    ("percent", "compare", "has_slo", "expected"),
    [
        (10, True, True, StepCheck.COMPARE),
        (10, True, False, StepCheck.COMPARE),
        (10, False, True, StepCheck.SLO),
        # At 100% the stable serves nothing: the slo alone, or nothing (promoted on the earlier steps).
        (100, True, True, StepCheck.SLO),
        (100, True, False, StepCheck.NONE),
        (100, False, True, StepCheck.SLO),
    ],
)
def test_check_at(percent: int, compare: bool, has_slo: bool, expected: StepCheck) -> None:
    assert RolloutPlan.check_at(percent, compare=compare, has_slo=has_slo) is expected


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "at least one"),
        ([0, 50], "out of range"),
        ([50, 10], "strictly increasing"),
        ([10, 101], "out of range"),
    ],
)
def test_bad_plans_are_refused(steps: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RolloutPlan.of(steps)


def test_plan_always_ends_at_100() -> None:
    assert RolloutPlan.of([25]).steps == (25, 100)
    assert RolloutPlan.of([25, 100]).steps == (25, 100)


def test_a_rollout_owns_the_state_it_started() -> None:
    state = RolloutState(stable="v1").started_by("dag/run-1/rollout", "v2", "t1").deploying()
    assert (state.rollout_id, state.rollout_revision, state.rollout_since) == (
        "dag/run-1/rollout",
        "v2",
        "t1",
    )
    assert state.is_active()
    # The same rollout resuming keeps its start; the next one starts anew.
    assert state.started_by("dag/run-1/rollout", "v2", "t9").rollout_since == "t1"
    assert state.started_by("dag/run-2/rollout", "v3", "t9").rollout_since == "t9"
    assert not state.candidate_deployed("v2", 0).promoted().is_active()


def test_history_entries_name_their_writer() -> None:
    entry = RolloutState().recorded("t", "Deploying", "creating v1", "dag/run/task/1").history[-1]
    assert entry.by == "dag/run/task/1"
