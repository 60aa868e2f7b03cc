"""The load generator against real servers on loopback: rate, honest percentiles, errors, HTTP framing."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from loadtest_servers import RawServer, ReceivedRequest, Reply, ok

from benchmarks.loadgen.stall_server import StallPattern
from knative_rollout.loadtest import IntervalStats, LoadTestConfig, LoadTestResult, Stage, run_load_test


async def test_open_model_sends_at_the_requested_rate() -> None:
    async with RawServer(lambda request: ok()) as server:
        result = await run_load_test(LoadTestConfig(url=server.url + "/", rate=400, duration_s=3, warmup_s=0))
    arrivals = [request.arrival for request in server.requests]
    server_rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert len(arrivals) == result.requests == result.completed == 1200
    assert server_rate == pytest.approx(400, rel=0.02)
    assert result.achieved_rate == pytest.approx(400, rel=0.02)
    assert result.throughput == pytest.approx(400, rel=0.02)
    assert result.errors == {} and result.status_codes == {200: 1200}
    # Keep-alive: a few connections carry all requests (without it, one each: 1200). How many depends on
    # how many requests are in flight at once, which a loaded machine raises.
    assert server.connections == result.connections_opened <= 60


async def test_stalls_show_in_open_model_p99_and_hide_from_closed_loop(
    stall_server: tuple[str, StallPattern],
) -> None:
    url, pattern = stall_server
    rate, duration = 200.0, 6.0
    start = time.time() + 0.01  # the engine starts its schedule 10 ms after it is called
    open_run, closed_run = await asyncio.gather(
        run_load_test(LoadTestConfig(url=url, rate=rate, duration_s=duration)),
        # What hey -c 2 -q 100 does: two workers, each waiting for its answer before the next request.
        run_load_test(LoadTestConfig(url=url, rate=rate, duration_s=duration, model="closed", concurrency=2)),
    )
    truth_ms = pattern.true_percentile(start, rate, duration, 99) * 1000
    open_ms, closed_ms = open_run.latency_ms()["p99"], closed_run.latency_ms()["p99"]
    print(
        f"\ntrue p99 {truth_ms:.1f} ms, open model p99 {open_ms:.1f} ms, closed loop p99 {closed_ms:.1f} ms"
    )
    assert truth_ms == pytest.approx(280, abs=15)
    assert open_ms == pytest.approx(truth_ms, rel=0.10)
    assert closed_ms < truth_ms / 2, "a closed loop sends little during a stall, so its p99 misses it"
    # The closed loop also fell short of the requested load while the server stalled.
    assert closed_run.achieved_rate < 0.95 * rate < open_run.achieved_rate


def by_body(request: ReceivedRequest) -> Reply:
    """Answer according to the body: ok, 503, never (a timeout), or close without answering."""
    if request.body == b"503":
        return Reply([b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"])
    if request.body == b"hang":
        return Reply(None)
    if request.body == b"close":
        return Reply([b""], close=True)
    return ok()


async def test_errors_and_timeouts_are_counted_by_kind() -> None:
    async with RawServer(by_body) as server:
        config = LoadTestConfig(
            url=server.url, rate=100, duration_s=1, timeout_s=0.3, bodies=(b"ok", b"503", b"hang", b"close")
        )
        result = await run_load_test(config)
    assert result.requests == 100
    assert result.errors == {"http_503": 25, "timeout": 25, "connection_closed": 25}
    assert result.status_codes == {200: 25, 503: 25}
    assert result.completed == 50 and result.error_rate == 0.75
    # Every request is in a distribution: 25 successes in ok, the 75 failures in failed.
    assert (result.ok.count, result.failed.count, result.all_requests().count) == (25, 75, 100)
    # The 25 timeouts are the slowest quarter, each at no less than the 300 ms timeout.
    assert result.failed.percentile(67) < 300_000 <= result.failed.percentile(68)
    assert result.latency_ms()["p90"] >= 300 and result.latency_ms_ok()["max"] < 300


async def test_connection_refused_is_its_own_kind() -> None:
    async with RawServer(lambda request: ok()) as server:
        url = server.url
    result = await run_load_test(LoadTestConfig(url=url, rate=50, duration_s=1, timeout_s=1, warmup_s=0))
    assert result.errors == {"connection_refused": 50} and result.completed == 0


@pytest.mark.parametrize(
    ("expect_status", "expect_json_field", "errors"),
    [
        ((), None, {"http_503": 10}),
        ((503,), None, {"http_200": 10}),
        ((200, 503), "predictions", {"check_failed": 10}),
    ],
)
async def test_response_checks(
    expect_status: tuple[int, ...], expect_json_field: str | None, errors: dict[str, int]
) -> None:
    def respond(request: ReceivedRequest) -> Reply:
        if request.body == b"bad":
            return Reply([b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}"])
        return ok(b'{"predictions": [1]}')

    async with RawServer(respond) as server:
        config = LoadTestConfig(
            url=server.url,
            rate=100,
            duration_s=0.2,
            bodies=(b"good", b"bad"),
            expect_status=expect_status,
            expect_json_field=expect_json_field,
            warmup_s=0,
        )
        result = await run_load_test(config)
    assert result.errors == errors and result.completed == 20


BODY = b'{"predictions": [1, 2, 3]}'


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(ok(BODY), id="content-length"),
        pytest.param(
            Reply(
                [
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"5\r\n" + BODY[:5] + b"\r\n",
                    b"%x;ext=1\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n",
                    b"0\r\nX-Trailer: yes\r\n\r\n",
                ],
                gap=0.002,
            ),
            id="chunked-in-pieces",
        ),
        pytest.param(Reply([b"HTTP/1.1 200 OK\r\n\r\n" + BODY], close=True), id="close-delimited"),
        pytest.param(
            Reply([b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 26\r\n\r\n" + BODY[:3], BODY[3:]], gap=0.002),
            id="split-headers",
        ),
        pytest.param(
            Reply([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n" + BODY]),
            id="interim-100",
        ),
    ],
)
async def test_response_framing(reply: Reply) -> None:
    async with RawServer(lambda request: reply) as server:
        config = LoadTestConfig(
            url=server.url, rate=50, duration_s=0.4, expect_json_field="predictions", warmup_s=0
        )
        result = await run_load_test(config)
    assert result.errors == {} and result.completed == 20 == len(server.requests)


async def test_open_model_counts_waiting_for_a_connection_in_latency() -> None:
    # One connection, 50 ms per answer: at most 20/s get through, so at 40/s requests queue and wait.
    async with RawServer(lambda request: Reply(ok().pieces, delay=0.05)) as server:
        result = await run_load_test(
            LoadTestConfig(url=server.url, rate=40, duration_s=1, concurrency=1, warmup_s=0)
        )
    assert server.connections == 1 and server.max_outstanding == 1
    assert result.completed == 40
    # The last request was due at 0.975 s and answered after 40 * 50 ms = 2 s: about 1 s late.
    assert result.latency_ms()["max"] == pytest.approx(1050, rel=0.15)


async def test_tag_host_headers_and_connect_to() -> None:
    async with RawServer(lambda request: ok()) as server:
        config = LoadTestConfig(
            url="http://model-candidate.team-a.example.com/v1/models/model?verbose=1",
            connect_to=f"127.0.0.1:{server.port}",
            rate=20,
            duration_s=0.1,
            headers=(("Knative-Serving-Tag", "candidate"), ("Authorization", "Bearer t0ken")),
        )
        result = await run_load_test(config)
    assert result.completed == 2
    request = server.requests[0]
    assert request.head.startswith(b"GET /v1/models/model?verbose=1 HTTP/1.1\r\n")
    assert request.header("host") == "model-candidate.team-a.example.com"
    assert request.header("knative-serving-tag") == "candidate"
    assert request.header("authorization") == "Bearer t0ken"


async def test_payloads_are_sent_in_turn() -> None:
    payloads = tuple(json.dumps({"instances": [[i]]}).encode() for i in range(3))
    async with RawServer(lambda request: ok()) as server:
        await run_load_test(
            LoadTestConfig(url=server.url, rate=70, duration_s=0.1, bodies=payloads, warmup_s=0)
        )
    assert [request.body for request in server.requests] == [*payloads, *payloads, payloads[0]]
    assert server.requests[0].head.startswith(b"POST / HTTP/1.1")
    assert server.requests[0].header("content-type") == "application/json"


async def test_ramped_stages() -> None:
    async with RawServer(lambda request: ok()) as server:
        config = LoadTestConfig(url=server.url, stages=(Stage(1, 0, 200), Stage(0.5, 200, 200)), warmup_s=0)
        result = await run_load_test(config)
    arrivals = [request.arrival - server.requests[0].arrival for request in server.requests]
    assert result.requests == 200
    assert sum(1 for t in arrivals if t < 0.5) == pytest.approx(25, abs=3)
    assert result.achieved_rate == pytest.approx(200 / 1.5, rel=0.02)


async def test_closed_model_keeps_at_most_n_requests_outstanding() -> None:
    async with RawServer(lambda request: Reply(ok().pieces, delay=0.01)) as server:
        result = await run_load_test(
            LoadTestConfig(url=server.url, model="closed", concurrency=4, duration_s=0.5, warmup_s=0)
        )
    assert server.max_outstanding == 4 and server.connections == 4
    # 4 workers x 10 ms per answer: about 400/s.
    assert 100 < result.achieved_rate <= 410


async def test_progress_is_reported_every_interval() -> None:
    lines: list[IntervalStats] = []
    async with RawServer(lambda request: ok()) as server:
        config = LoadTestConfig(url=server.url, rate=100, duration_s=1, progress_interval_s=0.25)
        result = await run_load_test(config, on_progress=lines.append)
    assert len(lines) >= 4 and lines == result.timeline
    assert [point.sent for point in lines] == sorted(point.sent for point in lines)
    assert lines[-1].completed == 100
    assert "sent" in lines[0].line() and "p99" in lines[0].line()


async def test_results_of_two_workers_merge() -> None:
    async with RawServer(lambda request: ok()) as server:
        first, second = await asyncio.gather(
            run_load_test(LoadTestConfig(url=server.url, rate=50, duration_s=1)),
            run_load_test(LoadTestConfig(url=server.url, rate=30, duration_s=1)),
        )
    merged = LoadTestResult()
    merged.merge(first)
    merged.merge(second)
    assert merged.requests == 80 and merged.ok.count == 80 and merged.failed.count == 0
    assert merged.requested_rate == 80 and merged.achieved_rate == pytest.approx(80, rel=0.02)
    assert merged.offered_rate == pytest.approx(80)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://x"}, "not an http"),
        ({"url": "http://x"}, "positive rate"),
        ({"url": "http://x", "rate": 5, "stages": (Stage(1, 1, 1),)}, "not both"),
        ({"url": "http://x", "rate": 5, "concurrency": 0}, "at least 1"),
        ({"url": "http://x", "rate": 5, "warmup_s": -1}, "warmup must be 0"),
        ({"url": "http://x", "rate": 5, "connect_to": "nohost"}, "HOST:PORT"),
        ({"url": "http://x", "rate": 5, "headers": (("X-A", "b\r\nc"),)}, "invalid header"),
    ],
)
def test_bad_config_is_refused_with_advice(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadTestConfig(**kwargs)  # type: ignore[arg-type]
