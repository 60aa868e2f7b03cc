"""Record latencies (integer microseconds) in an HdrHistogram, the pinned ``hdrhistogram`` library.

One layout for every histogram: 1 us to 24 h at 3 significant digits (a value is reported within 0.1%),
so histograms from several workers or processes merge exactly; :meth:`LatencyHistogram.to_dict` carries
HdrHistogram's own compressed encoding, which any HdrHistogram implementation reads. Values outside the
range are clamped to it rather than dropped: a request is never lost from the distribution.

Recording costs about 0.73 us per value against 0.16 us for the hand-written histogram this replaced: at
the generator's maximum rate on one core (58k-96k requests/s on the benchmark machine) that is 3-6% more
of a core, within the run-to-run noise of the throughput (``benchmarks/loadgen/histogram.py``, results in
``benchmarks/results/loadgen_histogram.md``), so the library is used.

An empty histogram has no percentiles: :meth:`LatencyHistogram.percentile` returns None, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 24 * 3600 * 1_000_000
SIGNIFICANT_DIGITS = 3
ENCODING = "hdrhistogram-v2"


class LatencyHistogram:
    """Count latencies in microseconds; percentiles within 0.1%, exact count, min and max."""

    __slots__ = ("_hdr", "_record")

    def __init__(self, hdr: HdrHistogram | None = None) -> None:
        self._hdr = hdr if hdr is not None else HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self._record = self._hdr.record_value

    def record(self, value: int) -> None:
        """Add one value in microseconds (below 0, from clock jitter, counts as 0; above 24 h as 24 h)."""
        if value < 0:
            value = 0
        elif value > HIGHEST_US:
            value = HIGHEST_US
        self._record(value)

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value recorded in ``other`` to this histogram."""
        if other.count:
            self._hdr.add(other._hdr)

    def copy(self) -> LatencyHistogram:
        """Return an independent histogram holding the same values."""
        twin = LatencyHistogram()
        twin.merge(self)
        return twin

    @property
    def count(self) -> int:
        """Return how many values were recorded."""
        return int(self._hdr.get_total_count())

    @property
    def min(self) -> int | None:
        """Return the smallest value (within 0.1%), None when empty."""
        return int(self._hdr.get_min_value()) if self.count else None

    @property
    def max(self) -> int | None:
        """Return the largest value (within 0.1%, never below it), None when empty."""
        return int(self._hdr.get_max_value()) if self.count else None

    @property
    def mean(self) -> float | None:
        """Return the mean in microseconds (within 0.1%), None when empty."""
        return float(self._hdr.get_mean_value()) if self.count else None

    def percentile(self, percent: float) -> float | None:
        """Return the value at ``percent`` (0-100] in microseconds, None when empty.

        HdrHistogram's rank (``percent`` of the count, rounded, at least 1): the value of that rank, reported
        as the top of its bucket (so never below the recorded value) and never above the maximum.
        """
        return self.percentiles([percent])[0]

    def percentiles(self, percents: Sequence[float]) -> list[float | None]:
        """Return :meth:`percentile` for each of ``percents`` in one pass over the counts."""
        for percent in percents:
            if not 0 < percent <= 100:
                raise ValueError(f"percentile must be in (0, 100], got {percent}")
        if not self.count:
            return [None for _ in percents]
        values = self._hdr.get_percentile_to_value_dict(list(percents))
        highest = self._hdr.get_max_value()
        return [float(min(values[percent], highest)) for percent in percents]

    def curve(self) -> list[tuple[float, float]]:
        """Return (cumulative percent, value in microseconds) for every non-empty bucket, in order."""
        total = self.count
        highest = self._hdr.get_max_value()
        return [
            (100.0 * item.total_count_to_this_value / total, float(min(item.value_iterated_to, highest)))
            for item in self._hdr.get_recorded_iterator()
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly form that :meth:`from_dict` (or any HdrHistogram decoder) reads back."""
        return {
            "unit": "us",
            "encoding": ENCODING,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "hdr": self._hdr.encode().decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram written by :meth:`to_dict` (for example by another worker process)."""
        if data.get("encoding") != ENCODING:
            raise ValueError(
                f"histogram encoding {data.get('encoding')!r} is not {ENCODING!r}: it was written by an older"
                " version of knative_rollout; run the load test again with this version"
            )
        histogram = cls()
        histogram._hdr.decode_and_add(data["hdr"])
        return histogram

    @classmethod
    def of(cls, values: Iterable[int]) -> LatencyHistogram:
        """Return a histogram holding ``values``."""
        histogram = cls()
        for value in values:
            histogram.record(value)
        return histogram
