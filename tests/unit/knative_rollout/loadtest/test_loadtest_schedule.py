"""Load profiles: durations, constant rates and ramped stages turned into request start times."""

from __future__ import annotations

import itertools

import pytest

from knative_rollout.loadtest.schedule import Schedule, Stage, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), (" 10 s ", 10.0), (3, 3.0)],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten seconds", "5d", "-3s", "0s"])
def test_parse_duration_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def offsets(schedule: Schedule) -> list[float]:
    result = []
    index = 0
    while (offset := schedule.offset(index)) is not None:
        result.append(offset)
        index += 1
    return result


def test_constant_rate_spaces_requests_evenly() -> None:
    times = offsets(Schedule.constant(100, 2))
    assert len(times) == 200
    assert times[0] == 0 and times[1] == pytest.approx(0.01) and times[-1] == pytest.approx(1.99)


def test_ramp_sends_the_area_under_the_rate_and_speeds_up() -> None:
    # 0 -> 100/s over 10 s is 500 requests; then 100/s held for 2 s is 200 more.
    times = offsets(Schedule([Stage(10, 0, 100), Stage(2, 100, 100)]))
    assert len(times) == 700
    assert times == sorted(times)
    first_half = sum(1 for t in times if t < 5)
    assert first_half == pytest.approx(125, abs=1)  # the integral of the ramp over its first half
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[10] > gaps[400]
    assert times[-1] < 12


def test_ramp_down_and_zero_stage() -> None:
    times = offsets(Schedule([Stage(1, 0, 0), Stage(4, 100, 0)]))
    assert len(times) == 200
    assert times[0] == pytest.approx(1.0)
    assert times[-1] < 5


@pytest.mark.parametrize(
    ("text", "stage"),
    [("30s:100", Stage(30, 100, 100)), ("1m:10..200", Stage(60, 10, 200)), ("500ms:4", Stage(0.5, 4, 4))],
)
def test_stage_parse(text: str, stage: Stage) -> None:
    assert Stage.parse(text) == stage


@pytest.mark.parametrize("text", ["30s", "30s:fast", "x:10", "10s:-5"])
def test_stage_parse_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match=r"stage|duration|negative"):
        Stage.parse(text)
