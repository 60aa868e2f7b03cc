"""Record latencies in a mergeable log-linear histogram accurate to better than 1%.

The layout is HdrHistogram's idea without its dependency: values (integer microseconds) below 128 get one
bucket each, above that every power of two is split into 128 linear sub-buckets, so a bucket is never wider
than 1/128 of its lower bound and the midpoint we report is within 0.4% of any value in it. Recording is an
index computation and one list increment, cheap enough for the hot path of the load generator; merging is
element-wise addition, so histograms from several workers or processes combine exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

SUB_BUCKET_BITS = 7
SUB_BUCKETS = 1 << SUB_BUCKET_BITS
# 64-bit microsecond values need at most 64 - 7 = 57 exponent rows after the linear first row.
BUCKET_COUNT = SUB_BUCKETS * (64 - SUB_BUCKET_BITS + 1)


def bucket_index(value: int) -> int:
    """Return the bucket that holds ``value`` (a non-negative integer)."""
    if value < SUB_BUCKETS:
        return value
    shift = value.bit_length() - SUB_BUCKET_BITS - 1
    # (value >> shift) lies in [128, 256): row ``shift + 1`` starts at 128 * (shift + 1).
    return SUB_BUCKETS * shift + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Return the inclusive lowest and highest value that fall into bucket ``index``."""
    if index < SUB_BUCKETS:
        return index, index
    shift, offset = divmod(index, SUB_BUCKETS)
    shift -= 1
    low = (SUB_BUCKETS + offset) << shift
    return low, low + (1 << shift) - 1


class LatencyHistogram:
    """Count integer latencies (microseconds) in log-linear buckets; exact count, sum, min and max."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * BUCKET_COUNT
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Add one value in microseconds (negative values, from clock jitter, count as 0)."""
        if value < 0:
            value = 0
        if value < SUB_BUCKETS:
            self.counts[value] += 1
        else:
            shift = value.bit_length() - SUB_BUCKET_BITS - 1
            self.counts[SUB_BUCKETS * shift + (value >> shift)] += 1
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value recorded in ``other`` to this histogram."""
        if other.count == 0:
            return
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, other.counts, strict=True)]
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    @property
    def mean(self) -> float:
        """Return the exact mean in microseconds (0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, percent: float) -> float:
        """Return the value at ``percent`` (0-100] in microseconds, within 0.4%; exact for the maximum.

        Follows the nearest-rank definition: the smallest recorded value that at least ``percent`` of the
        values do not exceed. The answer is the midpoint of that value's bucket, clamped to [min, max].
        """
        if not 0 < percent <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percent}")
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(percent / 100 * self.count))
        seen = 0
        for index, bucket_count in enumerate(self.counts):
            seen += bucket_count
            if seen >= rank:
                low, high = bucket_bounds(index)
                return float(min(max((low + high) / 2, self.min), self.max))
        return float(self.max)

    def percentiles(self, percents: Sequence[float]) -> list[float]:
        """Return :meth:`percentile` for each of ``percents``."""
        return [self.percentile(percent) for percent in percents]

    def curve(self) -> list[tuple[float, float]]:
        """Return (cumulative percent, bucket upper value in microseconds) for every non-empty bucket."""
        points: list[tuple[float, float]] = []
        seen = 0
        for index, bucket_count in enumerate(self.counts):
            if bucket_count:
                seen += bucket_count
                points.append((100.0 * seen / self.count, float(min(bucket_bounds(index)[1], self.max))))
        return points

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly form (non-empty buckets only) that :meth:`from_dict` reads back."""
        return {
            "unit": "us",
            "sub_bucket_bits": SUB_BUCKET_BITS,
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "buckets": {str(index): n for index, n in enumerate(self.counts) if n},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram written by :meth:`to_dict` (for example by another worker process)."""
        if data.get("sub_bucket_bits") != SUB_BUCKET_BITS:
            raise ValueError(
                f"histogram was written with sub_bucket_bits={data.get('sub_bucket_bits')}, "
                f"this version reads {SUB_BUCKET_BITS}; write it again with this version"
            )
        histogram = cls()
        for index, bucket_count in data["buckets"].items():
            histogram.counts[int(index)] = int(bucket_count)
        histogram.count = int(data["count"])
        histogram.total = int(data["total"])
        histogram.min = int(data["min"])
        histogram.max = int(data["max"])
        return histogram

    @classmethod
    def of(cls, values: Iterable[int]) -> LatencyHistogram:
        """Return a histogram holding ``values``."""
        histogram = cls()
        for value in values:
            histogram.record(value)
        return histogram
