"""The log-linear latency histogram: 1% accuracy against exact percentiles, merging, serialization."""

from __future__ import annotations

import math
import random

import pytest

from knative_rollout.loadtest.histogram import BUCKET_COUNT, LatencyHistogram, bucket_bounds, bucket_index


def exact_percentile(values: list[int], percent: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def test_buckets_tile_the_value_range_without_gaps() -> None:
    expected_low = 0
    for index in range(BUCKET_COUNT):
        low, high = bucket_bounds(index)
        assert low == expected_low
        assert bucket_index(low) == index and bucket_index(high) == index
        # Never wider than 1/128 of the values it holds: the midpoint is within 0.4% of any of them.
        assert high - low <= max(0, low // 128)
        expected_low = high + 1
    assert expected_low == 2**64


@pytest.mark.parametrize(
    ("distribution", "seed"),
    [
        ("uniform", 1),
        ("lognormal", 2),
        ("bimodal", 3),
    ],
)
@pytest.mark.parametrize("percent", [50, 90, 95, 99, 99.9, 100])
def test_percentiles_are_within_one_percent_of_exact(distribution: str, seed: int, percent: float) -> None:
    rng = random.Random(seed)
    if distribution == "uniform":
        values = [rng.randint(0, 5_000_000) for _ in range(20_000)]
    elif distribution == "lognormal":
        values = [int(rng.lognormvariate(8, 1.5)) for _ in range(20_000)]
    else:
        values = [
            rng.randint(200, 400) if rng.random() < 0.85 else rng.randint(0, 300_000) for _ in range(20_000)
        ]
    histogram = LatencyHistogram.of(values)
    exact = exact_percentile(values, percent)
    assert histogram.percentile(percent) == pytest.approx(exact, rel=0.01, abs=1)


def test_min_max_mean_are_exact() -> None:
    values = [5, 1_000, 123_456_789, 42]
    histogram = LatencyHistogram.of(values)
    assert (histogram.min, histogram.max, histogram.count) == (5, 123_456_789, 4)
    assert histogram.mean == sum(values) / 4
    assert histogram.percentile(100) == 123_456_789


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(7)
    first = [rng.randint(0, 10**6) for _ in range(5000)]
    second = [rng.randint(10**5, 10**8) for _ in range(3000)]
    merged = LatencyHistogram.of(first)
    merged.merge(LatencyHistogram.of(second))
    together = LatencyHistogram.of(first + second)
    assert merged.counts == together.counts
    assert (merged.count, merged.total, merged.min, merged.max) == (
        together.count,
        together.total,
        together.min,
        together.max,
    )


def test_merge_into_empty_keeps_the_other_minimum() -> None:
    empty = LatencyHistogram()
    empty.merge(LatencyHistogram.of([700, 900]))
    assert empty.min == 700


def test_round_trip_through_dict() -> None:
    histogram = LatencyHistogram.of([1, 2, 3, 10_000, 2_000_000])
    copy = LatencyHistogram.from_dict(histogram.to_dict())
    assert copy.counts == histogram.counts and copy.percentile(99) == histogram.percentile(99)


def test_dict_from_another_layout_is_refused_with_advice() -> None:
    data = LatencyHistogram.of([1]).to_dict() | {"sub_bucket_bits": 5}
    with pytest.raises(ValueError, match="write it again"):
        LatencyHistogram.from_dict(data)


def test_bad_percentile_and_empty_histogram() -> None:
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        LatencyHistogram().percentile(0)
    assert LatencyHistogram().percentile(99) == 0.0


def test_negative_values_count_as_zero() -> None:
    histogram = LatencyHistogram.of([-5])
    assert histogram.min == 0 and histogram.count == 1
