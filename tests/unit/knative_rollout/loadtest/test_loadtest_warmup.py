"""The warm-up before the measurement, on real sockets: a cold start is waited out, not measured."""

from __future__ import annotations

import asyncio

import pytest
from loadtest_servers import RawServer, ReceivedRequest, Reply, ok

from knative_rollout.loadtest import LoadTestConfig, Slo, Warmup, judge, run_load_test
from knative_rollout.policy import Verdict as Outcome

COLD_START_S = 1.5
RATE, DURATION_S, TIMEOUT_S = 20, 1.0, 0.5
UNAVAILABLE = Reply([b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"])


def cold_start(held: bool) -> object:
    """Answer only ``COLD_START_S`` after the first request: until then hold requests (as Knative's
    activator does while a pod starts) or answer 503 at once (as a starting queue-proxy does)."""
    ready_at: list[float] = []

    def respond(request: ReceivedRequest) -> Reply:
        ready_at[:] = ready_at or [request.arrival + COLD_START_S]
        wait = ready_at[0] - request.arrival
        if wait <= 0:
            return ok()
        return Reply(ok().pieces, delay=wait) if held else UNAVAILABLE

    return respond


def config(server: RawServer, **kwargs: float) -> LoadTestConfig:
    return LoadTestConfig(
        url=server.url + "/", rate=RATE, duration_s=DURATION_S, timeout_s=TIMEOUT_S, **kwargs
    )


@pytest.mark.parametrize("held", [True, False], ids=["held-until-ready", "503-until-ready"])
async def test_the_warm_up_waits_out_a_cold_start_and_the_measurement_excludes_it(held: bool) -> None:
    warmups: list[Warmup] = []
    async with RawServer(cold_start(held)) as server:
        result = await run_load_test(config(server), on_warmup=warmups.append)
    (warmup,) = warmups
    assert warmup.succeeded and COLD_START_S - 0.1 <= warmup.elapsed_s < COLD_START_S + 1
    # Held: one request that waited; 503s: one every ~0.1 s until the first success.
    assert warmup.requests == 1 if held else 8 <= warmup.requests <= 16
    assert "answered after" in warmup.line()
    measured = server.requests[warmup.requests :]
    first_ok = server.requests[warmup.requests - 1].arrival
    assert len(measured) == result.requests == RATE * DURATION_S
    assert min(request.arrival for request in measured) >= first_ok, "measured only after the answer"
    assert result.errors == {} and result.succeeded == result.requests
    assert result.latency_ms()["max"] < 200, "the cold start is not in the measurement"
    summary = result.summary()
    assert summary["warmup_requests"] == warmup.requests
    assert summary["warmup_s"] == pytest.approx(warmup.elapsed_s, abs=0.001)
    verdict, _ = judge(config(server), result, Slo.parse("p99<=200ms,error_rate<=0.01"))
    assert verdict.outcome is Outcome.PASS


@pytest.mark.parametrize(
    ("reply", "outcome", "last_error"),
    [
        (Reply(None), Outcome.INCONCLUSIVE, "timeout"),
        (
            Reply([b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"]),
            Outcome.FAIL,
            "http_500",
        ),
    ],
    ids=["never-answers", "fast-500s"],
)
async def test_a_warm_up_that_runs_out_leaves_the_gate_as_honest_as_before(
    reply: Reply, outcome: Outcome, last_error: str
) -> None:
    warmups: list[Warmup] = []
    async with RawServer(lambda request: reply) as server:
        cfg = config(server, warmup_s=0.6)
        result = await run_load_test(cfg, on_warmup=warmups.append)
    (warmup,) = warmups
    assert not warmup.succeeded and warmup.last_error == last_error
    assert 0.6 <= warmup.elapsed_s < 1.0 and warmup.line().startswith("warm-up ran out")
    assert result.requests == RATE * DURATION_S, "the measurement ran anyway, without the warm-up's requests"
    assert len(server.requests) == result.requests + warmup.requests
    verdict, report = judge(cfg, result, Slo.parse("p99<=200ms"))
    assert verdict.outcome is outcome and not verdict.passed
    assert report["warmup_requests"] == warmup.requests and report["config"]["warmup_s"] == 0.6


async def test_warm_up_0_sends_none() -> None:
    warmups: list[Warmup] = []
    async with RawServer(lambda request: ok()) as server:
        result = await run_load_test(config(server, warmup_s=0), on_warmup=warmups.append)
    assert warmups == [] and len(server.requests) == result.requests == RATE * DURATION_S
    assert (result.summary()["warmup_s"], result.summary()["warmup_requests"]) == (0, 0)


async def test_the_warm_up_sends_the_load_s_request() -> None:
    async with RawServer(lambda request: ok(b'{"predictions": []}')) as server:
        cfg = LoadTestConfig(
            url=server.url + "/v1/models/m:predict",
            rate=RATE,
            duration_s=0.1,
            headers=(("Authorization", "Bearer t0ken"),),
            bodies=(b'{"instances": [[1]]}', b'{"instances": [[2]]}'),
            expect_json_field="predictions",
        )
        result = await asyncio.wait_for(run_load_test(cfg), 10)
    warm, first = server.requests[0], server.requests[1]
    assert result.warmup_requests == 1 and len(server.requests) == 1 + result.requests
    assert (warm.head, warm.body) == (first.head, first.body)
    assert warm.head.startswith(b"POST /v1/models/m:predict HTTP/1.1")
