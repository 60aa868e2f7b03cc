"""Parsing both Knative metric schemas from Prometheus text and JSON into per-revision windows."""

from __future__ import annotations

import math

import pytest

from knative_rollout.analysis.series import (
    MetricsParseError,
    MetricsSchema,
    Sample,
    Scrape,
    detect_schema,
    detect_schema_from_counts,
    histogram_quantile,
    parse_exposition,
    parse_query,
    parse_query_range,
    promql_string,
    request_latencies,
    revision_windows,
    window_query,
)

INF = math.inf


def opencensus(revision: str, code: int, buckets_ms: dict[str, int], namespace: str = "ns") -> str:
    labels = (
        f'namespace_name="{namespace}",service_name="svc",configuration_name="svc",revision_name="{revision}",'
        f'response_code="{code}",response_code_class="{code // 100}xx"'
    )
    return (
        "".join(
            f'revision_request_latencies_bucket{{{labels},le="{le}"}} {count}\n'
            for le, count in buckets_ms.items()
        )
        + f"revision_request_count{{{labels}}} {buckets_ms['+Inf']}\n"
    )


def opentelemetry(revision: str, code: int, buckets_s: dict[str, int], namespace: str = "ns") -> str:
    labels = (
        f'http_response_status_code="{code}",k8s_namespace_name="{namespace}",kn_revision_name="{revision}",'
        'kn_service_name="svc",network_protocol_name="http",url_scheme="http"'
    )
    return "".join(
        f'http_server_request_duration_seconds_bucket{{{labels},le="{le}"}} {count}\n'
        for le, count in buckets_s.items()
    )


def windows(texts: list[str], schema: MetricsSchema, revisions=("r1", "r2")):
    scrapes = [parse_exposition(text, time=float(index * 10)) for index, text in enumerate(texts)]
    return revision_windows(scrapes, namespace="ns", revisions=revisions, schema=schema)


@pytest.mark.parametrize(
    ("schema", "texts"),
    [
        (
            MetricsSchema.OPENCENSUS,
            [
                opencensus("r1", 200, {"5": 10, "10": 10, "+Inf": 10}),
                opencensus("r1", 200, {"5": 50, "10": 90, "+Inf": 90})
                + opencensus("r1", 500, {"5": 10, "10": 10, "+Inf": 10})
                + opencensus("r1", 200, {"5": 7, "10": 7, "+Inf": 7}, namespace="other"),
            ],
        ),
        (
            MetricsSchema.OPENTELEMETRY,
            [
                opentelemetry("r1", 200, {"0.005": 10, "0.01": 10, "+Inf": 10}),
                opentelemetry("r1", 200, {"0.005": 50, "0.01": 90, "+Inf": 90})
                + opentelemetry("r1", 503, {"0.005": 10, "0.01": 10, "+Inf": 10})
                + opentelemetry("r1", 200, {"0.005": 7, "0.01": 7, "+Inf": 7}, namespace="other"),
            ],
        ),
    ],
    ids=["opencensus-ms", "opentelemetry-s"],
)
def test_both_schemas_give_the_same_window(schema, texts):
    assert detect_schema([parse_exposition(text, time=0) for text in texts]) is schema
    result = windows(texts, schema)
    (interval,) = result["r1"].intervals
    # 80 new 2xx answers (40 under 5 ms, 40 in 5..10 ms) and 10 new 5xx (a series first seen: from 0).
    assert (interval.start, interval.end) == (0.0, 10.0)
    assert interval.requests == 90 and interval.errors == 10
    assert interval.buckets == ((0.005, 50.0), (0.01, 90.0), (INF, 90.0))
    assert interval.error_rate == pytest.approx(1 / 9)
    assert interval.latency_quantile(0.5) == pytest.approx(0.005 * 45 / 50)
    assert interval.latency_quantile(0.99) == pytest.approx(0.005 + 0.005 * (89.1 - 50) / 40)
    assert result["r2"].intervals[0].requests == 0, "a revision with no series answered nothing"
    assert result["r2"].error_rates() == [pytest.approx(math.nan, nan_ok=True)]


