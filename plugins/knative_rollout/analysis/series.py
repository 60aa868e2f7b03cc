"""Read Knative's request metrics, in either schema, into per-revision windows of counts and latencies.

Pure: no I/O. Both metric providers end here: the direct scrape parses the Prometheus text format
(:func:`parse_exposition`), the Prometheus provider its ``query_range`` JSON (:func:`parse_query_range`);
either yields :class:`Scrape` snapshots (the raw counters at one instant), and :func:`revision_windows`
turns consecutive snapshots into per-interval :class:`Interval` counts for each revision.

The two schemas Knative has had (:class:`MetricsSchema`):

* ``opencensus`` (up to Knative 1.18): ``revision_request_latencies_bucket`` in milliseconds, labels
  ``namespace_name``, ``revision_name``, ``response_code``, ``response_code_class``.
* ``opentelemetry`` (1.19+, otelhttp semantic conventions): ``http_server_request_duration_seconds_bucket``
  in seconds, labels ``http_response_status_code`` and the promoted resource attributes
  ``k8s_namespace_name``, ``kn_revision_name``.

Only the latency histogram's buckets are read: its ``+Inf`` bucket is the request count, so requests,
5xx answers and latencies all come from one series family and cannot disagree. Bounds are converted to
seconds. Counters are differenced per series (pod, status code, ``le``), as Prometheus's ``increase``
does: a drop is a restart (the new value is the increase); a series that first shows up after the
window started counts from zero (Knative creates a series on its first request, e.g. a new pod's);
a series that disappears adds nothing more. An interval in which a revision answered nothing has
``requests == 0`` and no latency or error rate: empty is "no data", never 0.

:func:`request_latencies` turns a histogram back into one latency per request for the judge's
request-level comparison: each request at the value ``histogram_quantile`` gives its rank, i.e. spread
evenly inside its bucket. One value per bucket (its midpoint, say) would make most pairs of requests
ties, and then the Hodges-Lehmann shift and its interval collapse onto 0 for any regression smaller than
a bucket; the even spread is the assumption every ``histogram_quantile`` already makes.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np


class MetricsSchema(StrEnum):
    """Which Knative request metric names a cluster exposes."""

    OPENCENSUS = "opencensus"
    OPENTELEMETRY = "opentelemetry"


@dataclass(frozen=True)
class SchemaNames:
    """The series and label names of one schema."""

    bucket: str
    namespace: str
    revision: str
    status: str  # a label whose value starts with the status class digit
    bound_scale: float  # multiply ``le`` by this for seconds


SCHEMAS: Mapping[MetricsSchema, SchemaNames] = {
    MetricsSchema.OPENCENSUS: SchemaNames(
        bucket="revision_request_latencies_bucket",
        namespace="namespace_name",
        revision="revision_name",
        status="response_code_class",
        bound_scale=0.001,
    ),
    MetricsSchema.OPENTELEMETRY: SchemaNames(
        bucket="http_server_request_duration_seconds_bucket",
        namespace="k8s_namespace_name",
        revision="kn_revision_name",
        status="http_response_status_code",
        bound_scale=1.0,
    ),
}

Labels = tuple[tuple[str, str], ...]
"""A series' labels, sorted by name (hashable)."""


class MetricsParseError(ValueError):
    """Metrics text or JSON could not be read; the message says where."""


@dataclass(frozen=True)
class Sample:
    """One series' value in a snapshot."""

    name: str
    labels: Labels
    value: float

    def label(self, name: str) -> str:
        """Return the value of label ``name`` ("" when absent)."""
        return dict(self.labels).get(name, "")


@dataclass(frozen=True)
class Scrape:
    """Every sample seen at one instant (seconds since the epoch, or any monotonic clock)."""

    time: float
    samples: tuple[Sample, ...]


