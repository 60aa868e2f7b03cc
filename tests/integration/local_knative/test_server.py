"""``python -m local_knative serve``: announced endpoints, kubeconfig, clean SIGTERM, clear start failures."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from local_knative.testing import LocalKnative, LocalKnativeError

pytestmark = pytest.mark.integration

SERVE = [sys.executable, "-m", "local_knative", "serve"]

# Each case: extra ``serve`` flags ({tmp} = the test's temp dir, {busy} = a port something listens on),
# files to create under {tmp} first, and a fragment the one-line error must contain.
BAD_INPUT_CASES = {
    "catalog missing": (["--images", "{tmp}/missing.yaml"], {}, "missing.yaml cannot be read"),
    "catalog not YAML": (["--images", "{tmp}/c.yaml"], {"c.yaml": "images: [unclosed\n"}, "not valid YAML"),
    "catalog without images mapping": (
        ["--images", "{tmp}/c.yaml"],
        {"c.yaml": "images: [a, b]\n"},
        "needs a top-level mapping",
    ),
    "catalog entry without entrypoint list": (
        ["--images", "{tmp}/c.yaml"],
        {"c.yaml": "images:\n  'model:*': {entrypoint: python}\n"},
        "must be a mapping with an 'entrypoint' list",
    ),
    "catalog is a directory": (["--images", "{tmp}"], {}, "cannot be read"),
    "zero stable window": (["--stable-window", "0"], {}, "--stable-window must be a positive number"),
    "negative grace": (["--scale-to-zero-grace", "-5"], {}, "--scale-to-zero-grace must be a positive"),
    "infinite progress deadline": (
        ["--progress-deadline", "inf"],
        {},
        "--progress-deadline must be a finite",
    ),
    "NaN autoscaler tick": (["--autoscaler-tick", "nan"], {}, "--autoscaler-tick must be a finite"),
    "tick not a number": (["--autoscaler-tick", "soon"], {}, "argument --autoscaler-tick"),
    "zero bookmark interval": (["--bookmark-interval", "0"], {}, "'0' is not a duration"),
    "port out of range": (["--api-port", "65536"], {}, "'65536' is not a port number"),
    "negative port": (["--ingress-port", "-1"], {}, "'-1' is not a port number"),
    "API port in use": (["--api-port", "{busy}"], {}, "--api-port {busy}: cannot listen"),
    "ingress port in use": (["--ingress-port", "{busy}"], {}, "Address already in use"),
    "same API and ingress port": (
        ["--api-port", "{busy}", "--ingress-port", "{busy}"],
        {},
        "--api-port and --ingress-port are both {busy}",
    ),
    "domain with capitals": (["--domain", "Models.Test"], {}, "'Models.Test' is not a DNS domain"),
    "domain with empty label": (["--domain", "models..test"], {}, "is not a DNS domain"),
    "domain with underscore": (["--domain", "my_models.test"], {}, "is not a DNS domain"),
    "empty domain": (["--domain", ""], {}, "is not a DNS domain"),
    "data dir is a file": (["--data-dir", "{tmp}/file"], {"file": "x"}, "file is not a directory"),
    "data dir under a file": (
        ["--data-dir", "{tmp}/file/data"],
        {"file": "x"},
        "is not a writable directory",
    ),
    # sysfs refuses mkdir to every user, root included, so this holds wherever the tests run.
    "data dir not writable": (["--data-dir", "/sys/local-knative-test"], {}, "is not a writable directory"),
    "log level unknown": (["--log-level", "chatty"], {}, "argument --log-level: invalid choice"),
}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """Yield a loopback port that a listening socket holds."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _tree(root: Path) -> dict[str, tuple[bool, int, float]]:
    return {
        str(path): (path.is_dir(), path.lstat().st_size, path.lstat().st_mtime) for path in root.rglob("*")
    }


@pytest.mark.parametrize(("flags", "files", "fragment"), BAD_INPUT_CASES.values(), ids=BAD_INPUT_CASES.keys())
def test_bad_input_is_one_clear_line_exit_2_and_changes_nothing(
    tmp_path: Path, busy_port: int, flags: list[str], files: dict[str, str], fragment: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    fill = {"tmp": tmp_path, "busy": busy_port}
    flags = [flag.format(**fill) for flag in flags]
    # --log-level belongs to the program, so it goes before ``serve``.
    command = SERVE[:3] + flags + SERVE[3:] if flags[0] == "--log-level" else SERVE + flags
    if "--data-dir" not in flags:
        command += ["--data-dir", str(tmp_path / "data")]
    before = _tree(tmp_path)
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m local_knative") and ": error: " in lines[0]
    assert fragment.format(**fill) in lines[0]
    assert _tree(tmp_path) == before, "bad input must not change the disk"


def test_endpoints_and_kubeconfig_describe_a_working_server(tmp_path: Path) -> None:
    server = LocalKnative.start(tmp_path / "data", extra_args=["--domain", "models.test"])
    try:
        endpoints = json.loads((server.data_dir / "endpoints.json").read_text())
        assert set(endpoints) == {"api", "ingress", "metrics", "domain", "kubeconfig", "data_dir", "pid"}
        assert endpoints["pid"] == server.pid and endpoints["domain"] == server.domain == "models.test"
        assert endpoints["metrics"] == endpoints["ingress"] + "/metrics"
        assert endpoints["data_dir"] == str(server.data_dir)
        assert (server.data_dir / "state.db").exists()
        config = yaml.safe_load(server.kubeconfig.read_text())
        assert config["current-context"] == "local-knative"
        context = config["contexts"][0]["context"]
        assert context["namespace"] == "default"
        assert config["clusters"][0]["cluster"]["server"] == server.api_url
        assert config["users"][0]["user"]["token"]
        request = urllib.request.Request(
            server.api_url + "/version", headers={"Authorization": "Bearer anything"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["major"] == "1"
    finally:
        code = server.stop()
    assert code == 0
    assert not (tmp_path / "data" / "endpoints.json").exists()


def test_a_start_failure_reports_the_server_output(tmp_path: Path) -> None:
    with pytest.raises(LocalKnativeError) as error:
        LocalKnative.start(tmp_path / "data", extra_args=["--api-port", "not-a-port"])
    assert "exited with code 2" in str(error.value) and "--api-port" in str(error.value)


def test_sigterm_ends_open_watches_and_exits_quickly(tmp_path: Path) -> None:
    server = LocalKnative.start(tmp_path / "data")
    address = urllib.parse.urlsplit(server.api_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", "/api/v1/namespaces?watch=true")
        response = connection.getresponse()
        assert response.status == 200 and b'"ADDED"' in response.readline()
        began = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - began < 3, "an open watch must not hold the shutdown up"
    finally:
        connection.close()
