"""The HdrHistogram-backed latency histogram: 0.1% accuracy, no zeros for no data, merging across workers."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from knative_rollout.loadtest.latency import HIGHEST_US, LatencyHistogram


def exact_percentile(values: list[int], percent: float) -> int:
    """HdrHistogram's rank: ``percent`` of the count, rounded half up, at least 1."""
    ordered = sorted(values)
    rank = max(1, int(percent / 100 * len(ordered) + 0.5))
    return ordered[rank - 1]


@pytest.mark.parametrize(("distribution", "seed"), [("uniform", 1), ("lognormal", 2), ("bimodal", 3)])
@pytest.mark.parametrize("percent", [50, 90, 95, 99, 99.9, 100])
def test_percentiles_are_within_a_tenth_of_a_percent_and_never_below(
    distribution: str, seed: int, percent: float
) -> None:
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
    reported = histogram.percentile(percent)
    assert reported is not None
    assert exact <= reported <= exact * 1.001 + 1


def test_empty_histogram_has_no_values_not_zeros() -> None:
    histogram = LatencyHistogram()
    assert histogram.count == 0
    assert (histogram.min, histogram.max, histogram.mean) == (None, None, None)
    assert histogram.percentiles([50, 99]) == [None, None]
    assert histogram.curve() == []


def test_count_min_max_mean() -> None:
    values = [5, 1_000, 123_456_789, 42]
    histogram = LatencyHistogram.of(values)
    assert histogram.count == 4 and histogram.min == 5
    assert histogram.max == pytest.approx(123_456_789, rel=0.001)
    assert histogram.mean == pytest.approx(sum(values) / 4, rel=0.001)
    assert histogram.percentile(100) == histogram.max


def test_values_outside_the_range_are_clamped_not_dropped() -> None:
    histogram = LatencyHistogram.of([-3, 0, HIGHEST_US * 10])
    assert histogram.count == 3 and histogram.min == 0
    assert histogram.max == pytest.approx(HIGHEST_US, rel=0.001)


@pytest.mark.parametrize("percent", [0, -1, 100.5])
def test_percentile_outside_0_100_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        LatencyHistogram.of([1]).percentile(percent)


def test_histograms_of_several_workers_merge_exactly_also_through_json() -> None:
    rng = random.Random(7)
    workers = [[int(rng.expovariate(1 / 5_000)) for _ in range(3_000)] for _ in range(3)]
    together = LatencyHistogram.of([value for values in workers for value in values])
    merged = LatencyHistogram()
    for values in workers:
        # Each worker (another process) writes its histogram as JSON; the coordinator reads and adds it.
        merged.merge(
            LatencyHistogram.from_dict(json.loads(json.dumps(LatencyHistogram.of(values).to_dict())))
        )
    percents = [50, 90, 99, 99.9, 100]
    assert merged.count == together.count == 9_000
    assert merged.percentiles(percents) == together.percentiles(percents)
    assert (merged.min, merged.max) == (together.min, together.max)


def test_copy_is_independent() -> None:
    original = LatencyHistogram.of([10, 20])
    twin = original.copy()
    twin.record(30)
    assert (original.count, twin.count) == (2, 3)


def test_curve_climbs_to_100_percent_at_the_maximum() -> None:
    histogram = LatencyHistogram.of([100] * 90 + [10_000] * 10)
    curve = histogram.curve()
    assert curve[0] == (90.0, pytest.approx(100, rel=0.001))
    assert curve[-1][0] == 100.0 and curve[-1][1] == histogram.max
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(curve))


def test_reading_another_encoding_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="run the load test again"):
        LatencyHistogram.from_dict({"sub_bucket_bits": 7, "buckets": {}})


def test_percentile_of_a_single_value() -> None:
    histogram = LatencyHistogram.of([1_000_000])
    assert all(math.isclose(v or 0, 1_000_000, rel_tol=0.001) for v in histogram.percentiles([50, 99]))
