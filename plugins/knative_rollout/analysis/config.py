"""What an analysis step is asked to do, read from the mapping a DAG passes (``analysis={...}``).

Pure: no I/O. The operators check a DAG's ``analysis`` mapping with :meth:`AnalysisConfig.of` before any
write, and the trigger reads the same mapping again in the triggerer (a trigger's arguments must be
JSON), so both sides agree on one definition. Unknown keys are refused: a misspelt ``slo`` would
otherwise judge nothing.

Keys (durations are seconds or text such as ``"30s"``, ``"2m"``, ``"300ms"``):

* where the metrics are: ``prometheus_url`` (the Prometheus HTTP API) or ``scrape_urls`` (``/metrics``
  endpoints read directly); ``metrics_conn_id`` (an Airflow connection whose host is the Prometheus URL
  and whose password is a bearer token, or login and password for basic auth) instead of the URL;
  ``headers``; ``timeout`` (per request, default 30 s);
* the window: ``window`` (default 60 s) of ``interval`` samples (default 10 s; with ``samples:
  "intervals"`` the judge compares one sample per interval and revision, and needs about 5 a side);
  ``settle`` (Prometheus only, default 15 s): how long after the window's end to wait before reading
  it, so that the last scrapes are in;
* what is checked: ``slo`` (``max_p99_latency``, ``max_error_rate``, ``min_requests``), ``compare``
  (default true: judge the candidate against the stable revision), ``metrics`` (the judge's metrics,
  default p99 latency and critical error rate), ``samples`` (``requests``, the default: every request
  of the window, latencies from its histogram and pooled error counts; ``intervals``: Kayenta's one
  sample per interval), ``thresholds`` (``pass_threshold``, ``marginal_threshold``), ``schema``
  (``auto``, ``opencensus``, ``opentelemetry``);
* ``load``: synthetic load during each window, for a service with little real traffic: ``rate``
  (requests per second to each revision judged, on its tag URL, open model), ``path``, ``method``,
  ``headers``, ``bodies`` (JSON texts, used in turn), ``timeout`` (10 s), ``ingress_address`` (when the
  tag hosts do not resolve: the Knative ingress, else the connection's ``ingress_address`` extra);
* ``on_no_data``: the verdict of an SLO check that saw too few answers: ``inconclusive`` (default),
  ``fail`` (also makes the judge's metrics ``must_have_data``) or ``pass``. The judge's own "no data"
  is inconclusive: too little data is never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from knative_rollout.analysis.checks import (
    DEFAULT_METRICS,
    DEFAULT_SAMPLES,
    METRIC_NAMES,
    SLO,
    Samples,
    parse_verdict,
)
from knative_rollout.analysis.judge import Direction, MetricSpec, ScoreThresholds
from knative_rollout.analysis.series import MetricsSchema
from knative_rollout.policy import Verdict

KEYS = frozenset(
    {
        "prometheus_url",
        "scrape_urls",
        "metrics_conn_id",
        "headers",
        "timeout",
        "window",
        "interval",
        "settle",
        "slo",
        "compare",
        "metrics",
        "samples",
        "thresholds",
        "schema",
        "on_no_data",
        "load",
    }
)
LOAD_KEYS = frozenset({"rate", "path", "method", "headers", "bodies", "timeout", "ingress_address"})
SLO_KEYS = frozenset({"max_p99_latency", "max_error_rate", "min_requests"})
DEFAULT_WINDOW = 60.0
DEFAULT_INTERVAL = 10.0
DEFAULT_SETTLE = 15.0
DEFAULT_TIMEOUT = 30.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_seconds(value: object, what: str, *, minimum: float = 0.0) -> float:
    """Return seconds from a number or text with a unit (``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"``).

    :raises ValueError: naming ``what`` and the accepted forms.
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        unit = next((u for u in ("ms", "s", "m", "h") if text.endswith(u)), "")
        try:
            seconds = float(text[: len(text) - len(unit)]) * _UNITS.get(unit, 1.0)
        except ValueError:
            seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds < minimum:
        raise ValueError(
            f"{what}={value!r} is not a duration of at least {minimum:g}s; write seconds or text such as "
            "500ms, 30s, 2m"
        )
    return seconds


def _fraction(value: object, what: str) -> float:
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what}={value!r} is not a number; pass a fraction such as 0.01") from None
    return number