@dataclass(frozen=True)
class Interval:
    """What one revision answered between two snapshots.

    :param buckets: (upper bound in seconds, cumulative count) ascending, the last bound ``inf``.
    """

    start: float
    end: float
    requests: float
    errors: float  # 5xx answers
    buckets: tuple[tuple[float, float], ...]

    @property
    def error_rate(self) -> float | None:
        """Return 5xx answers / requests, or None with no requests."""
        return self.errors / self.requests if self.requests > 0 else None

    def latency_quantile(self, quantile: float) -> float | None:
        """Return the ``quantile`` latency in seconds (Prometheus ``histogram_quantile``), or None."""
        return histogram_quantile(quantile, self.buckets)


@dataclass(frozen=True)
class RevisionWindow:
    """One revision's intervals over an analysis window."""

    namespace: str
    revision: str
    schema: MetricsSchema | None  # None: the cluster exposed neither schema (no data)
    intervals: tuple[Interval, ...]

    @property
    def total(self) -> Interval:
        """Return the whole window as one interval."""
        return merge_intervals(self.intervals)

    def error_rates(self) -> list[float]:
        """Return each interval's error rate (NaN for intervals with no requests)."""
        return [_nan(interval.error_rate) for interval in self.intervals]

    def latency_quantiles(self, quantile: float) -> list[float]:
        """Return each interval's ``quantile`` latency in seconds (NaN with no requests)."""
        return [_nan(interval.latency_quantile(quantile)) for interval in self.intervals]


