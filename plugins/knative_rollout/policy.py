"""Rollout state machine: phases, the state kept on the Service, and what a gate verdict means next.

Pure: no Airflow, no Kubernetes. Every transition returns a new frozen :class:`RolloutState`, so an
operator can compare the state it would write with the state it read and skip the write when nothing
changed; that is what makes a retry of any operator change nothing twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

HISTORY_LIMIT = 20
"""How many history entries the Service keeps; older ones are dropped (annotations are size-limited)."""


class RolloutPhase(StrEnum):
    """Where a rollout stands, as recorded on the Service."""

    NONE = "None"
    DEPLOYING = "Deploying"
    STABLE = "Stable"
    CANARY = "Canary"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class Verdict(StrEnum):
    """Outcome of a gate (load test, metric analysis) on the candidate."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class ActionKind(StrEnum):
    """What a progressive rollout does after a gate verdict."""

    SHIFT = "shift"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    RETRY_GATE = "retry_gate"


class StepCheck(StrEnum):
    """What the analysis at a traffic step checks."""

    COMPARE = "compare"
    """The candidate against the stable revision (and the slo, if any)."""
    SLO = "slo"
    """The slo only: at 100% the stable serves nothing to compare with, or the analysis does not compare."""
    NONE = "none"
    """Nothing: at 100% without an slo; the step passes on the earlier steps' analyses."""


NOTHING_TO_CHECK = (
    "at 100% the stable serves no traffic to compare with and analysis has no slo: promoted on the earlier "
    "steps' analyses"
)
"""The reason of the pass a :attr:`StepCheck.NONE` step gets."""

