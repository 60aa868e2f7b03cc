"""Fault knobs that make the model server a bad canary on purpose, read from its environment.

================================  ===============================================================
``FAULT_LATENCY_MS``              mean latency added to every predict request (milliseconds, >= 0)
``FAULT_LATENCY_DIST``            ``constant`` (default: exactly the mean), ``uniform`` (0 .. 2 x mean)
                                  or ``exponential`` (mean as given: a long tail, like a GC pause)
``FAULT_ERROR_RATE``              probability (0..1) that a predict request answers HTTP 500
``FAULT_CRASH_AT_START``          ``1``/``true``: exit with status 3 before listening
``FAULT_SLOW_START_S``            seconds to sleep after loading the model, before listening
================================  ===============================================================

Latency and errors apply to predict requests only: readiness and health checks stay truthful, so a slow
or failing canary still becomes Ready and takes traffic, which is exactly what a rollout gate must catch.
Every value is checked when the server starts; a bad one stops it with a message naming the variable.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

LATENCY_DISTRIBUTIONS = ("constant", "uniform", "exponential")
CRASH_EXIT_CODE = 3
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class FaultConfigError(ValueError):
    """Raise when a fault knob in the environment has an invalid value."""


@dataclass(frozen=True)
class FaultConfig:
    """Fault injection settings of one server process.

    :param latency_ms: mean added latency per predict request, in milliseconds
    :param latency_distribution: one of :data:`LATENCY_DISTRIBUTIONS`
    :param error_rate: probability that a predict request fails with HTTP 500
    :param crash_at_start: exit non-zero before listening
    :param slow_start_s: sleep before listening
    """

    latency_ms: float = 0.0
    latency_distribution: str = "constant"
    error_rate: float = 0.0
    crash_at_start: bool = False
    slow_start_s: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FaultConfig:
        """Read the ``FAULT_*`` variables from ``env``; raise FaultConfigError naming the first bad one."""
        distribution = env.get("FAULT_LATENCY_DIST", "constant").strip().lower() or "constant"
        if distribution not in LATENCY_DISTRIBUTIONS:
            raise FaultConfigError(
                f"FAULT_LATENCY_DIST={env['FAULT_LATENCY_DIST']!r} is not a known distribution: "
                f"use one of {', '.join(LATENCY_DISTRIBUTIONS)}"
            )
        crash = env.get("FAULT_CRASH_AT_START", "").strip().lower()
        if crash not in _TRUE + _FALSE:
            raise FaultConfigError(
                f"FAULT_CRASH_AT_START={env['FAULT_CRASH_AT_START']!r} is not a boolean: set it to 1 or 0"
            )
        return cls(
            latency_ms=_number(env, "FAULT_LATENCY_MS", minimum=0.0, maximum=None, meaning="milliseconds"),
            latency_distribution=distribution,
            error_rate=_number(env, "FAULT_ERROR_RATE", minimum=0.0, maximum=1.0, meaning="a probability"),
            crash_at_start=crash in _TRUE,
            slow_start_s=_number(env, "FAULT_SLOW_START_S", minimum=0.0, maximum=None, meaning="seconds"),
        )

    def sample_latency_s(self, rng: random.Random) -> float:
        """Draw the latency to add to one request, in seconds."""
        mean_s = self.latency_ms / 1000.0
        if mean_s == 0.0 or self.latency_distribution == "constant":
            return mean_s
        if self.latency_distribution == "uniform":
            return rng.uniform(0.0, 2.0 * mean_s)
        return rng.expovariate(1.0 / mean_s)

    def should_fail(self, rng: random.Random) -> bool:
        """Decide whether one request answers HTTP 500."""
        return self.error_rate > 0.0 and rng.random() < self.error_rate

    def describe(self) -> str:
        """Return a one-line summary of the active knobs for the start-up log ("none" when all are off)."""
        active = []
        if self.latency_ms:
            active.append(f"latency {self.latency_ms:g} ms {self.latency_distribution}")
        if self.error_rate:
            active.append(f"error rate {self.error_rate:g}")
        if self.slow_start_s:
            active.append(f"slow start {self.slow_start_s:g} s")
        if self.crash_at_start:
            active.append("crash at start")
        return ", ".join(active) or "none"


def _number(
    env: Mapping[str, str], name: str, *, minimum: float, maximum: float | None, meaning: str
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return 0.0
    bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
    try:
        value = float(raw)
    except ValueError:
        raise FaultConfigError(f"{name}={raw!r} is not a number: set it to {meaning} {bounds}") from None
    # `not (a <= v)` also rejects NaN, which every comparison answers False for.
    if not (minimum <= value) or (maximum is not None and value > maximum) or value == float("inf"):
        raise FaultConfigError(f"{name}={raw!r} is out of range: set it to {meaning} {bounds}")
    return value
