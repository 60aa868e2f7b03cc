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
from collections import deque
from dataclasses import dataclass
from typing import Any

ANNOTATION_PREFIX = "autoscaling.knative.dev/"
PROGRESS_DEADLINE_ANNOTATION = "serving.knative.dev/progress-deadline"


class AnnotationError(ValueError):
    """An autoscaling annotation has a value Knative would reject."""


def _number(annotations: dict[str, str], key: str, default: float, *, minimum: float = 0.0) -> float:
    raw = annotations.get(ANNOTATION_PREFIX + key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise AnnotationError(
            f"annotation {ANNOTATION_PREFIX}{key}={raw!r} is not a number; give a number such as {default:g}"
        ) from None
    if value < minimum:
        raise AnnotationError(f"annotation {ANNOTATION_PREFIX}{key}={raw!r} must be >= {minimum:g}")
    return value


def parse_duration(raw: str) -> float:
    """Return seconds from a Go-style duration (``90s``, ``2m``, ``1m30s``) or a bare number of seconds.

    :param raw: the annotation value.
    """
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        pass
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number = 0.0, ""
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text.startswith("ms", index) else char
        if unit not in units or not number:
            raise AnnotationError(f"duration {raw!r} is not valid; write it like 30s, 2m or 1m30s")
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    if number:
        raise AnnotationError(f"duration {raw!r} has a number without a unit; write it like 30s, 2m or 1m30s")
    return total


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

        :param revision: a ``serving.knative.dev/v1`` Revision.
        :raises AnnotationError: when an annotation cannot be used.
        """
        annotations = (revision.get("metadata") or {}).get("annotations") or {}
        spec = revision.get("spec") or {}
        container_concurrency = int(spec.get("containerConcurrency") or 0)
        # Knative's default target is 100, but a hard containerConcurrency limit caps it.
        default_target = float(container_concurrency) if container_concurrency else 100.0
        window_raw = annotations.get(ANNOTATION_PREFIX + "window")
        return cls(
            min_scale=int(_number(annotations, "min-scale", 0)),
            max_scale=int(_number(annotations, "max-scale", 0)),
            initial_scale=int(_number(annotations, "initial-scale", 1)),
            target=max(_number(annotations, "target", default_target, minimum=0.01), 0.01),
            utilization=_number(annotations, "target-utilization-percentage", 70, minimum=1) / 100.0,
            window=parse_duration(window_raw) if window_raw else None,
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
    """

    def __init__(
        self, spec: ScalingSpec, *, stable_window: float, scale_to_zero_grace: float, now: float
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
        self.desired = max(spec.initial_scale, spec.min_scale)
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
