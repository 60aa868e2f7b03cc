"""The Rollouts page mounted in the real Airflow API app, reading a real local_knative: login, HTML, JSON."""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Iterator
from unittest import mock
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import MANAGED_BY_LABEL, RevisionSpec, render_service

pytestmark = pytest.mark.integration

PAGE = "/knative-rollout/"
JSON = "/knative-rollout/api/rollouts"


@pytest.fixture(scope="module")
def api(airflow_db: None) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """Return a client of Airflow's API server app (plugins mounted as in production) and a login header."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    with pytest.MonkeyPatch.context() as patch:
        # A signing key of the length PyJWT asks for, so the tokens raise no key-length warning.
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
        app = create_app("core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="ADMIN"))
        with TestClient(app) as client:
            yield client, {"Authorization": f"Bearer {token}"}


def test_the_plugin_registers_the_page_and_its_menu_entry(api) -> None:
    client, login = api
    plugins = client.get("/api/v2/plugins", headers=login).json()["plugins"]
    ours = next(plugin for plugin in plugins if plugin["name"] == "knative_rollout")
    assert [(app["name"], app["url_prefix"]) for app in ours["fastapi_apps"]] == [
        ("Knative rollouts", "/knative-rollout")
    ]
    assert [(view["name"], view["href"]) for view in ours["external_views"]] == [("Rollouts", PAGE)]


def test_the_page_needs_an_airflow_login(api) -> None:
    client, _ = api
    assert client.get(PAGE).status_code == 401
    assert client.get(JSON, headers={"Authorization": "Bearer not-a-token"}).status_code == 403


def test_a_canary_shows_its_state_traffic_and_history(api, run_dag, kube_namespace, monkeypatch) -> None:
    client, login = api
    target = {"service_name": "echo", "namespace": kube_namespace, "wait_timeout": 90}
    image = "registry.example.com/knative-rollout/echo:{}"
    deploy = "KnativeDeployRevisionOperator"
    result = run_dag(
        f"page_{kube_namespace}".replace("-", "_"),
        [
            ("v1", deploy, {**target, "image": image.format("v1")}),
            (
                "v2",
                "KnativeDeployRevisionOperator",
                {**target, "image": image.format("v2"), "traffic_percent": 10},
            ),
        ],
    )
    assert result.state == "success", result.task_states
    v1, v2 = result.results["v1"]["revision"], result.results["v2"]["revision"]
    # A Service this provider does not manage is left off the page.
    plain = render_service("plain", kube_namespace, RevisionSpec.build(image=image.format("v1")), {})
    del plain["metadata"]["labels"][MANAGED_BY_LABEL]
    assert KnativeServingHook().create_service(plain) is not None

    response = client.get(JSON, params={"namespace": kube_namespace}, headers=login)
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["connection"], data["namespaces"], data["namespaces_from"], data["errors"]) == (
        "kubernetes_default",
        [kube_namespace],
        "query",
        [],
    )
    [echo] = data["services"]
    domain = f"{kube_namespace}.example.com"
    assert {key: echo[key] for key in ("name", "url", "phase", "step", "stable", "candidate")} == {
        "name": "echo",
        "url": f"http://echo.{domain}",
        "phase": "Canary",
        "step": 10,
        "stable": v1,
        "candidate": v2,
    }
    assert sorted(echo["traffic"], key=lambda target: -target["percent"]) == [
        {"revision": v1, "percent": 90, "tag": "stable", "url": f"http://stable-echo.{domain}"},
        {"revision": v2, "percent": 10, "tag": "candidate", "url": f"http://candidate-echo.{domain}"},
    ]
    assert echo["history"][0]["action"] == "CandidateDeployed"
    assert [entry["action"] for entry in echo["history"]][-1] == "Deploying"
    # Who wrote each entry, linked to that DAG run and task try in the Airflow UI.
    dag_id = f"page_{kube_namespace}".replace("-", "_")
    writer = echo["history"][0]["by"]
    assert writer.startswith(f"{dag_id}/manual__") and writer.endswith("/v2/1")
    run_id = writer.split("/")[1]
    assert echo["history"][0]["links"] == {
        "run": f"/dags/{dag_id}/runs/{quote(run_id, safe='')}",
        "task": f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/v2?try_number=1",
    }
    # These deploys ran outside any rollout: no rollout id, and the lock is free.
    assert (echo["rollout_id"], echo["active"]) == (None, True)
    assert echo["lock"] == {"holder": None, "since": None, "expires": None, "expired": False}
    assert [(item["name"], item["ready"], item["image"]) for item in echo["revisions"]] == [
        (v2, "True", image.format("v2")),
        (v1, "True", image.format("v1")),
    ]

    # The UI embeds the page in an iframe, which sends the session cookie rather than a header.
    client.cookies.set("_token", login["Authorization"].removeprefix("Bearer "))
    try:
        page = client.get(PAGE, params={"namespace": kube_namespace})
    finally:
        client.cookies.clear()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for shown in (f"{kube_namespace}/echo", "Canary", v1, v2, f"http://candidate-echo.{domain}", "10%"):
        assert shown in page.text
    for shown in ("lock free", 'class="run-link"', "Roll back", "Roll out a model", writer):
        assert html.escape(shown, quote=False) in page.text
    assert f"{kube_namespace}/plain" not in page.text

    # Without a namespace, the guardrails' allowed namespaces are shown.
    monkeypatch.setenv(
        "AIRFLOW_VAR_KNATIVE_ROLLOUT_GUARDRAILS", json.dumps({"allowed_namespaces": [kube_namespace]})
    )
    data = client.get(JSON, headers=login).json()
    assert (data["namespaces"], data["namespaces_from"]) == ([kube_namespace], "guardrails")
    assert [service["name"] for service in data["services"]] == ["echo"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"namespace": "Not_A_Namespace"}, "Not_A_Namespace"),
        ({"conn_id": "no_such_connection"}, "create a 'kubernetes' connection"),
    ],
)
def test_bad_input_is_a_400_that_says_what_to_fix(api, k8s_connection, params, message) -> None:
    client, login = api
    response = client.get(JSON, params=params, headers=login)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    page = client.get(PAGE, params=params, headers=login)
    assert page.status_code == 400
    assert html.escape(message) in page.text


def test_a_gke_cluster_that_cannot_be_reached_is_reported_on_the_page(api, monkeypatch) -> None:
    client, login = api
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        '{"conn_type": "google_cloud_platform", "extra": {"project": "p"}}',
    )
    gke = {"cluster_name": "ml", "location": "europe-west1", "project_id": "p", "namespace": "models"}
    # Mocked: the GKE cluster lookup (Cluster Manager API); there is no Google account here.
    with mock.patch(
        "airflow.providers.google.cloud.hooks.kubernetes_engine.GKEHook.get_cluster",
        side_effect=RuntimeError("404 cluster ml not found"),
    ) as get_cluster:
        response = client.get(JSON, params=gke, headers=login)
    assert response.status_code == 200, response.text
    get_cluster.assert_called_once_with(name="ml", project_id="p")
    data = response.json()
    assert data["connection"] == "GKE cluster ml (p, europe-west1)"
    assert data["services"] == []
    assert data["errors"] == [{"namespace": "models", "error": "RuntimeError: 404 cluster ml not found"}]


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({}, {"service_name": "iris", "namespace": "default"}, "needs the header X-Rollouts-Action"),
        ({"X-Rollouts-Action": "1"}, {"service_name": "Bad_Name", "namespace": "default"}, "Bad_Name"),
        ({"X-Rollouts-Action": "1"}, {"service_name": "iris", "namespace": "-no-"}, "-no-"),
    ],
)
def test_actions_refuse_requests_without_the_header_or_with_a_bad_service(
    api, headers, body, message
) -> None:
    client, login = api
    for action in ("rollback", "rollout"):
        response = client.post(f"{PAGE}api/actions/{action}", json=body, headers={**login, **headers})
        assert response.status_code == 400, response.text
        assert message in response.json()["detail"]


def test_an_anonymous_browser_is_sent_to_the_login_page(api) -> None:
    client, _ = api
    response = client.get(PAGE, headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert "/login" in response.headers["location"]
    assert quote("/knative-rollout/", safe="") in response.headers["location"]
