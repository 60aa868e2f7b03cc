"""docker-compose.yaml and the Dockerfile declare the topology the end-to-end tests run natively.

Docker cannot run here, so the compose stack itself is not started by the tests; instead this module holds
the file to what ``include/local_airflow.py`` runs (services, commands, executor, database and broker
settings, the ``kubernetes_default`` connection), so that the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_airflow import COMPONENTS, COMPOSE_SERVICES, celery_settings, kubernetes_connection
from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
# Inside the compose stack: service names as hosts; the Airflow containers share local-knative's localhost.
IN_COMPOSE = {
    "database_url": "postgresql+psycopg2://airflow:airflow@postgres:5432/airflow",
    "broker_url": "redis://redis:6379/0",
    "api_url": "http://localhost:8080",
}
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_services_are_the_native_topology(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == set(COMPOSE_SERVICES)
    # Every Airflow component the native stack runs is a compose service running the same command.
    assert sorted(AIRFLOW_SERVICES.values()) == sorted([*COMPONENTS, "celery worker"])
    for service, command in AIRFLOW_SERVICES.items():
        assert compose["services"][service]["command"] == command, service
    assert "airflow db migrate" in compose["services"]["airflow-init"]["command"][-1]


def test_every_airflow_service_has_the_settings_of_the_native_stack(compose: dict[str, Any]) -> None:
    expected = celery_settings(**IN_COMPOSE)
    connection = kubernetes_connection(Path("/opt/local-knative/kubeconfig"), "http://127.0.0.1:8081")
    for service in ("airflow-init", *AIRFLOW_SERVICES):
        spec = compose["services"][service]
        env = {key: str(value) for key, value in spec["environment"].items()}
        assert {key: env.get(key) for key in expected} == expected, service
        assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True", service
        assert json.loads(env["AIRFLOW_CONN_KUBERNETES_DEFAULT"]) == connection, service
        assert spec["network_mode"] == "service:local-knative", service
        assert {"./dags:/opt/airflow/dags", "./plugins:/opt/airflow/plugins"} <= set(spec["volumes"]), service
        depends = spec["depends_on"]
        for backing in ("postgres", "redis", "local-knative"):
            assert depends[backing]["condition"] == "service_healthy", (service, backing)
        if service != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully", service
            assert spec["healthcheck"]["test"], service
        assert spec["build"]["target"] == "airflow", service


def test_local_knative_serves_where_the_connection_points(compose: dict[str, Any]) -> None:
    spec = compose["services"]["local-knative"]
    command = spec["command"]
    assert command[:4] == ["python", "-m", "local_knative", "serve"]
    assert command[command.index("--data-dir") + 1] == "/opt/local-knative"
    assert command[command.index("--ingress-port") + 1] == "8081"
    assert command[command.index("--api-port") + 1] in spec["healthcheck"]["test"][-1]
    assert spec["build"]["target"] == "local-knative"
    assert "8080:8080" in spec["ports"]  # the api-server shares this network namespace


def test_dockerfile_builds_the_pinned_airflow_with_the_wheel() -> None:
    text = DOCKERFILE.read_text()
    pinned = re.search(r"^apache-airflow==(\S+)", (REPO_ROOT / "requirements.txt").read_text(), re.M)
    assert pinned is not None
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{pinned.group(1)}" in text
    assert f"ARG AIRFLOW_VERSION={pinned.group(1)}" in text
    targets = re.findall(r"^FROM \S+ AS (\S+)", text, re.M)
    assert targets == ["wheel", "airflow", "local-knative"]
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE.read_text().split("services:", 1)[1]
    # What the images copy exists, and .dockerignore does not drop it.
    ignored = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()}
    for source in re.findall(r"^COPY (?:--chown=\S+ )?(?!--from)(.+) \S+$", text, re.M):
        for name in source.split():
            assert (REPO_ROOT / name).exists(), name
            assert name not in ignored, name