def histogram_quantile(quantile: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Return the ``quantile`` of a cumulative histogram as PromQL's ``histogram_quantile`` does.

    Linear interpolation inside the bucket the rank falls in (from 0 for the first bucket); a rank in the
    ``+Inf`` bucket returns the highest finite bound. None when the histogram counted nothing.

    :param quantile: 0..1.
    :param buckets: (upper bound, cumulative count) ascending, the last bound ``inf``.
    """
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile {quantile} is outside 0..1")
    if not buckets or buckets[-1][1] <= 0:
        return None
    if not math.isinf(buckets[-1][0]):
        raise ValueError("a histogram's last bucket must be +Inf")
    rank = quantile * buckets[-1][1]
    finite = len(buckets) - 1
    # The first bucket (the +Inf one excluded) whose cumulative count reaches the rank.
    index = next((i for i in range(finite) if buckets[i][1] >= rank), finite)
    if index == finite:
        return buckets[finite - 1][0] if finite else None
    bound, count = buckets[index]
    if index == 0 and bound <= 0:
        return bound
    start, below = buckets[index - 1] if index else (0.0, 0.0)
    inside = count - below
    return start + (bound - start) * ((rank - below) / inside if inside > 0 else 0.0)


def request_latencies(
    buckets: Sequence[tuple[float, float]], *, at_most: int | None = None
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Return one latency per request a cumulative histogram counted, ascending (see the module docstring).

    The ``k`` requests of a bucket ``(lower, upper]`` lie at ``lower + (upper - lower) * (i + 0.5) / k``
    (``lower`` is 0 for the first bucket); those of ``+Inf`` at the highest finite bound, as
    ``histogram_quantile`` has them. Counts are rounded to whole requests.

    :param buckets: (upper bound, cumulative count) ascending, the last bound ``inf``; empty: no requests.
    :param at_most: past this many requests, every bucket's count is scaled down so they sum to about
        this (the shape kept, as a sample of that size), so a busy service's window costs no more.
    """
    total = buckets[-1][1] if buckets else 0.0
    scale = at_most / total if at_most is not None and total > at_most else 1.0
    parts: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        inside = max(0, round((count - below) * scale))
        if math.isinf(bound):
            parts.append(np.full(inside, lower))
        elif inside:
            start = min(lower, bound)  # a first bound <= 0 holds its requests at that bound
            parts.append(start + (bound - start) * (np.arange(inside) + 0.5) / inside)
        lower, below = (lower if math.isinf(bound) else bound), max(below, count)
    return np.concatenate(parts) if parts else np.zeros(0)


def merge_intervals(intervals: Sequence[Interval]) -> Interval:
    """Return the sum of ``intervals`` (which must share bucket bounds) as one interval."""
    if not intervals:
        return Interval(0.0, 0.0, 0.0, 0.0, ())
    bounds = [bound for bound, _ in intervals[0].buckets]
    totals = [0.0] * len(bounds)
    for interval in intervals:
        for index, (_, count) in enumerate(interval.buckets):
            totals[index] += count
    return Interval(
        start=intervals[0].start,
        end=intervals[-1].end,
        requests=sum(interval.requests for interval in intervals),
        errors=sum(interval.errors for interval in intervals),
        buckets=tuple(zip(bounds, totals, strict=True)),
    )


def detect_schema(scrapes: Iterable[Scrape]) -> MetricsSchema | None:
    """Return the schema whose latency histogram appears in ``scrapes`` (OpenTelemetry if both), or None."""
    names = {sample.name for scrape in scrapes for sample in scrape.samples}
    for schema in (MetricsSchema.OPENTELEMETRY, MetricsSchema.OPENCENSUS):
        if SCHEMAS[schema].bucket in names:
            return schema
    return None


def revision_windows(
    scrapes: Sequence[Scrape],
    *,
    namespace: str,
    revisions: Iterable[str],
    schema: MetricsSchema | None,
) -> dict[str, RevisionWindow]:
    """Return each revision's intervals between consecutive snapshots.

    :param scrapes: snapshots (at least two for one interval).
    :param namespace: the revisions' namespace.
    :param revisions: the revisions to read; one with no series gets intervals of zero requests.
    :param schema: the names to read; None (neither schema seen) gives windows with no intervals.
    """
    wanted = list(dict.fromkeys(revisions))
    if schema is None:
        return {revision: RevisionWindow(namespace, revision, None, ()) for revision in wanted}
    names = SCHEMAS[schema]
    # series key -> value, per snapshot, for the wanted revisions' bucket series only
    values: list[dict[Labels, float]] = []
    for scrape in sorted(scrapes, key=lambda item: item.time):
        current: dict[Labels, float] = {}
        for sample in scrape.samples:
            if (
                sample.name == names.bucket
                and sample.label(names.namespace) == namespace
                and sample.label(names.revision) in wanted
                and math.isfinite(sample.value)
            ):
                current[sample.labels] = current.get(sample.labels, 0.0) + sample.value
        values.append(current)
    times = sorted(scrape.time for scrape in scrapes)
    bounds = _bounds(values, names)
    windows: dict[str, list[Interval]] = {revision: [] for revision in wanted}
    for index in range(1, len(values)):
        before, after = values[index - 1], values[index]
        per_revision: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        errors: dict[str, float] = defaultdict(float)
        for labels, value in after.items():
            previous = before.get(labels)
            increase = value if previous is None or value < previous else value - previous
            label_map = dict(labels)
            revision = label_map[names.revision]
            bound = _bound(label_map.get("le", ""), names)
            per_revision[revision][bound] += increase
            if math.isinf(bound) and label_map.get(names.status, "").startswith("5"):
                errors[revision] += increase
        for revision in wanted:
            counts = per_revision.get(revision, {})
            buckets = tuple((bound, counts.get(bound, 0.0)) for bound in bounds)
            requests = counts.get(math.inf, 0.0)
            windows[revision].append(
                Interval(times[index - 1], times[index], requests, errors.get(revision, 0.0), buckets)
            )
    return {
        revision: RevisionWindow(namespace, revision, schema, tuple(intervals))
        for revision, intervals in windows.items()
    }


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str, *, time: float) -> Scrape:
    """Parse the Prometheus text exposition format (0.0.4) into one snapshot.

    Comments, ``# HELP`` and ``# TYPE`` lines are skipped; timestamps after the value are ignored (the
    snapshot's ``time`` is when it was read).

    :param text: the body of a ``/metrics`` answer.
    :param time: when it was read.
    :raises MetricsParseError: on a line that is not a sample, with its number.
    """
    samples: list[Sample] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name_match = re.match(_NAME, line)
        if name_match is None:
            raise MetricsParseError(f"line {number}: {raw!r} does not start with a metric name")
        name, rest = name_match.group(0), line[name_match.end() :]
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            position = 1
            while True:
                if rest[position:].lstrip().startswith("}"):
                    position = rest.index("}", position) + 1
                    break
                label = _LABEL.match(rest, position)
                if label is None:
                    raise MetricsParseError(f"line {number}: cannot read the labels of {raw!r}")
                labels[label.group(1)] = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], label.group(2))
                position = label.end()
            rest = rest[position:]
        fields = rest.split()
        if not fields:
            raise MetricsParseError(f"line {number}: {raw!r} has no value")
        samples.append(Sample(name, tuple(sorted(labels.items())), _float(fields[0], number)))
    return Scrape(time, tuple(samples))