@dataclass(frozen=True)
class AnalysisConfig:
    """A checked analysis mapping.

    :param prometheus_url: the Prometheus HTTP API, or None.
    :param scrape_urls: ``/metrics`` endpoints to read directly (when no Prometheus URL).
    :param metrics_conn_id: an Airflow connection naming the Prometheus API and its credentials.
    :param headers: request headers.
    :param timeout: seconds per request.
    :param window: seconds of metrics judged per analysis.
    :param interval: seconds per sample.
    :param settle: seconds to wait after the window before reading it from Prometheus.
    :param slo: absolute limits on the candidate, or None.
    :param compare: whether the candidate is judged against the stable revision.
    :param metrics: the judge's metrics.
    :param samples: what the judge compares: every request of the window or one sample per interval.
    :param thresholds: the judge's score thresholds, or None for Kayenta's.
    :param schema: the Knative metrics schema (``auto`` detects it).
    :param on_no_data: the verdict of an SLO check without enough answers.
    :param load: synthetic load sent to the judged revisions during each window, or None.
    """

    prometheus_url: str | None = None
    scrape_urls: tuple[str, ...] = ()
    metrics_conn_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    window: float = DEFAULT_WINDOW
    interval: float = DEFAULT_INTERVAL
    settle: float = DEFAULT_SETTLE
    slo: SLO | None = None
    compare: bool = True
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    samples: Samples = DEFAULT_SAMPLES
    thresholds: ScoreThresholds | None = None
    schema: str = "auto"
    on_no_data: Verdict = Verdict.INCONCLUSIVE
    load: SyntheticLoad | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> AnalysisConfig:
        """Return the checked configuration of an ``analysis`` mapping.

        :raises ValueError: saying what is wrong and what to write instead.
        """
        if not isinstance(raw, Mapping):
            raise ValueError(
                f"analysis must be a mapping such as {{'prometheus_url': ..., 'slo': {{...}}}}, got "
                f"{type(raw).__name__}"
            )
        unknown = sorted(set(raw) - KEYS)
        if unknown:
            raise ValueError(f"analysis has unknown keys {unknown}; the keys are {sorted(KEYS)}")
        sources = [key for key in ("prometheus_url", "scrape_urls", "metrics_conn_id") if raw.get(key)]
        if not sources:
            raise ValueError(
                "analysis says nowhere to read metrics from: give prometheus_url (the Prometheus HTTP API), "
                "metrics_conn_id (a connection naming it) or scrape_urls (/metrics endpoints)"
            )
        if "scrape_urls" in sources and len(sources) > 1:
            raise ValueError(
                f"analysis gives {sources}: read either from Prometheus or by direct scrape, not both"
            )
        scrape = raw.get("scrape_urls") or ()
        if isinstance(scrape, str) or not isinstance(scrape, Sequence):
            raise ValueError(f"scrape_urls must be a list of /metrics URLs, got {scrape!r}")
        on_no_data = parse_verdict(raw.get("on_no_data", Verdict.INCONCLUSIVE), what="on_no_data")
        window = parse_seconds(raw.get("window", DEFAULT_WINDOW), "window", minimum=0.001)
        interval = parse_seconds(raw.get("interval", DEFAULT_INTERVAL), "interval", minimum=0.001)
        if interval > window:
            raise ValueError(
                f"interval={interval:g}s is longer than window={window:g}s; the window holds whole intervals"
            )
        compare = raw.get("compare", True)
        if isinstance(compare, str):
            if compare.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"compare must be true or false, got {compare!r}")
            compare = compare.strip().lower() in ("true", "1", "yes")
        if not isinstance(compare, bool):
            raise ValueError(f"compare must be true or false, got {compare!r}")
        slo = _slo(raw.get("slo"), on_no_data)
        if slo is None and not compare:
            raise ValueError(
                "analysis checks nothing: give an slo (e.g. {'max_p99_latency': '300ms', "
                "'max_error_rate': 0.01}), or leave compare on to judge the candidate against the stable"
            )
        metrics = _metrics(raw.get("metrics"), must_have_data=on_no_data is Verdict.FAIL)
        thresholds = raw.get("thresholds")
        if thresholds is not None and not isinstance(thresholds, Mapping):
            raise ValueError(
                f"thresholds must be a mapping such as {{'pass_threshold': 95}}, got {thresholds!r}"
            )
        headers = raw.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise ValueError(f"headers must be a mapping of header names to values, got {headers!r}")
        samples = str(raw.get("samples", DEFAULT_SAMPLES.value)).strip().lower()
        if samples not in {s.value for s in Samples}:
            choices = ", ".join(s.value for s in Samples)
            raise ValueError(f"samples={raw.get('samples')!r} is not known; pass one of {choices}")
        schema = str(raw.get("schema", "auto")).strip().lower()
        if schema != "auto" and schema not in {s.value for s in MetricsSchema}:
            choices = ", ".join(["auto", *(s.value for s in MetricsSchema)])
            raise ValueError(f"schema={raw.get('schema')!r} is not known; pass one of {choices}")
        return cls(
            prometheus_url=str(raw["prometheus_url"]).strip() if raw.get("prometheus_url") else None,
            scrape_urls=tuple(str(url) for url in scrape),
            metrics_conn_id=str(raw["metrics_conn_id"]) if raw.get("metrics_conn_id") else None,
            headers={str(k): str(v) for k, v in headers.items()},
            timeout=parse_seconds(raw.get("timeout", DEFAULT_TIMEOUT), "timeout", minimum=0.001),
            window=window,
            interval=interval,
            settle=parse_seconds(raw.get("settle", DEFAULT_SETTLE), "settle"),
            slo=slo,
            compare=compare,
            metrics=metrics,
            samples=Samples(samples),
            thresholds=ScoreThresholds(**thresholds) if thresholds is not None else None,
            schema=schema,
            on_no_data=on_no_data,
            load=_load(raw.get("load")),
        )

    @property
    def reads_prometheus(self) -> bool:
        """Return whether the metrics come from a Prometheus API (else: direct scrape)."""
        return not self.scrape_urls

    def without_baseline(self) -> AnalysisConfig:
        """Return this analysis with SLO checks only (when the stable serves no traffic to compare with)."""
        return replace(self, compare=False)