def test_counter_reset_and_disappearing_series():
    texts = [
        opencensus("r1", 200, {"5": 100, "+Inf": 100}),
        opencensus("r1", 200, {"5": 30, "+Inf": 30}),  # restarted: 30 new answers
        "",  # gone: nothing more
        opencensus("r1", 200, {"5": 40, "+Inf": 40}),  # back: counted as new since it was absent
    ]
    assert [i.requests for i in windows(texts, MetricsSchema.OPENCENSUS)["r1"].intervals] == [30, 0, 40]


def test_pods_are_summed_per_revision():
    pod_a = opencensus("r1", 200, {"5": 10, "+Inf": 10}).replace('service_name="svc"', 'pod_name="a"')
    pod_b = opencensus("r1", 200, {"5": 20, "+Inf": 20}).replace('service_name="svc"', 'pod_name="b"')
    later = pod_a.replace("} 10", "} 15") + pod_b.replace("} 20", "} 26")
    (interval,) = windows([pod_a + pod_b, later], MetricsSchema.OPENCENSUS)["r1"].intervals
    assert interval.requests == 11


def test_no_schema_is_no_data():
    result = revision_windows([], namespace="ns", revisions=["r1"], schema=None)
    assert result["r1"].intervals == () and result["r1"].total.requests == 0
    assert result["r1"].total.latency_quantile(0.99) is None


@pytest.mark.parametrize(
    ("quantile", "buckets", "expected"),
    [
        (0.5, ((0.01, 50), (0.02, 100), (INF, 100)), 0.01),
        (0.75, ((0.01, 50), (0.02, 100), (INF, 100)), 0.015),
        (0.25, ((0.01, 50), (0.02, 100), (INF, 100)), 0.005),
        (0.99, ((0.01, 50), (0.02, 90), (INF, 100)), 0.02),  # in +Inf: the highest finite bound
        (0.5, ((0.01, 0), (INF, 0)), None),  # nothing counted: no data, not 0
        (0.5, (), None),
        (0.5, ((0.0, 10), (1.0, 10), (INF, 10)), 0.0),
    ],
)
def test_histogram_quantile_as_promql(quantile, buckets, expected):
    assert histogram_quantile(quantile, buckets) == (
        pytest.approx(expected) if expected is not None else None
    )


EXPOSITION_CASES = [
    ("a 1\n", [("a", (), 1.0)]),
    ('a{b="c"} 2.5 1712345678000\n', [("a", (("b", "c"),), 2.5)]),
    ('# HELP a x\n# TYPE a counter\n\na{b="c",} +Inf\n', [("a", (("b", "c"),), INF)]),
    ('a{b="q\\"uo\\\\te\\n"} 3\n', [("a", (("b", 'q"uo\\te\n'),), 3.0)]),
    ('a{ b = "1" , c="2"} 1e3\n', [("a", (("b", "1"), ("c", "2")), 1000.0)]),
    ('a{b="x,y}"} 4\n', [("a", (("b", "x,y}"),), 4.0)]),
]


@pytest.mark.parametrize(("text", "expected"), EXPOSITION_CASES)
def test_parse_exposition(text, expected):
    scrape = parse_exposition(text, time=5.0)
    assert scrape.time == 5.0
    assert [(s.name, s.labels, s.value) for s in scrape.samples] == expected


@pytest.mark.parametrize("text", ['{b="c"} 1', "a", "a{b=c} 1", "a one"])
def test_parse_exposition_refuses_garbage(text):
    with pytest.raises(MetricsParseError, match="line 1"):
        parse_exposition(text, time=0)