def parse_query_range(body: Mapping[str, Any]) -> list[Scrape]:
    """Turn a Prometheus ``/api/v1/query_range`` answer of raw series into snapshots, one per step.

    :param body: the decoded JSON answer (``{"status": "success", "data": {"resultType": "matrix", ...}}``).
    :raises MetricsParseError: when the answer is an error or not a matrix.
    """
    data = _data(body)
    if data.get("resultType") != "matrix":
        raise MetricsParseError(f"expected a matrix from query_range, got {data.get('resultType')!r}")
    by_time: dict[float, list[Sample]] = defaultdict(list)
    for series in data.get("result", []):
        metric = dict(series.get("metric", {}))
        name = metric.pop("__name__", "")
        labels = tuple(sorted(metric.items()))
        for timestamp, value in series.get("values", []):
            by_time[float(timestamp)].append(Sample(name, labels, _float(str(value), 0)))
    return [Scrape(moment, tuple(samples)) for moment, samples in sorted(by_time.items())]


def parse_query(body: Mapping[str, Any]) -> list[Sample]:
    """Turn a Prometheus ``/api/v1/query`` answer (an instant vector) into samples.

    :raises MetricsParseError: when the answer is an error or not a vector.
    """
    data = _data(body)
    if data.get("resultType") != "vector":
        raise MetricsParseError(f"expected a vector from query, got {data.get('resultType')!r}")
    samples = []
    for series in data.get("result", []):
        metric = dict(series.get("metric", {}))
        name = metric.pop("__name__", "")
        samples.append(Sample(name, tuple(sorted(metric.items())), _float(str(series["value"][1]), 0)))
    return samples


def promql_string(value: str) -> str:
    """Return ``value`` as a double-quoted PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def window_query(schema: MetricsSchema, namespace: str, revisions: Iterable[str]) -> str:
    """Return the PromQL selecting the revisions' raw latency buckets (one ``or`` branch per revision)."""
    names = SCHEMAS[schema]
    return " or ".join(
        f"{names.bucket}{{{names.namespace}={promql_string(namespace)},"
        f"{names.revision}={promql_string(revision)}}}"
        for revision in dict.fromkeys(revisions)
    )


def schema_query() -> str:
    """Return the PromQL that counts the series of each schema's latency histogram in the cluster."""
    names = "|".join(SCHEMAS[schema].bucket for schema in MetricsSchema)
    return f'count by (__name__) ({{__name__=~"{names}"}})'


def detect_schema_from_counts(samples: Iterable[Sample]) -> MetricsSchema | None:
    """Return the schema :func:`schema_query`'s answer shows (OpenTelemetry if both), or None."""
    return detect_schema([Scrape(0.0, tuple(sample for sample in samples if sample.value > 0))])


def _data(body: Mapping[str, Any]) -> Mapping[str, Any]:
    if body.get("status") != "success":
        raise MetricsParseError(
            f"Prometheus answered {body.get('errorType', 'an error')}: {body.get('error', body)}"
        )
    data: Mapping[str, Any] = body.get("data") or {}
    return data


def _float(text: str, line: int) -> float:
    try:
        return float(text)  # accepts NaN, +Inf, -Inf as Prometheus writes them
    except ValueError:
        raise MetricsParseError(f"line {line}: {text!r} is not a number") from None


def _bound(le: str, names: SchemaNames) -> float:
    bound = float(le) if le else math.inf
    return bound if math.isinf(bound) else bound * names.bound_scale


def _bounds(values: Sequence[Mapping[Labels, float]], names: SchemaNames) -> list[float]:
    found = {_bound(dict(labels).get("le", ""), names) for snapshot in values for labels in snapshot}
    found.add(math.inf)
    return sorted(found)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