ACTIVE_PHASES = frozenset({RolloutPhase.DEPLOYING, RolloutPhase.CANARY})
"""Phases in which a rollout has changed the Service and not yet finished: someone must end it."""


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the rollout story: when, what, a short human-readable detail, and who wrote it.

    :param by: the writer, ``dag_id/run_id/task_id/try`` for a task (empty in entries written before
        writers were recorded).
    """

    time: str
    action: str
    detail: str
    by: str = ""


@dataclass(frozen=True)
class RolloutState:
    """The rollout state kept in the Service's annotations.

    :param stable: revision that serves production traffic and that rollbacks return to.
    :param candidate: revision being rolled out, or ``None``.
    :param previous_stable: stable revision before the last promotion: the target of an "undo".
    :param phase: where the rollout stands.
    :param step: percent of traffic the candidate currently has.
    :param rollout_id: the rollout that wrote this state last (its steps check it is still theirs),
        or ``None`` for changes made outside a rollout.
    :param rollout_revision: the revision that rollout deployed, kept after it was promoted or rejected.
    :param rollout_since: when that rollout first changed the Service.
    :param baseline: a fresh copy of the stable revision that rollout judges its candidate against
        (``KnativeCanaryRolloutOperator(baseline=True)``); never stable, previous or promoted, and
        deleted when the rollout ends.
    :param history: most recent actions, oldest first, at most :data:`HISTORY_LIMIT`.
    """

    stable: str | None = None
    candidate: str | None = None
    previous_stable: str | None = None
    phase: RolloutPhase = RolloutPhase.NONE
    step: int = 0
    rollout_id: str | None = None
    rollout_revision: str | None = None
    rollout_since: str | None = None
    baseline: str | None = None
    history: tuple[HistoryEntry, ...] = field(default=())

    def same_position(self, other: RolloutState) -> bool:
        """Return whether two states differ only in their history."""
        return replace(self, history=()) == replace(other, history=())

    def protected_revisions(self) -> frozenset[str]:
        """Return the revisions a teardown must never delete."""
        return frozenset(name for name in (self.stable, self.candidate, self.previous_stable) if name)

    def rollback_target(self, *, undo_promotion: bool = False) -> str | None:
        """Return where a rollback sends all traffic: the stable revision.

        :param undo_promotion: right after a promotion, return the stable revision before it instead.
            Undoing a promotion is always asked for explicitly: a phase left by an earlier rollout is no
            evidence that the current one went wrong.
        """
        if undo_promotion and self.phase is RolloutPhase.PROMOTED and self.previous_stable:
            return self.previous_stable
        return self.stable

    def is_active(self) -> bool:
        """Return whether a rollout has changed the Service and not yet promoted or rolled back."""
        return self.phase in ACTIVE_PHASES

    def recorded(self, time: str, action: str, detail: str, by: str = "") -> RolloutState:
        """Return this state with one more history entry, keeping the newest :data:`HISTORY_LIMIT`."""
        history = (*self.history, HistoryEntry(time=time, action=action, detail=detail, by=by))
        return replace(self, history=history[-HISTORY_LIMIT:])

    def started_by(self, rollout_id: str, revision: str, time: str) -> RolloutState:
        """Return this state owned by a new rollout of ``revision`` (from here on only it may write)."""
        if self.rollout_id == rollout_id and self.rollout_revision == revision:
            return self
        return replace(self, rollout_id=rollout_id, rollout_revision=revision, rollout_since=time)

    # Transitions. Each returns the position after the action; the caller records the history entry.

    def deploying(self) -> RolloutState:
        """Return the state while a new revision is being created (traffic unchanged)."""
        return replace(self, phase=RolloutPhase.DEPLOYING)

    def first_deployed(self, revision: str) -> RolloutState:
        """Return the state after the first revision of a Service became Ready at 100%."""
        return replace(self, stable=revision, candidate=None, phase=RolloutPhase.STABLE, step=0)

    def candidate_deployed(self, revision: str, percent: int) -> RolloutState:
        """Return the state after a candidate became Ready and got ``percent`` of the traffic."""
        return replace(self, candidate=revision, phase=RolloutPhase.CANARY, step=percent)

    def traffic_set(self, candidate_percent: int) -> RolloutState:
        """Return the state after a traffic change that gives the candidate ``candidate_percent``."""
        if self.candidate is None:
            return replace(self, step=0)
        return replace(self, phase=RolloutPhase.CANARY, step=candidate_percent)

    def promoted(self) -> RolloutState:
        """Return the state after the candidate became the stable revision.

        :raises ValueError: when there is no candidate to promote.
        """
        if self.candidate is None:
            raise ValueError("there is no candidate revision to promote")
        return replace(
            self,
            stable=self.candidate,
            previous_stable=self.stable,
            candidate=None,
            phase=RolloutPhase.PROMOTED,
            step=100,
        )

    def rolled_back(self, target: str) -> RolloutState:
        """Return the state after all traffic went back to ``target``.

        An undo of a promotion forgets the previous stable so that a retried rollback does not flip back.
        """
        previous = None if target == self.previous_stable else self.previous_stable
        if target != self.stable and target != self.previous_stable:
            previous = self.stable
        return replace(
            self,
            stable=target,
            candidate=None,
            previous_stable=previous,
            phase=RolloutPhase.ROLLED_BACK,
            step=0,
        )

    def failed(self) -> RolloutState:
        """Return the state after a revision failed; traffic and the recorded revisions stay as they were."""
        return replace(self, phase=RolloutPhase.FAILED)


@dataclass(frozen=True)
class NextAction:
    """What to do after a verdict: shift the candidate to ``percent``, promote, roll back or gate again."""

    kind: ActionKind
    percent: int = 0
    reason: str = ""


@dataclass(frozen=True)
class RolloutPlan:
    """A progressive rollout: the candidate's traffic steps, ending at 100.

    :param steps: strictly increasing percents in 1..100; 100 is appended when missing.
    :param max_inconclusive: how many inconclusive verdicts in a row are retried before rolling back.
    """

    steps: tuple[int, ...]
    max_inconclusive: int = 1

    @classmethod
    def of(cls, steps: Sequence[int], max_inconclusive: int = 1) -> RolloutPlan:
        """Return a validated plan.

        :raises ValueError: with what is wrong, when the steps are not increasing percents.
        """
        values = [int(step) for step in steps]
        if not values:
            raise ValueError("a rollout plan needs at least one traffic step, e.g. [10, 50, 100]")
        for step in values:
            if not 1 <= step <= 100:
                raise ValueError(f"traffic step {step} is out of range: use percents between 1 and 100")
        if any(later <= earlier for earlier, later in itertools.pairwise(values)):
            raise ValueError(f"traffic steps {values} must be strictly increasing, e.g. [10, 50, 100]")
        if values[-1] != 100:
            values.append(100)
        if max_inconclusive < 0:
            raise ValueError("max_inconclusive must be 0 or more")
        return cls(steps=tuple(values), max_inconclusive=max_inconclusive)

    @staticmethod
    def check_at(percent: int, *, compare: bool, has_slo: bool) -> StepCheck:
        """Return what the analysis at ``percent`` checks (its verdict then goes to :meth:`next_action`).

        :param compare: whether the analysis judges the candidate against the stable revision.
        :param has_slo: whether it has an slo.
        """
        if not compare:
            return StepCheck.SLO
        if percent < 100:
            return StepCheck.COMPARE
        return StepCheck.SLO if has_slo else StepCheck.NONE

    def next_action(self, current_percent: int, verdict: Verdict, inconclusive_so_far: int = 0) -> NextAction:
        """Return what to do after a gate gave ``verdict`` with the candidate at ``current_percent``.

        The one decision both forms of the progressive rollout make after each analysis: the task group
        (``progressive_rollout``, a task per step) and the single task (``KnativeCanaryRolloutOperator``).
        """
        if verdict is Verdict.FAIL:
            return NextAction(ActionKind.ROLLBACK, 0, f"gate failed at {current_percent}%")
        if verdict is Verdict.INCONCLUSIVE:
            if inconclusive_so_far < self.max_inconclusive:
                return NextAction(
                    ActionKind.RETRY_GATE, current_percent, "gate inconclusive, measuring again"
                )
            return NextAction(ActionKind.ROLLBACK, 0, f"gate inconclusive {inconclusive_so_far + 1} times")
        following = [step for step in self.steps if step > current_percent]
        if not following:
            return NextAction(ActionKind.PROMOTE, 100, f"gate passed at {current_percent}%")
        return NextAction(ActionKind.SHIFT, following[0], f"gate passed at {current_percent}%")
