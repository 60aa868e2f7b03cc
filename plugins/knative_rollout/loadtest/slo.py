"""Parse an SLO such as ``p99<=200ms,error_rate<=0.01,achieved_rate>=95`` and judge a result against it.

``pNN``, ``max`` and ``mean`` judge the slower of two distributions: every request, failed ones and
timeouts included (a timeout counts at no less than the timeout), and successful requests only. So a
revision can meet ``p99<=200ms`` neither by timing out (that is in all requests) nor by answering fast
errors (those are not in the successful ones). ``ok_pNN`` judge successful requests alone. The verdict's
outcome is :class:`knative_rollout.policy.Verdict`: ``pass``, ``fail``, or ``inconclusive`` when the
measurement saw no answer at all, which fails the gate unless asked otherwise.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from knative_rollout import policy

_LATENCIES = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
LATENCY_METRICS = (*_LATENCIES, *(f"ok_{name}" for name in _LATENCIES))
RATE_METRICS = ("achieved_rate", "offered_rate", "throughput")
METRICS = (*LATENCY_METRICS, "error_rate", *RATE_METRICS)
_ALIASES = {
    "p99.9": "p999",
    "ok_p99.9": "ok_p999",
    "rate": "achieved_rate",
    "rps": "achieved_rate",
    "errors": "error_rate",
}
_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_LATENCY_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_THRESHOLD = re.compile(r"^\s*([a-z0-9_.]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*([a-z%/]*)\s*$")


class SloSyntaxError(ValueError):
    """An SLO could not be read; the message says which part and how to write it."""


@dataclass(frozen=True)
class Threshold:
    """One limit: ``metric comparator limit``; latencies in ms, error rate as a fraction, rates per second."""

    metric: str
    comparator: str
    limit: float

    @property
    def unit(self) -> str:
        """Return the unit of the metric as reported."""
        if self.metric in LATENCY_METRICS:
            return "ms"
        return "/s" if self.metric in RATE_METRICS else ""

    def __str__(self) -> str:
        return f"{self.metric}{self.comparator}{self.limit:g}{self.unit}"

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Read one threshold, e.g. ``p99<=200ms``, ``p999 < 1s``, ``error_rate<=1%``, ``rate>=95``."""
        match = _THRESHOLD.match(text.lower())
        if match is None:
            raise SloSyntaxError(
                f"cannot read SLO threshold {text!r}:"
                " write METRIC OP VALUE, e.g. p99<=200ms, error_rate<=0.01"
            )
        name, comparator, number, unit = match.groups()
        metric = _ALIASES.get(name, name)
        if metric not in METRICS:
            raise SloSyntaxError(f"unknown SLO metric {name!r} in {text!r}: use one of {', '.join(METRICS)}")
        value = float(number)
        if metric in LATENCY_METRICS:
            if unit not in ("", *_LATENCY_UNIT_TO_MS):
                raise SloSyntaxError(
                    f"unknown latency unit {unit!r} in {text!r}: use us, ms or s (default ms)"
                )
            value *= _LATENCY_UNIT_TO_MS[unit or "ms"]
        elif metric == "error_rate":
            if unit not in ("", "%"):
                raise SloSyntaxError(f"error_rate is a fraction (0.01) or a percentage (1%), got {text!r}")
            value = value / 100 if unit == "%" else value
        elif unit not in ("", "/s", "rps"):
            raise SloSyntaxError(f"{metric} is in requests per second, got unit {unit!r} in {text!r}")
        return cls(metric, comparator, value)

    def check(self, measured: float | None, note: str = "") -> ThresholdResult:
        """Compare ``measured`` with the limit; ``excess`` is how far past the limit it is (0 if it holds).

        ``measured`` None (nothing was measured, e.g. ``ok_p99`` with no successful request) never holds.
        ``note`` says what the value means, e.g. that it is a lower bound set by timeouts.
        """
        if measured is None:
            return ThresholdResult(self, None, False, 0.0, note or "nothing was measured")
        passed = _COMPARATORS[self.comparator](measured, self.limit)
        excess = 0.0 if passed else abs(measured - self.limit)
        return ThresholdResult(self, measured, passed, excess, note)


@dataclass(frozen=True)
class ThresholdResult:
    """The measured value for one threshold and whether it held."""

    threshold: Threshold
    measured: float | None
    passed: bool
    excess: float
    note: str = ""

    @property
    def message(self) -> str:
        """Return a sentence saying what was measured against what."""
        t = self.threshold
        if self.measured is None:
            return f"{t.metric} cannot be judged against {t}: {self.note}"
        measured = f"{t.metric} {self.measured:g}{t.unit}" + (f" ({self.note})" if self.note else "")
        if self.passed:
            return f"{measured} meets {t}"
        relative = f" ({self.excess / t.limit:.1%})" if t.limit else ""
        return f"{measured} violates {t} by {self.excess:g}{t.unit}{relative}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in reports."""
        t = self.threshold
        return {
            "threshold": str(t),
            "metric": t.metric,
            "comparator": t.comparator,
            "limit": t.limit,
            "unit": t.unit,
            "measured": None if self.measured is None else round(self.measured, 6),
            "passed": self.passed,
            "by": round(self.excess, 6),
            "note": self.note,
            "message": self.message,
        }


