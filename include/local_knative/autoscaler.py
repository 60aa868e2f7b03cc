"""Decide how many pods a revision wants, the way the Knative Pod Autoscaler (KPA) does.

The ingress counts requests in flight per revision; :class:`ConcurrencyScaler` integrates that count over
time into per-tick averages and derives the wanted pod count:

* stable mode: the average concurrency over the stable window divided by ``target * utilization``;
* panic mode: the same over a panic window of a tenth of the stable window, so a burst scales up at once
  instead of a minute later (Knative's panic window defaults to 10 % of the stable window);
* the wanted count is the larger of the two, and never below the highest panic-mode count of the last
  stable window, so pods go only after a whole stable window of lower load (a short lull sheds nothing);
* scale to zero (``min-scale`` 0 only) once no request has been seen for the stable window plus the
  scale-to-zero grace period.

The class is pure (time is passed in) so it is unit-tested with plain tables.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

ANNOTATION_PREFIX = "autoscaling.knative.dev/"
PROGRESS_DEADLINE_ANNOTATION = "serving.knative.dev/progress-deadline"
# Older spellings Knative still reads (its kmap.KeyPriority lists); the kebab-case key wins when both are set.
ANNOTATION_ALIASES: dict[str, tuple[str, ...]] = {
    "min-scale": ("minScale",),
    "max-scale": ("maxScale",),
    "initial-scale": ("initialScale",),
    "scale-down-delay": ("scaleDownDelay",),
    "target-utilization-percentage": ("targetUtilizationPercentage",),
    "target-burst-capacity": ("targetBurstCapacity",),
    "panic-window-percentage": ("panicWindowPercentage",),
    "panic-threshold-percentage": ("panicThresholdPercentage",),
    "scale-to-zero-pod-retention-period": ("scaleToZeroPodRetentionPeriod",),
    "metric-aggregation-algorithm": ("metricAggregationAlgorithm",),
}
_SECOND_NS = 10**9
_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": _SECOND_NS,
    "m": 60 * _SECOND_NS,
    "h": 3600 * _SECOND_NS,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION = re.compile(rf"[-+]?(?:{_DURATION_PART.pattern})+")


def annotation(annotations: dict[str, str], name: str) -> tuple[str, str] | None:
    """Return ``(key, value)`` of an autoscaling annotation, or None when it is not set.

    :param annotations: an object's annotations.
    :param name: the setting, e.g. ``min-scale`` (older spellings such as ``minScale`` count too).
    """
    for short in (name, *ANNOTATION_ALIASES.get(name, ())):
        key = ANNOTATION_PREFIX + short
        if key in annotations:
            return key, annotations[key]
    return None


def duration_ns(raw: str) -> int:
    """Return nanoseconds from a Go duration (``90s``, ``1m30s``, ``1.5h``, ``500ms``), as Go's ParseDuration.

    :param raw: the annotation value; a bare number is not a duration (except ``0``), as in Go.
    :raises ValueError: when ``raw`` is not a Go duration.
    """
    if raw in ("0", "+0", "-0"):
        return 0
    if not _DURATION.fullmatch(raw):
        raise ValueError(f"duration {raw!r} is not valid; write it like 30s, 2m or 1m30s")
    total = 0
    for number, unit in _DURATION_PART.findall(raw):
        # Go keeps whole nanoseconds of each part.
        total += math.trunc(Fraction(number) * _DURATION_UNITS_NS[unit])
    return -total if raw.startswith("-") else total


@dataclass(frozen=True)
class ScalingSpec:
    """The autoscaling settings of one revision, read from its annotations and spec."""

    min_scale: int = 0
    max_scale: int = 0
    initial_scale: int = 1
    target: float = 100.0
    utilization: float = 0.7
    window: float | None = None
    container_concurrency: int = 0

    @classmethod
    def from_revision(cls, revision: dict[str, Any]) -> ScalingSpec:
        """Read the settings of a Revision object.

        The admission webhook (:mod:`local_knative.admission`) has refused values Knative refuses, so
        the values here are well formed.

        :param revision: a ``serving.knative.dev/v1`` Revision.
        """
        annotations = (revision.get("metadata") or {}).get("annotations") or {}
        spec = revision.get("spec") or {}
        container_concurrency = int(spec.get("containerConcurrency") or 0)
        # Knative's default target is 100, but a hard containerConcurrency limit caps it.
        default_target = float(container_concurrency) if container_concurrency else 100.0

        def value(name: str, default: float) -> float:
            found = annotation(annotations, name)
            return float(found[1]) if found else default

        window = annotation(annotations, "window")
        return cls(
            min_scale=int(value("min-scale", 0)),
            max_scale=int(value("max-scale", 0)),
            initial_scale=int(value("initial-scale", 1)),
            target=value("target", default_target),
            utilization=value("target-utilization-percentage", 70) / 100.0,
            window=duration_ns(window[1]) / 1e9 if window else None,
            container_concurrency=container_concurrency,
        )

    def clamp(self, pods: int) -> int:
        """Clamp a pod count to ``min-scale`` .. ``max-scale`` (0 = unlimited)."""
        pods = max(pods, self.min_scale)
        if self.max_scale:
            pods = min(pods, self.max_scale)
        return pods


class ConcurrencyScaler:
    """Track one revision's concurrency and decide its pod count (see the module docstring).

    :param spec: the revision's autoscaling settings.
    :param stable_window: seconds of the stable window (the ``window`` annotation overrides it).
    :param scale_to_zero_grace: extra seconds with no request before scaling to zero.
    :param now: the current monotonic time.
    :param initial: the pod count to start from; None means the revision's initial scale.
    """

    def __init__(
        self,
        spec: ScalingSpec,
        *,
        stable_window: float,
        scale_to_zero_grace: float,
        now: float,
        initial: int | None = None,
    ) -> None:
        self.spec = spec
        self.stable_window = spec.window or stable_window
        self.panic_window = max(self.stable_window / 10.0, 1e-3)
        self.scale_to_zero_grace = scale_to_zero_grace
        self.in_flight = 0
        self.last_activity = now
        self._integral = 0.0
        self._last_change = now
        self._tick_start = now
        self._samples: deque[tuple[float, float]] = deque()  # (end time of a tick, average concurrency)
        self._wanted: deque[tuple[float, int]] = deque()  # (time, pods wanted then), for the scale-down delay
        self.desired = max(spec.initial_scale, spec.min_scale) if initial is None else spec.clamp(initial)
        # The initial scale counts as wanted now, so it holds for one stable window like any other peak.
        self._wanted.append((now, self.desired))

    def _advance(self, now: float) -> None:
        self._integral += self.in_flight * (now - self._last_change)
        self._last_change = now

    def request_started(self, now: float) -> None:
        """Count a request that the ingress starts sending to this revision."""
        self._advance(now)
        self.in_flight += 1
        self.last_activity = now

    def request_finished(self, now: float) -> None:
        """Count a request that finished."""
        self._advance(now)
        self.in_flight -= 1
        self.last_activity = now

    def _average(self, now: float, window: float) -> float:
        samples = [(end, value) for end, value in self._samples if end > now - window]
        return sum(value for _, value in samples) / len(samples) if samples else 0.0

    def tick(self, now: float) -> int:
        """Close the current sampling tick and return the wanted pod count.

        :param now: the current monotonic time.
        """
        self._advance(now)
        elapsed = now - self._tick_start
        if elapsed > 0:
            self._samples.append((now, self._integral / elapsed))
        self._integral = 0.0
        self._tick_start = now
        while self._samples and self._samples[0][0] <= now - self.stable_window:
            self._samples.popleft()
        if self.in_flight:
            self.last_activity = now

        per_pod = self.spec.target * self.spec.utilization
        stable = math.ceil(self._average(now, self.stable_window) / per_pod - 1e-9)
        panic = math.ceil(self._average(now, self.panic_window) / per_pod - 1e-9)
        recent = max(panic, 1 if self.in_flight else 0)
        self._wanted.append((now, recent))
        while self._wanted and self._wanted[0][0] <= now - self.stable_window:
            self._wanted.popleft()
        # Up at once (the panic window reacts within a tick); down once a whole stable window wanted less.
        desired = max(stable, max(count for _, count in self._wanted))
        idle_for = now - self.last_activity
        if desired == 0 and self.desired and idle_for < self.stable_window + self.scale_to_zero_grace:
            desired = 1
        self.desired = self.spec.clamp(desired)
        return self.desired

    def activate(self, now: float) -> int:
        """Ask for at least one pod because a request arrived at zero pods (the activator's poke)."""
        self.last_activity = now
        self.desired = self.spec.clamp(max(self.desired, 1))
        return self.desired
