"""Parse an SLO such as ``p99<=200ms,error_rate<=0.01,achieved_rate>=95`` and judge a result against it."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

LATENCY_METRICS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
RATE_METRICS = ("achieved_rate", "throughput")
METRICS = (*LATENCY_METRICS, "error_rate", *RATE_METRICS)
_ALIASES = {"p99.9": "p999", "rate": "achieved_rate", "rps": "achieved_rate", "errors": "error_rate"}
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

    def check(self, measured: float) -> ThresholdResult:
        """Compare ``measured`` with the limit; ``excess`` is how far past the limit it is (0 if it holds)."""
        passed = _COMPARATORS[self.comparator](measured, self.limit)
        excess = 0.0 if passed else abs(measured - self.limit)
        return ThresholdResult(self, measured, passed, excess)


@dataclass(frozen=True)
class ThresholdResult:
    """The measured value for one threshold and whether it held."""

    threshold: Threshold
    measured: float
    passed: bool
    excess: float

    @property
    def message(self) -> str:
        """Return a sentence saying what was measured against what."""
        t = self.threshold
        if self.passed:
            return f"{t.metric} {self.measured:g}{t.unit} meets {t}"
        relative = f" ({self.excess / t.limit:.1%})" if t.limit else ""
        return f"{t.metric} {self.measured:g}{t.unit} violates {t} by {self.excess:g}{t.unit}{relative}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in reports."""
        t = self.threshold
        return {
            "threshold": str(t),
            "metric": t.metric,
            "comparator": t.comparator,
            "limit": t.limit,
            "unit": t.unit,
            "measured": round(self.measured, 6),
            "passed": self.passed,
            "by": round(self.excess, 6),
            "message": self.message,
        }


@dataclass(frozen=True)
class Verdict:
    """Whether every threshold held, with each one's measurement."""

    results: tuple[ThresholdResult, ...]

    @property
    def passed(self) -> bool:
        """Return True when no threshold was violated (an empty SLO passes)."""
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> tuple[ThresholdResult, ...]:
        """Return the violated thresholds."""
        return tuple(result for result in self.results if not result.passed)

    def explain(self) -> str:
        """Return one line: passed, or every violated threshold and by how much."""
        if self.passed:
            return f"SLO passed ({len(self.results)} thresholds)"
        return "SLO failed: " + "; ".join(result.message for result in self.failed)

    def to_dict(self) -> dict[str, Any]:
        """Return the report's ``verdict``: ``passed``, the ``failed`` thresholds, and all ``checks``."""
        return {
            "passed": self.passed,
            "failed": [result.to_dict() for result in self.failed],
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

    def evaluate(self, metrics: Mapping[str, float]) -> Verdict:
        """Judge ``metrics`` (as returned by ``LoadTestResult.metrics()``)."""
        return Verdict(tuple(threshold.check(metrics[threshold.metric]) for threshold in self.thresholds))

    def __str__(self) -> str:
        return ",".join(str(threshold) for threshold in self.thresholds)
