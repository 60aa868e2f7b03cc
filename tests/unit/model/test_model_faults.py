"""Fault knobs of the model server: parsing from the environment, clear errors, sampled distributions."""

from __future__ import annotations

import random
import statistics

import pytest

from model.faults import FaultConfig, FaultConfigError


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, FaultConfig()),
        ({"FAULT_LATENCY_MS": "", "FAULT_ERROR_RATE": " ", "FAULT_CRASH_AT_START": "0"}, FaultConfig()),
        ({"FAULT_LATENCY_MS": "250"}, FaultConfig(latency_ms=250.0)),
        (
            {"FAULT_LATENCY_MS": "12.5", "FAULT_LATENCY_DIST": "Exponential"},
            FaultConfig(latency_ms=12.5, latency_distribution="exponential"),
        ),
        ({"FAULT_LATENCY_DIST": "uniform"}, FaultConfig(latency_distribution="uniform")),
        ({"FAULT_ERROR_RATE": "0"}, FaultConfig()),
        ({"FAULT_ERROR_RATE": "1"}, FaultConfig(error_rate=1.0)),
        ({"FAULT_ERROR_RATE": "0.05"}, FaultConfig(error_rate=0.05)),
        ({"FAULT_CRASH_AT_START": "1"}, FaultConfig(crash_at_start=True)),
        ({"FAULT_CRASH_AT_START": "TRUE"}, FaultConfig(crash_at_start=True)),
        ({"FAULT_CRASH_AT_START": "false"}, FaultConfig()),
        ({"FAULT_SLOW_START_S": "2.5"}, FaultConfig(slow_start_s=2.5)),
        ({"UNRELATED": "x"}, FaultConfig()),
    ],
)
def test_valid_knobs(env: dict[str, str], expected: FaultConfig) -> None:
    assert FaultConfig.from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FAULT_LATENCY_MS": "fast"},
            "FAULT_LATENCY_MS='fast' is not a number: set it to milliseconds >= 0",
        ),
        ({"FAULT_LATENCY_MS": "-5"}, "FAULT_LATENCY_MS='-5' is out of range"),
        ({"FAULT_LATENCY_MS": "inf"}, "FAULT_LATENCY_MS='inf' is out of range"),
        ({"FAULT_LATENCY_MS": "nan"}, "FAULT_LATENCY_MS='nan' is out of range"),
        (
            {"FAULT_LATENCY_DIST": "normal"},
            "FAULT_LATENCY_DIST='normal' is not a known distribution: use one of",
        ),
        (
            {"FAULT_ERROR_RATE": "1.5"},
            "FAULT_ERROR_RATE='1.5' is out of range: set it to a probability between 0",
        ),
        ({"FAULT_ERROR_RATE": "-0.1"}, "FAULT_ERROR_RATE='-0.1' is out of range"),
        ({"FAULT_ERROR_RATE": "30%"}, "FAULT_ERROR_RATE='30%' is not a number"),
        (
            {"FAULT_CRASH_AT_START": "maybe"},
            "FAULT_CRASH_AT_START='maybe' is not a boolean: set it to 1 or 0",
        ),
        ({"FAULT_SLOW_START_S": "-1"}, "FAULT_SLOW_START_S='-1' is out of range: set it to seconds >= 0"),
        ({"FAULT_SLOW_START_S": "10s"}, "FAULT_SLOW_START_S='10s' is not a number"),
    ],
)
def test_invalid_knobs_name_the_variable_and_the_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(FaultConfigError) as raised:
        FaultConfig.from_env(env)
    assert message in str(raised.value)


def test_constant_latency_is_exact() -> None:
    config = FaultConfig(latency_ms=80)
    assert {config.sample_latency_s(random.Random(seed)) for seed in range(20)} == {0.08}
    assert FaultConfig().sample_latency_s(random.Random(0)) == 0.0


def test_uniform_latency_spreads_between_zero_and_twice_the_mean() -> None:
    rng, config = random.Random(1), FaultConfig(latency_ms=100, latency_distribution="uniform")
    samples = [config.sample_latency_s(rng) for _ in range(20_000)]
    assert 0.0 <= min(samples) < 0.005
    assert 0.195 < max(samples) <= 0.2
    assert statistics.fmean(samples) == pytest.approx(0.1, rel=0.02)


def test_exponential_latency_has_the_mean_and_a_long_tail() -> None:
    rng, config = random.Random(2), FaultConfig(latency_ms=50, latency_distribution="exponential")
    samples = sorted(config.sample_latency_s(rng) for _ in range(20_000))
    assert statistics.fmean(samples) == pytest.approx(0.05, rel=0.03)
    # Exponential: median = mean * ln 2, p99 = mean * ln 100 (about 4.6 x the mean).
    assert statistics.median(samples) == pytest.approx(0.05 * 0.693, rel=0.05)
    assert samples[int(0.99 * len(samples))] == pytest.approx(0.05 * 4.605, rel=0.1)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 1.0])
def test_error_rate_is_the_failure_probability(rate: float) -> None:
    rng, config = random.Random(3), FaultConfig(error_rate=rate)
    failures = sum(config.should_fail(rng) for _ in range(20_000))
    assert failures / 20_000 == pytest.approx(rate, abs=0.015)


def test_describe_lists_active_knobs() -> None:
    assert FaultConfig().describe() == "none"
    config = FaultConfig(latency_ms=20, latency_distribution="uniform", error_rate=0.2, slow_start_s=1)
    assert config.describe() == "latency 20 ms uniform, error rate 0.2, slow start 1 s"