@dataclass(frozen=True)
class SyntheticLoad:
    """Open-model load sent to each judged revision's tag URL during an analysis window.

    :param rate: requests per second per revision.
    :param path: the request path.
    :param method: HTTP method (default GET, POST with bodies).
    :param headers: request headers.
    :param bodies: request bodies, used in turn.
    :param timeout: seconds before a request counts as timed out.
    :param ingress_address: ``host:port`` of the Knative ingress, when tag hosts do not resolve.
    """

    rate: float
    path: str = "/"
    method: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    bodies: tuple[str, ...] = ()
    timeout: float = 10.0
    ingress_address: str | None = None


def _load(raw: object) -> SyntheticLoad | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"load must be a mapping such as {{'rate': 20, 'path': '/'}}, got {raw!r}")
    unknown = sorted(set(raw) - LOAD_KEYS)
    if unknown:
        raise ValueError(f"load has unknown keys {unknown}; the keys are {sorted(LOAD_KEYS)}")
    rate = _fraction(raw.get("rate"), "load rate")
    if not rate > 0:
        raise ValueError(f"load rate={raw.get('rate')!r}; pass requests per second above 0")
    path = str(raw.get("path", "/"))
    if not path.startswith("/"):
        raise ValueError(f"load path={path!r} must start with /")
    headers = raw.get("headers") or {}
    bodies = raw.get("bodies") or ()
    if not isinstance(headers, Mapping):
        raise ValueError(f"load headers must be a mapping, got {headers!r}")
    if isinstance(bodies, str) or not isinstance(bodies, Sequence):
        raise ValueError(f"load bodies must be a list of request bodies, got {bodies!r}")
    return SyntheticLoad(
        rate=rate,
        path=path,
        method=str(raw["method"]).upper() if raw.get("method") else None,
        headers={str(k): str(v) for k, v in headers.items()},
        bodies=tuple(str(body) for body in bodies),
        timeout=parse_seconds(raw.get("timeout", 10.0), "load timeout", minimum=0.001),
        ingress_address=str(raw["ingress_address"]) if raw.get("ingress_address") else None,
    )


def _slo(raw: object, on_no_data: Verdict) -> SLO | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"slo must be a mapping such as {{'max_p99_latency': '300ms'}}, got {raw!r}")
    unknown = sorted(set(raw) - SLO_KEYS)
    if unknown:
        raise ValueError(f"slo has unknown keys {unknown}; the keys are {sorted(SLO_KEYS)}")
    if not raw:
        raise ValueError("slo is empty; give max_p99_latency and/or max_error_rate")
    latency = raw.get("max_p99_latency")
    errors = raw.get("max_error_rate")
    requests = raw.get("min_requests", 20)
    if isinstance(requests, str) and requests.strip().isdigit():
        requests = int(requests.strip())
    if isinstance(requests, bool) or not isinstance(requests, int):
        raise ValueError(f"slo min_requests must be an integer, got {requests!r}")
    return SLO(
        max_p99_latency=parse_seconds(latency, "slo max_p99_latency", minimum=1e-9)
        if latency is not None
        else None,
        max_error_rate=_fraction(errors, "slo max_error_rate") if errors is not None else None,
        min_requests=requests,
        on_no_data=on_no_data,
    )


def _metrics(raw: object, *, must_have_data: bool) -> tuple[MetricSpec, ...]:
    specs: list[MetricSpec] = []
    if raw is None:
        specs = list(DEFAULT_METRICS)
    elif isinstance(raw, Sequence) and not isinstance(raw, str) and raw:
        for item in raw:
            if not isinstance(item, Mapping) or "name" not in item:
                raise ValueError(
                    f"each judge metric is a mapping with a name, e.g. {{'name': 'latency_p95', "
                    f"'direction': 'increase'}}; got {item!r}"
                )
            values = dict(item)
            try:
                values["direction"] = Direction(str(values.get("direction", Direction.EITHER.value)).lower())
            except ValueError:
                choices = ", ".join(d.value for d in Direction)
                raise ValueError(f"metric {item['name']!r}: direction must be one of {choices}") from None
            try:
                specs.append(MetricSpec(**values))
            except TypeError as error:
                raise ValueError(f"metric {item['name']!r}: {error}") from None
    else:
        raise ValueError(f"metrics must be a non-empty list of metric mappings, got {raw!r}")
    for spec in specs:
        if spec.name not in METRIC_NAMES:
            raise ValueError(
                f"unknown metric {spec.name!r}; the built-in metrics are {', '.join(METRIC_NAMES)}"
            )
    if must_have_data:
        specs = [replace(spec, must_have_data=True) for spec in specs]
    return tuple(specs)