@dataclass(frozen=True)
class Finding:
    """A reason the gate fails that is no threshold of the SLO: no answer at all, or no success."""

    metric: str
    measured: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form, shaped like a failed threshold's (``metric``, ``measured``, ``message``)."""
        return {"metric": self.metric, "measured": self.measured, "passed": False, "message": self.message}


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome: every threshold with its measurement, and what the measurement could not show.

    :param results: each threshold of the SLO and its measured value.
    :param inconclusive: set when the measurement says nothing (no request was answered); the outcome is
        then ``inconclusive`` whatever the thresholds say.
    :param problems: failures outside the SLO's thresholds (e.g. no request succeeded).
    :param fail_on_inconclusive: whether an inconclusive outcome fails the gate (the safe default).
    """

    results: tuple[ThresholdResult, ...]
    inconclusive: Finding | None = None
    problems: tuple[Finding, ...] = ()
    fail_on_inconclusive: bool = True

    @property
    def outcome(self) -> policy.Verdict:
        """Return ``inconclusive`` without data, else ``fail`` when anything failed, else ``pass``."""
        if self.inconclusive is not None:
            return policy.Verdict.INCONCLUSIVE
        if self.problems or self.failed:
            return policy.Verdict.FAIL
        return policy.Verdict.PASS

    @property
    def passed(self) -> bool:
        """Return whether the gate passes: the outcome is ``pass``, or ``inconclusive`` and allowed."""
        outcome = self.outcome
        if outcome is policy.Verdict.INCONCLUSIVE:
            return not self.fail_on_inconclusive
        return outcome is policy.Verdict.PASS

    @property
    def failed(self) -> tuple[ThresholdResult, ...]:
        """Return the violated thresholds."""
        return tuple(result for result in self.results if not result.passed)

    def reasons(self) -> list[str]:
        """Return why the gate fails, most telling first (empty when it passes)."""
        if self.passed:
            return []
        findings = [self.inconclusive] if self.inconclusive is not None else []
        return [finding.message for finding in (*findings, *self.problems)] + [
            result.message for result in self.failed
        ]

    def explain(self) -> str:
        """Return one line: passed, inconclusive, or every reason the gate fails."""
        if self.inconclusive is not None:
            if self.fail_on_inconclusive:
                return "gate inconclusive, so failed: " + "; ".join(self.reasons())
            return (
                f"gate inconclusive, passed as asked (fail_on_inconclusive off): {self.inconclusive.message}"
            )
        if self.passed:
            return f"SLO passed ({len(self.results)} thresholds)"
        return "SLO failed: " + "; ".join(self.reasons())

    def to_dict(self) -> dict[str, Any]:
        """Return the report's ``verdict``: ``outcome``, ``passed``, what ``failed`` the gate, all ``checks``.

        ``failed`` lists every reason the gate failed, each with ``metric`` and ``message``: the findings
        first (``answered``, ``succeeded``), then the violated thresholds; empty when the gate passed.
        """
        findings = [self.inconclusive] if self.inconclusive is not None else []
        failed: list[dict[str, Any]] = []
        if not self.passed:
            failed = [finding.to_dict() for finding in (*findings, *self.problems)]
            failed += [result.to_dict() for result in self.failed]
        return {
            "outcome": self.outcome.value,
            "passed": self.passed,
            "fail_on_inconclusive": self.fail_on_inconclusive,
            "inconclusive": self.inconclusive.message if self.inconclusive is not None else None,
            "failed": failed,
            "checks": [result.to_dict() for result in self.results],
        }


@dataclass(frozen=True)
class Slo:
    """A set of thresholds that must all hold."""

    thresholds: tuple[Threshold, ...] = ()

    @classmethod
    def parse(cls, spec: str | Mapping[str, str | float] | Slo | None) -> Slo:
        """Read ``"p99<=200ms,error_rate<=0.01"``, or a mapping such as ``{"p99": "<=200ms"}``."""
        if spec is None:
            return cls()
        if isinstance(spec, Slo):
            return spec
        if isinstance(spec, str):
            parts = [part for part in re.split(r"[,;]", spec) if part.strip()]
        else:
            parts = [
                f"{name}{value}" if isinstance(value, str) else f"{name}<={value}"
                for name, value in spec.items()
            ]
        return cls(tuple(Threshold.parse(part) for part in parts))

    def evaluate(
        self, metrics: Mapping[str, float | None], notes: Mapping[str, str] | None = None
    ) -> Verdict:
        """Judge ``metrics`` (as returned by ``LoadTestResult.metrics()``); ``notes`` qualify some values."""
        notes = notes or {}
        return Verdict(
            tuple(
                threshold.check(metrics[threshold.metric], notes.get(threshold.metric, ""))
                for threshold in self.thresholds
            )
        )

    def __str__(self) -> str:
        return ",".join(str(threshold) for threshold in self.thresholds)
