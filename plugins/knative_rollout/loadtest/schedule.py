"""Turn a load profile (constant rate, or stages that hold or ramp the rate) into request start times."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float, *, allow_zero: bool = False) -> float:
    """Return seconds from ``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a plain number of seconds.

    :param allow_zero: whether 0 is valid (a limit that 0 turns off, such as the warm-up).
    """
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: write a number with a unit, such as 500ms, 30s, 2m or 1h"
            )
        seconds = float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"duration must be {'0 or more' if allow_zero else 'positive'}, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Stage:
    """Send for ``duration_s`` seconds at a rate that moves linearly from ``start_rate`` to ``end_rate``."""

    duration_s: float
    start_rate: float
    end_rate: float

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError(f"stage duration must be positive, got {self.duration_s}")
        if self.start_rate < 0 or self.end_rate < 0:
            raise ValueError(f"stage rates must not be negative, got {self.start_rate}..{self.end_rate}")

    @classmethod
    def parse(cls, text: str) -> Stage:
        """Read ``DURATION:RATE`` (hold) or ``DURATION:FROM..TO`` (linear ramp), e.g. ``30s:10..200``."""
        duration, _, rates = text.partition(":")
        start, _, end = rates.partition("..")
        try:
            start_rate = float(start)
            end_rate = float(end) if end else start_rate
        except ValueError:
            raise ValueError(
                f"invalid stage {text!r}: write DURATION:RATE (e.g. 30s:100)"
                " or DURATION:FROM..TO (e.g. 1m:10..200)"
            ) from None
        return cls(parse_duration(duration), start_rate, end_rate)

    @property
    def requests(self) -> float:
        """Return how many requests the stage sends (its area under the rate curve)."""
        return (self.start_rate + self.end_rate) / 2 * self.duration_s

    def offset_of(self, n: float) -> float:
        """Return the time into the stage at which the ``n``-th request of the stage (from 0) starts."""
        r0, r1, length = self.start_rate, self.end_rate, self.duration_s
        if r0 == r1:
            return n / r0
        # Requests sent by time t: r0*t + (r1-r0)/(2*length)*t^2 = n; take the root inside the stage.
        slope = (r1 - r0) / length
        return (math.sqrt(r0 * r0 + 2 * slope * n) - r0) / slope


class Schedule:
    """Give the start offset (seconds since the run began) of the i-th request, in order, for a profile."""

    def __init__(self, stages: list[Stage]) -> None:
        if not stages:
            raise ValueError("a schedule needs at least one stage")
        self.stages = stages
        self.duration_s = sum(stage.duration_s for stage in stages)
        self.total_requests = math.floor(sum(stage.requests for stage in stages) + 1e-9)
        self._stage = 0
        self._stage_start_time = 0.0
        self._stage_first_request = 0.0

    @classmethod
    def constant(cls, rate: float, duration_s: float) -> Schedule:
        """Return a schedule that starts ``rate`` requests per second for ``duration_s`` seconds."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        return cls([Stage(duration_s, rate, rate)])

    def offset(self, index: int) -> float | None:
        """Return the start offset of request ``index``; None once the profile is over.

        Indices must be asked in increasing order (the scheduler walks them once).
        """
        while self._stage < len(self.stages):
            stage = self.stages[self._stage]
            within = index - self._stage_first_request
            if within < stage.requests - 1e-9:
                return self._stage_start_time + stage.offset_of(within)
            self._stage_start_time += stage.duration_s
            self._stage_first_request += stage.requests
            self._stage += 1
        return None
