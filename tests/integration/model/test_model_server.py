"""The model server as a real process over real HTTP: KServe v1 answers, errors, each fault knob measured."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import joblib
import pytest
from sklearn import datasets

from model.testing import ModelServer

StartServer = Callable[..., ModelServer]
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


async def timed_predict(session: aiohttp.ClientSession, url: str) -> tuple[int, float, dict]:
    """POST one prediction; return status, seconds taken and the JSON body."""
    started = time.perf_counter()
    async with session.post(url, json={"instances": [IRIS_ROW]}) as response:
        body = await response.json()
        return response.status, time.perf_counter() - started, body


async def predict_many(
    server: ModelServer, count: int, concurrency: int = 20
) -> list[tuple[int, float, dict]]:
    """Send ``count`` predictions, at most ``concurrency`` at a time."""
    url, gate = f"{server.url}/v1/models/model:predict", asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> tuple[int, float, dict]:
            async with gate:
                return await timed_predict(session, url)

        return await asyncio.gather(*(one() for _ in range(count)))


@pytest.fixture(scope="module")
def server(model_artifact: Path) -> Iterator[ModelServer]:
    """Share one fault-free server between the tests that only read from it."""
    shared = ModelServer({"MODEL_URI": str(model_artifact), "K_REVISION": "iris-00001"}).wait_listening()
    yield shared
    assert shared.stop() == 0, f"SIGTERM must stop the server cleanly:\n{shared.output}"


async def test_predictions_equal_the_trained_models(server: ModelServer, model_artifact: Path) -> None:
    iris = datasets.load_iris()
    expected = joblib.load(model_artifact / "model.joblib").predict(iris.data).tolist()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/v1/models/model:predict", json={"instances": iris.data.tolist()}
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["X-Model-Version"] == "v1"
        assert response.headers["X-Revision"] == "iris-00001"
        assert (await response.json()) == {"predictions": expected}
    assert sorted(set(expected)) == [0, 1, 2]  # the comparison covers every class


async def test_readiness_health_and_listing(server: ModelServer) -> None:
    async with aiohttp.ClientSession() as session:
        for path, body in [
            ("/v1/models/model", {"name": "model", "ready": True}),
            ("/", {"status": "alive"}),
            ("/v1/models", {"models": ["model"]}),
        ]:
            async with session.get(server.url + path) as response:
                assert (response.status, await response.json()) == (200, body), path
                assert response.headers["X-Model-Version"] == "v1"


async def test_unknown_model_is_404_and_wrong_method_405(server: ModelServer) -> None:
    async with aiohttp.ClientSession() as session:
        for method, path in [("GET", "/v1/models/other"), ("POST", "/v1/models/other:predict")]:
            async with session.request(method, server.url + path, json={"instances": [IRIS_ROW]}) as response:
                assert response.status == 404
                assert (await response.json())["error"] == (
                    "model 'other' not found: this server serves 'model' (GET /v1/models lists it)"
                )
        async with session.get(f"{server.url}/v1/models/model:predict") as response:
            assert response.status == 405


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "request body is not valid JSON"),
        (b'{"instances": []}', "'instances' must be a non-empty list of rows"),
        (b'{"instances": [[1, 2, 3]]}', "instances[0] must be a list of 4 numbers (one per feature)"),
        (b'{"instances": [[1, 2, 3, "x"]]}', 'instances[0][3] = "x" is not a finite number'),
    ],
)
async def test_bad_input_is_400_with_a_clear_message(server: ModelServer, body: bytes, message: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/v1/models/model:predict", data=body) as response,
    ):
        assert response.status == 400
        assert message in (await response.json())["error"]


async def test_model_name_comes_from_k_service(start_model_server: StartServer) -> None:
    server = start_model_server({"K_SERVICE": "iris"}).wait_listening()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/v1/models/iris") as response:
            assert (await response.json()) == {"name": "iris", "ready": True}
            assert "X-Revision" not in response.headers  # no K_REVISION, no header
        async with session.post(
            f"{server.url}/v1/models/iris:predict", json={"instances": [IRIS_ROW]}
        ) as response:
            assert (await response.json()) == {"predictions": [0]}


def test_sigterm_stops_the_server_cleanly(start_model_server: StartServer) -> None:
    server = start_model_server().wait_listening()
    assert server.stop() == 0


async def test_constant_latency_is_added_to_every_prediction(start_model_server: StartServer) -> None:
    baseline = start_model_server().wait_listening()
    slow = start_model_server({"FAULT_LATENCY_MS": "150"}).wait_listening()
    baseline_latencies = [seconds for _, seconds, _ in await predict_many(baseline, 20, concurrency=5)]
    results = await predict_many(slow, 40, concurrency=20)

    assert {status for status, _, _ in results} == {200}
    latencies = [seconds for _, seconds, _ in results]
    assert min(latencies) >= 0.150
    added = statistics.median(latencies) - statistics.median(baseline_latencies)
    assert added == pytest.approx(0.150, abs=0.05)
    async with (
        aiohttp.ClientSession() as session
    ):  # readiness is not slowed down: the canary still becomes Ready
        started = time.perf_counter()
        async with session.get(f"{slow.url}/v1/models/model") as response:
            assert response.status == 200
        assert time.perf_counter() - started < 0.1


async def test_uniform_latency_spreads_over_zero_to_twice_the_mean(start_model_server: StartServer) -> None:
    server = start_model_server({"FAULT_LATENCY_MS": "100", "FAULT_LATENCY_DIST": "uniform"}).wait_listening()
    latencies = [seconds for _, seconds, _ in await predict_many(server, 200)]

    # Bounds: 3 standard errors below the mean; above it, room for a busy machine's scheduling delay.
    assert 0.088 <= statistics.fmean(latencies) <= 0.130
    assert sum(seconds < 0.050 for seconds in latencies) > 30  # about a quarter land in each 50 ms band
    assert sum(seconds > 0.150 for seconds in latencies) > 30
    assert statistics.median(latencies) < 0.200 + 0.05  # nothing beyond 2 x mean, bar scheduling noise


async def test_exponential_latency_has_a_long_tail(start_model_server: StartServer) -> None:
    server = start_model_server(
        {"FAULT_LATENCY_MS": "40", "FAULT_LATENCY_DIST": "exponential"}
    ).wait_listening()
    latencies = sorted(seconds for _, seconds, _ in await predict_many(server, 300))

    # Bounds: 3 standard errors below the mean; above it, room for a busy machine's scheduling delay
    # (the shape assertions below are what tell exponential from constant or uniform).
    assert 0.033 <= statistics.fmean(latencies) <= 0.090
    assert statistics.median(latencies) < statistics.fmean(latencies)  # skewed right, unlike uniform
    assert latencies[-3] > 0.120  # p99 of an exponential is 4.6 x its mean


async def test_error_rate_fails_that_share_of_predictions(start_model_server: StartServer) -> None:
    server = start_model_server({"FAULT_ERROR_RATE": "0.3"}).wait_listening()
    results = await predict_many(server, 600)
    failed = [body for status, _, body in results if status == 500]
    succeeded = [body for status, _, body in results if status == 200]

    assert len(failed) + len(succeeded) == 600
    assert len(failed) / 600 == pytest.approx(0.3, abs=0.08)  # 4+ standard deviations of a binomial
    assert failed[0] == {"error": "injected fault: FAULT_ERROR_RATE=0.3"}
    assert all(body == {"predictions": [0]} for body in succeeded)
    async with aiohttp.ClientSession() as session:  # probes stay truthful
        statuses = [(await session.get(f"{server.url}/v1/models/model")).status for _ in range(50)]
    assert set(statuses) == {200}


@pytest.mark.parametrize(("rate", "expected_status"), [("1", 500), ("0", 200)])
async def test_error_rate_bounds_are_exact(
    start_model_server: StartServer, rate: str, expected_status: int
) -> None:
    server = start_model_server({"FAULT_ERROR_RATE": rate}).wait_listening()
    assert {status for status, _, _ in await predict_many(server, 100)} == {expected_status}


def test_crash_at_start_exits_non_zero_without_listening(start_model_server: StartServer) -> None:
    server = start_model_server({"FAULT_CRASH_AT_START": "1"})
    assert server.wait_exit() == 3
    assert "FAULT_CRASH_AT_START is set: exiting with status 3" in server.output
    assert server.port is None and "serving model" not in server.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_slow_start_delays_listening_after_the_model_loads(start_model_server: StartServer) -> None:
    port = free_port()
    server = start_model_server({"FAULT_SLOW_START_S": "1.5", "PORT": str(port)})
    refused_while_sleeping = 0
    while server.port is None and server.process.poll() is None:
        if any("loaded model" in line for _, line in server.lines) and server.port is None:
            with socket.socket() as client:
                refused_while_sleeping += client.connect_ex(("127.0.0.1", port)) != 0
        time.sleep(0.05)
    server.wait_listening()

    assert server.port == port
    assert server.seconds_until("serving model") - server.seconds_until("loaded model") >= 1.5
    assert refused_while_sleeping >= 10  # polled every 50 ms for 1.5 s: nothing listened before the banner


@pytest.mark.parametrize(
    ("env", "status", "message"),
    [
        ({"FAULT_LATENCY_MS": "slow"}, 2, "error: FAULT_LATENCY_MS='slow' is not a number"),
        (
            {"FAULT_LATENCY_DIST": "gaussian"},
            2,
            "error: FAULT_LATENCY_DIST='gaussian' is not a known distribution",
        ),
        ({"FAULT_ERROR_RATE": "2"}, 2, "error: FAULT_ERROR_RATE='2' is out of range"),
        (
            {"FAULT_CRASH_AT_START": "sometimes"},
            2,
            "error: FAULT_CRASH_AT_START='sometimes' is not a boolean",
        ),
        ({"FAULT_SLOW_START_S": "-3"}, 2, "error: FAULT_SLOW_START_S='-3' is out of range"),
        ({"PORT": "http"}, 2, "error: PORT='http' is not a port number"),
        ({"MODEL_URI": ""}, 2, "error: MODEL_URI is not set: point it at an artifact directory"),
        ({"MODEL_URI": "/nonexistent/v1"}, 1, "error: model artifact '/nonexistent/v1' is not a directory"),
        ({"MODEL_URI": "s3://bucket/v1"}, 1, "error: unsupported MODEL_URI scheme"),
    ],
)
def test_bad_configuration_fails_at_start_with_a_clear_message(
    start_model_server: StartServer, env: dict[str, str], status: int, message: str
) -> None:
    server = start_model_server(env)
    assert server.wait_exit() == status
    assert message in server.output
    assert "serving model" not in server.output


def test_metadata_version_is_what_the_header_reports(start_model_server: StartServer, tmp_path: Path) -> None:
    from model.train import train

    artifact = train(tmp_path, "2026-11-29.1", seed=4, dataset="breast_cancer")
    server = start_model_server({"MODEL_URI": str(artifact)}).wait_listening()
    cancer = datasets.load_breast_cancer()
    request = json.dumps({"instances": cancer.data[:50].tolist()}).encode()

    async def call() -> tuple[str, dict]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{server.url}/v1/models/model:predict", data=request) as response,
        ):
            return response.headers["X-Model-Version"], await response.json()

    version, body = asyncio.run(call())
    assert version == "2026-11-29.1"
    assert body["predictions"] == joblib.load(artifact / "model.joblib").predict(cancer.data[:50]).tolist()
