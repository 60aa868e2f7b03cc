"""The load-test CLI sends prediction requests to the real example model server and judges its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.testing import ModelServer
from model.train import train

INSTANCES = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("loadtest-model"), "v1", seed=0)


@pytest.fixture
def payloads(tmp_path: Path) -> Path:
    path = tmp_path / "payloads.jsonl"
    path.write_text("".join(json.dumps({"instances": [row]}) + "\n" for row in INSTANCES))
    return path


@pytest.fixture(params=[{}, {"FAULT_ERROR_RATE": "0.3"}], ids=["healthy", "failing-30%"])
def model_server(
    request: pytest.FixtureRequest, artifact: Path
) -> Iterator[tuple[ModelServer, dict[str, str]]]:
    server = ModelServer({"MODEL_URI": str(artifact), **request.param}).wait_listening()
    try:
        yield server, request.param
    finally:
        server.stop()


def test_prediction_load_is_checked_and_judged(
    model_server: tuple[ModelServer, dict[str, str]], payloads: Path, tmp_path: Path
) -> None:
    server, faults = model_server
    report_path = tmp_path / "report.json"
    url = f"{server.url}/v1/models/model:predict"
    command = [
        sys.executable,
        "-m",
        "knative_rollout.loadtest",
        "--url",
        url,
        "--rate",
        "100",
        "--duration",
        "2s",
    ]
    command += ["--payloads", str(payloads), "--expect-json-field", "predictions", "--quiet"]
    command += ["--slo", "error_rate<=0.01,p99<=500ms", "--json", str(report_path)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(report_path.read_text())
    assert report["requests"] == report["completed"] == 200
    if not faults:
        assert done.returncode == 0, done.stdout + done.stderr
        assert report["errors"] == {} and report["status_codes"] == {"200": 200}
    else:
        assert done.returncode == 1
        # The server fails 30% of predictions with HTTP 500; 200 draws put the count well inside 30-90.
        assert set(report["errors"]) == {"http_500"} and 30 <= report["errors"]["http_500"] <= 90
        assert [item["metric"] for item in report["verdict"]["failed"]] == ["error_rate"]
