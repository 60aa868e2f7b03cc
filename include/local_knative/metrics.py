"""Count requests per revision under Knative's queue-proxy metric names, in Prometheus text format.

Two schemas, chosen once at start with ``LOCAL_KNATIVE_METRICS_SCHEMA`` (read when the ingress is made):

* ``opencensus`` (the default; Knative up to 1.18): ``revision_app_request_*`` count what the user
  container answered (the time spent in the app); ``revision_request_*`` count every answer the ingress
  gave for a revision, including activator answers (503/504 while no pod could take the request) and the
  time spent waiting for a pod. Latencies are histograms in milliseconds with Knative's buckets.
* ``opentelemetry`` (Knative 1.19+): one histogram ``http_server_request_duration_seconds`` of every
  answer (like ``revision_request_latencies``), in seconds with the OpenTelemetry semantic-convention
  buckets, labelled as the OpenTelemetry Prometheus exporter labels queue-proxy's otelhttp metrics with
  the resource attributes promoted to labels: ``http_response_status_code``, ``k8s_namespace_name``,
  ``kn_service_name``, ``kn_configuration_name``, ``kn_revision_name``, ``network_protocol_name``,
  ``url_scheme`` (no ``http_request_method``: the ingress does not record the method).

Pod gauges (``autoscaler_*_pods``) come from the runtime at scrape time, under the same names in both.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Mapping
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
# The explicit bucket boundaries OpenTelemetry's HTTP semantic conventions advise for
# http.server.request.duration (seconds).
OTEL_DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCHEMA_ENV = "LOCAL_KNATIVE_METRICS_SCHEMA"
OPENCENSUS = "opencensus"
OPENTELEMETRY = "opentelemetry"
SCHEMAS = (OPENCENSUS, OPENTELEMETRY)
_OTEL_NAME = "http_server_request_duration_seconds"


def schema_from_env(env: Mapping[str, str] | None = None) -> str:
    """Return the schema ``LOCAL_KNATIVE_METRICS_SCHEMA`` names (``opencensus`` when unset or empty).

    :raises ValueError: for any other value, naming the variable and the choices.
    """
    value = (os.environ if env is None else env).get(SCHEMA_ENV, "").strip().lower() or OPENCENSUS
    if value not in SCHEMAS:
        raise ValueError(
            f"{SCHEMA_ENV}={value!r} is not a metrics schema; set it to one of {', '.join(SCHEMAS)}"
        )
    return value


@dataclass(frozen=True)
class RevisionLabels:
    """The labels that name a revision in every series."""

    namespace: str
    service: str
    configuration: str
    revision: str


@dataclass
class _Series:
    bounds: tuple[float, ...] = LATENCY_BUCKETS_MS  # in the unit observed
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.buckets = [0] * len(self.bounds)

    def observe(self, latency: float) -> None:
        self.count += 1
        self.total += latency
        index = bisect.bisect_left(self.bounds, latency)
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
    """Hold request counters and latency histograms per revision and response code.

    :param schema: ``opencensus`` or ``opentelemetry`` (None: from ``LOCAL_KNATIVE_METRICS_SCHEMA``).
    :raises ValueError: for an unknown schema.
    """

    def __init__(self, schema: str | None = None) -> None:
        self.schema = schema_from_env() if schema is None else schema_from_env({SCHEMA_ENV: schema})
        # (revision, code) -> (every answer, answers of the app); the app series stays empty for answers
        # no pod gave. One lookup per request keeps the hot path short. OpenTelemetry's histogram is in
        # seconds, so its series observe seconds.
        self._series: dict[tuple[RevisionLabels, int], tuple[_Series, _Series]] = {}
        self._otel = self.schema == OPENTELEMETRY

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
            bounds = OTEL_DURATION_BUCKETS_S if self._otel else LATENCY_BUCKETS_MS
            pair = self._series[key] = (_Series(bounds), _Series(bounds))
        scale = 0.001 if self._otel else 1.0
        pair[0].observe(total_ms * scale)
        if app_ms is not None:
            pair[1].observe(app_ms * scale)

    def render(self, pod_counts: Iterable[tuple[RevisionLabels, int, int]] = ()) -> str:
        """Return every series in the Prometheus text exposition format.

        :param pod_counts: (revision, desired pods, ready pods) per revision.
        """
        lines: list[str] = []
        everything = {key: pair[0] for key, pair in self._series.items()}
        if self._otel:
            _render_otel(lines, everything)
        else:
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
        _render_histogram(lines, latency_name, _code_labels(labels, code), series, "{:.3f}")


def _render_histogram(lines: list[str], name: str, base: str, series: _Series, total_format: str) -> None:
    cumulative = 0
    for bound, hits in zip(series.bounds, series.buckets, strict=True):
        cumulative += hits
        lines.append(f'{name}_bucket{{{base},le="{bound:g}"}} {cumulative}')
    lines.append(f'{name}_bucket{{{base},le="+Inf"}} {series.count}')
    lines.append(f"{name}_sum{{{base}}} {total_format.format(series.total)}")
    lines.append(f"{name}_count{{{base}}} {series.count}")


def _render_otel(lines: list[str], table: dict[tuple[RevisionLabels, int], _Series]) -> None:
    def otel_labels(labels: RevisionLabels, code: int) -> str:
        return (
            f'http_response_status_code="{code}",k8s_namespace_name="{_escape(labels.namespace)}",'
            f'kn_configuration_name="{_escape(labels.configuration)}",'
            f'kn_revision_name="{_escape(labels.revision)}",kn_service_name="{_escape(labels.service)}",'
            'network_protocol_name="http",url_scheme="http"'
        )

    rows = sorted(((otel_labels(*key), series) for key, series in table.items()), key=lambda row: row[0])
    lines.append(f"# HELP {_OTEL_NAME} Duration of HTTP server requests.")
    lines.append(f"# TYPE {_OTEL_NAME} histogram")
    for base, series in rows:
        _render_histogram(lines, _OTEL_NAME, base, series, "{:.6f}")


def _code_labels(labels: RevisionLabels, code: int) -> str:
    return f'{_revision_labels(labels)},response_code="{code}",response_code_class="{code // 100}xx"'