def test_parse_query_range_gives_one_snapshot_per_step():
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"__name__": "a", "x": "1"}, "values": [[10, "1"], [20, "3"]]},
                {"metric": {"__name__": "a", "x": "2"}, "values": [[20, "5"]]},
            ],
        },
    }
    scrapes = parse_query_range(body)
    assert [scrape.time for scrape in scrapes] == [10.0, 20.0]
    assert scrapes[1].samples == (Sample("a", (("x", "1"),), 3.0), Sample("a", (("x", "2"),), 5.0))


@pytest.mark.parametrize(
    "body",
    [
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success", "data": {"resultType": "vector", "result": []}},
    ],
)
def test_parse_query_range_refuses_errors(body):
    with pytest.raises(MetricsParseError):
        parse_query_range(body)


def test_schema_detection_from_an_instant_count():
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"__name__": "revision_request_latencies_bucket"}, "value": [1, "26"]}],
        },
    }
    assert detect_schema_from_counts(parse_query(body)) is MetricsSchema.OPENCENSUS
    assert detect_schema_from_counts([]) is None
    assert detect_schema([Scrape(0, ())]) is None


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            MetricsSchema.OPENCENSUS,
            'revision_request_latencies_bucket{namespace_name="ns",revision_name="a"} or '
            'revision_request_latencies_bucket{namespace_name="ns",revision_name="b"}',
        ),
        (
            MetricsSchema.OPENTELEMETRY,
            'http_server_request_duration_seconds_bucket{k8s_namespace_name="ns",kn_revision_name="a"} or '
            'http_server_request_duration_seconds_bucket{k8s_namespace_name="ns",kn_revision_name="b"}',
        ),
    ],
)
def test_window_query(schema, expected):
    assert window_query(schema, "ns", ["a", "b", "a"]) == expected


def test_promql_strings_are_escaped():
    assert promql_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


REQUEST_CASES = [
    # (id, cumulative buckets, latencies)
    ("no buckets, no requests", (), []),
    ("nothing counted", ((0.01, 0.0), (INF, 0.0)), []),
    ("spread evenly inside each bucket", ((0.01, 2.0), (0.02, 3.0), (INF, 3.0)), [0.0025, 0.0075, 0.015]),
    ("an empty bucket between", ((0.01, 1.0), (0.02, 1.0), (0.04, 2.0), (INF, 2.0)), [0.005, 0.03]),
    ("+Inf at the highest finite bound", ((0.01, 1.0), (INF, 3.0)), [0.005, 0.01, 0.01]),
    ("a first bound of 0 holds its requests at 0", ((0.0, 2.0), (1.0, 3.0), (INF, 3.0)), [0.0, 0.0, 0.5]),
]


@pytest.mark.parametrize(
    ("buckets", "latencies"), [case[1:] for case in REQUEST_CASES], ids=[case[0] for case in REQUEST_CASES]
)
def test_request_latencies(buckets, latencies):
    assert request_latencies(buckets).tolist() == pytest.approx(latencies)


def test_request_latencies_agree_with_histogram_quantile():
    buckets = ((0.005, 480.0), (0.01, 800.0), (0.02, 975.0), (0.04, 995.0), (0.06, 1000.0), (INF, 1000.0))
    latencies = request_latencies(buckets)
    assert latencies.size == 1000 and (latencies[1:] >= latencies[:-1]).all()
    for quantile in (0.5, 0.9, 0.99):
        rank = round(quantile * 1000)  # the rank-th request sits half a request below its quantile
        assert latencies[rank - 1] == pytest.approx(histogram_quantile((rank - 0.5) / 1000, buckets))


def test_request_latencies_of_a_busy_window_are_scaled_down_keeping_the_shape():
    buckets = ((0.005, 480_000.0), (0.01, 800_000.0), (0.02, 1_000_000.0), (INF, 1_000_000.0))
    latencies = request_latencies(buckets, at_most=1000)
    assert latencies.size == 1000
    assert [int((latencies <= bound).sum()) for bound in (0.005, 0.01, 0.02)] == [480, 800, 1000]
    assert request_latencies(((0.005, 480_000.0), (INF, 480_000.0)), at_most=10**6).size == 480_000
