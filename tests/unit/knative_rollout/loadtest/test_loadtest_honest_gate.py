"""The honest gate over real sockets: a dead server, late answers and fast 500s each fail it, saying why."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path

import pytest
from loadtest_servers import RawServer, ReceivedRequest, Reply, ok

from knative_rollout.loadtest import LoadTestConfig, Slo, judge, run_load_test
from knative_rollout.loadtest.cli import EXIT_INCONCLUSIVE, EXIT_PASSED, EXIT_SLO_FAILED
from knative_rollout.policy import Verdict as Outcome

RATE, DURATION_S, TIMEOUT_S = 20, 3.0, 1.0
REQUESTS = int(RATE * DURATION_S)
SERVER_ERROR = Reply([b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"])


def never(request: ReceivedRequest) -> Reply:
    """Accept the connection, read the request, never answer."""
    return Reply(None)


def late_five_percent() -> object:
    """Answer every 20th request only after twice the timeout, all others at once."""
    counter = itertools.count(1)

    def respond(request: ReceivedRequest) -> Reply:
        return Reply(ok().pieces, delay=2 * TIMEOUT_S) if next(counter) % 20 == 0 else ok()

    return respond


async def gate(
    server: RawServer, slo: str, warmup_s: float = 0, **kwargs: object
) -> tuple[object, dict[str, object]]:
    """Judge a load test on ``server``, by default without a warm-up (these servers never warm up)."""
    config = LoadTestConfig(
        url=server.url + "/", rate=RATE, duration_s=DURATION_S, timeout_s=TIMEOUT_S, warmup_s=warmup_s
    )
    result = await run_load_test(config)
    return judge(config, result, Slo.parse(slo), **kwargs)  # type: ignore[arg-type]


async def test_a_server_that_never_answers_is_inconclusive_and_fails_the_gate() -> None:
    async with RawServer(never) as server:
        verdict, report = await gate(server, "p99<=200ms")
    assert len(server.requests) == REQUESTS, "every request reached the server and was read"
    assert report["requests"] == REQUESTS and report["completed"] == report["succeeded"] == 0
    assert report["errors"] == {"timeout": REQUESTS} and report["timeouts"] == REQUESTS
    # Every timeout is in the distribution at no less than the timeout: nothing reads as fast.
    latency = report["latency_ms"]
    assert all(value >= TIMEOUT_S * 1000 for value in latency.values())
    assert report["above_timeout"] == list(latency)
    assert set(report["latency_ms_ok"].values()) == {None}, "no success: no success latency, not 0"
    assert report["achieved_rate"] == 0 and report["offered_rate"] == pytest.approx(RATE)
    assert verdict.outcome is Outcome.INCONCLUSIVE and not verdict.passed
    assert report["verdict"]["outcome"] == "inconclusive"
    failed = report["verdict"]["failed"]
    assert [item["metric"] for item in failed] == ["answered", "p99"]
    assert failed[0]["message"] == f"no request of {REQUESTS} was answered ({REQUESTS} timed out after 1s)"
    assert "timed out" in failed[1]["message"] and failed[1]["measured"] >= 1000
    assert verdict.explain().startswith("gate inconclusive, so failed: no request of 60 was answered")


async def test_no_answer_passes_only_when_asked() -> None:
    async with RawServer(never) as server:
        verdict, report = await gate(server, "", fail_on_inconclusive=False)
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.passed
    assert report["verdict"]["failed"] == [] and report["verdict"]["fail_on_inconclusive"] is False
    assert "passed as asked" in verdict.explain()


async def test_five_percent_answered_after_the_timeout_put_p99_above_it() -> None:
    async with RawServer(late_five_percent()) as server:
        verdict, report = await gate(server, "p99<=200ms")
    late = REQUESTS // 20
    assert report["errors"] == {"timeout": late} and report["succeeded"] == REQUESTS - late
    latency, successful = report["latency_ms"], report["latency_ms_ok"]
    # The stall (2 s) is longer than the timeout (1 s); it still shows, at no less than the timeout.
    assert latency["p99"] >= TIMEOUT_S * 1000 and latency["max"] >= TIMEOUT_S * 1000
    assert "p99" in report["above_timeout"] and "p50" not in report["above_timeout"]
    assert successful["p99"] < 200 < latency["p99"], "both distributions are reported"
    assert report["achieved_rate"] == pytest.approx((REQUESTS - late) / DURATION_S, rel=0.05)
    assert verdict.outcome is Outcome.FAIL and not verdict.passed
    (p99,) = report["verdict"]["failed"]
    assert p99["metric"] == "p99" and p99["measured"] >= 1000
    assert f"at or above the 1s timeout: {late} of {REQUESTS} requests timed out" in p99["message"]


@pytest.mark.parametrize(
    ("slo", "failed"),
    [
        ("p99<=200ms", ["succeeded"]),
        ("p99<=200ms,error_rate<=0.01", ["succeeded", "error_rate"]),
        ("", ["succeeded"]),
    ],
)
async def test_fast_500s_fail_the_gate_whatever_the_slo(slo: str, failed: list[str]) -> None:
    async with RawServer(lambda request: SERVER_ERROR) as server:
        verdict, report = await gate(server, slo)
    assert report["completed"] == REQUESTS and report["succeeded"] == 0
    assert report["errors"] == {"http_500": REQUESTS}
    assert report["achieved_rate"] == pytest.approx(RATE, rel=0.05), "an error is an answer"
    # All requests were fast, but no success latency is claimed from them.
    assert report["latency_ms"]["p99"] < 200 and report["latency_ms_ok"]["p99"] is None
    assert report["above_timeout"] == []
    assert verdict.outcome is Outcome.FAIL and not verdict.passed
    reasons = report["verdict"]["failed"]
    assert [item["metric"] for item in reasons] == failed
    assert reasons[0]["message"] == f"no request of {REQUESTS} succeeded ({REQUESTS} http_500)"


async def test_fast_errors_cannot_pull_the_gated_latency_down() -> None:
    # Half the requests fail at once with 500, the other half succeed after 300 ms.
    counter = itertools.count()

    def respond(request: ReceivedRequest) -> Reply:
        return SERVER_ERROR if next(counter) % 2 else Reply(ok().pieces, delay=0.3)

    async with RawServer(respond) as server:
        _verdict, report = await gate(server, "p50<=100ms")
    assert report["latency_ms"]["p50"] < 100 < 300 <= report["latency_ms_ok"]["p50"]
    (p50,) = report["verdict"]["failed"]
    assert p50["measured"] == report["latency_ms_ok"]["p50"]
    assert "of successful requests" in p50["message"] and "fast errors" in p50["message"]


async def test_a_healthy_server_passes() -> None:
    async with RawServer(lambda request: ok()) as server:
        verdict, report = await gate(server, "p99<=200ms,error_rate<=0.01,achieved_rate>=19")
    assert verdict.outcome is Outcome.PASS and verdict.passed
    assert report["verdict"]["failed"] == [] and report["above_timeout"] == []
    assert report["latency_ms"] == report["latency_ms_ok"]


async def cli(server: RawServer, *args: str) -> tuple[int, str, str]:
    """Run ``python -m knative_rollout.loadtest`` against ``server`` while the test's loop serves it."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "knative_rollout.loadtest", "--url", server.url + "/", "--quiet", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize(
    ("extra", "exit_code"),
    [([], EXIT_INCONCLUSIVE), (["--allow-inconclusive"], EXIT_PASSED)],
)
async def test_cli_against_a_server_that_never_answers(
    tmp_path: Path, extra: list[str], exit_code: int
) -> None:
    report_path, plot_path = tmp_path / "report.json", tmp_path / "plot.png"
    async with RawServer(never) as server:
        code, stdout, stderr = await cli(
            server,
            *("--rate", "20", "--duration", "3s", "--timeout", "1s", "--slo", "p99<=200ms"),
            *("--json", str(report_path), "--plot", str(plot_path), "--warmup", "500ms", *extra),
        )
    assert code == exit_code, stderr
    # Even with --quiet the warm-up that ran out is said, and nothing else: the plot of a run without a
    # single success is drawn without a warning.
    assert stderr.startswith("warm-up ran out: none of 1 request(s) succeeded") and stderr.count("\n") == 1
    assert len(server.requests) == 61, "the warm-up request, then the 60 measured"
    assert plot_path.read_bytes().startswith(b"\x89PNG")
    headline = json.loads(stdout.splitlines()[0])
    assert headline["completed"] == 0 and headline["timeouts"] == 60 and headline["achieved_rate"] == 0
    assert headline["latency_ms"]["p99"] >= 1000 and "p99" in headline["above_timeout"]
    assert "no request of 60 was answered (60 timed out after 1s)" in stdout
    assert json.loads(report_path.read_text())["verdict"]["outcome"] == "inconclusive"


async def test_cli_fast_500s_exit_1_naming_the_errors() -> None:
    async with RawServer(lambda request: SERVER_ERROR) as server:
        code, stdout, _ = await cli(
            server, *("--rate", "20", "--duration", "1s", "--slo", "p99<=200ms", "--warmup", "0")
        )
    assert code == EXIT_SLO_FAILED
    assert "SLO failed: no request of 20 succeeded (20 http_500)" in stdout


async def test_cli_report_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    async with RawServer(lambda request: ok()) as server:
        code, stdout, stderr = await cli(
            server,
            *("--rate", "20", "--duration", "500ms", "--slo", "p99<=500ms"),
            *("--json", str(blocker / "report.json"), "--plot", str(blocker / "plot.png")),
        )
    assert code == EXIT_PASSED, stderr
    assert "SLO passed" in stdout
    assert "warning: cannot write the report" in stderr and "warning: cannot write the plot" in stderr
