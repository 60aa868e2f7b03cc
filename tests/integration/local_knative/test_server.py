"""``python -m local_knative serve``: announced endpoints, kubeconfig, clean SIGTERM, clear start failures."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from local_knative.testing import LocalKnative, LocalKnativeError

pytestmark = pytest.mark.integration


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
