"""Count requests per revision under Knative's queue-proxy metric names, in Prometheus text format.

``revision_app_request_*`` count what the user container answered (the time spent in the app);
``revision_request_*`` count every answer the ingress gave for a revision, including activator answers
(503/504 while no pod could take the request) and the time spent waiting for a pod. Latencies are
histograms in milliseconds with Knative's buckets. Pod gauges come from the runtime at scrape time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

# The buckets of Knative's queue-proxy request latency views (milliseconds).
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    5,
    10,
    20,
    40,
    60,
    80,
    100,
    150,
    200,
    250,
    300,
    350,
    400,
    450,
    500,
    600,
    700,
    800,
    900,
    1000,
    2000,
    5000,
    10000,
    20000,
    50000,
    100000,
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class RevisionLabels:
    """The labels that name a revision in every series."""

    namespace: str
    service: str
    configuration: str
    revision: str


@dataclass
class _Series:
    count: int = 0
    total_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_MS))

    def observe(self, latency_ms: float) -> None:
        self.count += 1
        self.total_ms += latency_ms
        index = bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)
        if index < len(self.buckets):
            self.buckets[index] += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _revision_labels(labels: RevisionLabels) -> str:
    return (
        f'namespace_name="{_escape(labels.namespace)}",service_name="{_escape(labels.service)}",'
        f'configuration_name="{_escape(labels.configuration)}",revision_name="{_escape(labels.revision)}"'
    )


class RequestMetrics:
    """Hold request counters and latency histograms per revision and response code."""

    def __init__(self) -> None:
        # (revision, code) -> (every answer, answers of the app); the app series stays empty for answers
        # no pod gave. One lookup per request keeps the hot path short.
        self._series: dict[tuple[RevisionLabels, int], tuple[_Series, _Series]] = {}

    def record(self, labels: RevisionLabels, code: int, total_ms: float, app_ms: float | None) -> None:
        """Count one answer.

        :param labels: the revision that was asked.
        :param code: the HTTP status the client got.
        :param total_ms: time from the request's arrival at the ingress to its answer.
        :param app_ms: time the user container took, or None when no pod answered.
        """
        key = (labels, code)
        pair = self._series.get(key)
        if pair is None:
            pair = self._series[key] = (_Series(), _Series())
        pair[0].observe(total_ms)
        if app_ms is not None:
            pair[1].observe(app_ms)

    def render(self, pod_counts: Iterable[tuple[RevisionLabels, int, int]] = ()) -> str:
        """Return every series in the Prometheus text exposition format.

        :param pod_counts: (revision, desired pods, ready pods) per revision.
        """
        lines: list[str] = []
        everything = {key: pair[0] for key, pair in self._series.items()}
        app = {key: pair[1] for key, pair in self._series.items() if pair[1].count}
        for prefix, table in (("revision_app_request", app), ("revision_request", everything)):
            _render_requests(lines, prefix, table)
        gauges = list(pod_counts)
        for name, index, help_text in (
            ("autoscaler_desired_pods", 1, "Number of pods the autoscaler wants"),
            ("autoscaler_actual_pods", 2, "Number of pods that are ready"),
        ):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for row in gauges:
                labels = row[0]
                lines.append(
                    f'{name}{{namespace_name="{_escape(labels.namespace)}",'
                    f'configuration_name="{_escape(labels.configuration)}",'
                    f'revision_name="{_escape(labels.revision)}"}} {row[index]}'
                )
        return "\n".join(lines) + "\n"


def _render_requests(lines: list[str], prefix: str, table: dict[tuple[RevisionLabels, int], _Series]) -> None:
    count_name, latency_name = f"{prefix}_count", f"{prefix}_latencies"
    rows = sorted(table.items(), key=lambda item: (_revision_labels(item[0][0]), item[0][1]))
    lines.append(f"# HELP {count_name} The number of requests that are routed to the revision")
    lines.append(f"# TYPE {count_name} counter")
    for (labels, code), series in rows:
        lines.append(f"{count_name}{{{_code_labels(labels, code)}}} {series.count}")
    lines.append(f"# HELP {latency_name} The response time in millisecond")
    lines.append(f"# TYPE {latency_name} histogram")
    for (labels, code), series in rows:
        base = _code_labels(labels, code)
        cumulative = 0
        for bound, hits in zip(LATENCY_BUCKETS_MS, series.buckets, strict=True):
            cumulative += hits
            lines.append(f'{latency_name}_bucket{{{base},le="{bound:g}"}} {cumulative}')
        lines.append(f'{latency_name}_bucket{{{base},le="+Inf"}} {series.count}')
        lines.append(f"{latency_name}_sum{{{base}}} {series.total_ms:.3f}")
        lines.append(f"{latency_name}_count{{{base}}} {series.count}")


def _code_labels(labels: RevisionLabels, code: int) -> str:
    return f'{_revision_labels(labels)},response_code="{code}",response_code_class="{code // 100}xx"'
