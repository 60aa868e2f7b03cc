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


FAILURES_DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.operators import KnativeCanaryRolloutOperator, KnativeDeployRevisionOperator
from knative_rollout.task_groups import progressive_rollout

ECHO = "registry.example.com/knative-rollout/echo"


def target(name):
    return dict(service_name=name, namespace="{namespace}", wait_timeout=90)


def stable(name):
    return KnativeDeployRevisionOperator(task_id=name + "_stable", image=ECHO + ":v1", **target(name))


ANALYSIS = {{
    "scrape_urls": ["{metrics_url}"], "window": "4s", "interval": "1s",
    "slo": {{"max_p99_latency": "200ms", "min_requests": 5}},
    "load": {{"rate": 20, "path": "/", "ingress_address": "{ingress}"}},
}}


with DAG(
    "{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), default_args={{"retries": 0}}
) as dag:
    # Crashes at start. DB_PASSWORD's value is also in its output: Airflow deems the name sensitive.
    stable("crash") >> progressive_rollout(
        group_id="crash_rollout", image=ECHO + ":v2", steps=(50,), **target("crash"),
        env={{"ECHO_FAIL_AT_START": "1", "DB_PASSWORD": "failing at start"}},
    )
    # Too slow for the load-test gate.
    stable("slow") >> progressive_rollout(
        group_id="slow_rollout", image=ECHO + ":v2", steps=(50,), env={{"ECHO_DELAY_MS": "150"}},
        load_test=dict(rate=10, duration="2s", timeout="2s", slo="p50<=100ms,p99<=1s"), **target("slow"),
    )
    # Too slow for the metric analysis at its first step: the single-task canary, and the group's steps.
    stable("judged") >> KnativeCanaryRolloutOperator(
        task_id="canary", image=ECHO + ":v2", env={{"ECHO_DELAY_MS": "300"}}, steps=[50], **target("judged"),
        analysis=ANALYSIS,
    )
    stable("stepped") >> progressive_rollout(
        group_id="stepped_rollout", image=ECHO + ":v2", steps=(50,), env={{"ECHO_DELAY_MS": "300"}},
        analysis=ANALYSIS, **target("stepped"),
    )
"""


def test_failed_candidates_show_their_conditions_logs_reports_and_plots(
    api, run_dag, local_knative, kube_namespace, tmp_path, monkeypatch, caplog
) -> None:
    import importlib.util
    import logging
    import re

    from knative_rollout.diagnostics import log_candidate_diagnostics

    client, login = api
    extra = {"kube_config_path": str(local_knative.kubeconfig), "ingress_address": local_knative.ingress_url}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes", "extra": extra})
    )
    dag_id = f"failures_{kube_namespace}".replace("-", "_")
    # run_dag's bundle folder: dag.test() runs only a DAG found in a configured bundle.
    path = tmp_path / "dags" / f"{dag_id}.py"
    path.write_text(
        FAILURES_DAG.format(
            namespace=kube_namespace,
            dag_id=dag_id,
            metrics_url=local_knative.metrics_url,
            ingress=local_knative.ingress_url,
        )
    )
    spec = importlib.util.spec_from_file_location(dag_id, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.dag.test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    failed = (
        "crash_rollout.deploy_candidate",
        "slow_rollout.load_test",
        "canary",
        "stepped_rollout.analysis_50",
    )
    assert {task: states[task] for task in failed} == dict.fromkeys(failed, "failed"), states

    response = client.get(JSON, params={"namespace": kube_namespace}, headers=login)
    assert response.status_code == 200, response.text
    views = {view["name"]: view for view in response.json()["services"]}

    # The crashed candidate: its condition message and its log line, with the password's value masked.
    crash = views["crash"]
    assert crash["phase"] == "Failed" and crash["diagnostics"]["revision"] == crash["rollout_revision"]
    ready = crash["diagnostics"]["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "ExitCode1")
    assert "echo: *** because ECHO_FAIL_AT_START is set" in ready["message"]
    [pod] = crash["diagnostics"]["pods"]
    assert (pod["container"], pod["error"]) == ("user-container", "")
    assert pod["state"].startswith("Failed, exited with code 1")
    assert pod["lines"][-1] == "echo: *** because ECHO_FAIL_AT_START is set"
    assert "failing at start" not in response.text

    # The candidate the load test rejected: the gate's numbers for its plot, its conditions.
    slow = views["slow"]
    assert slow["phase"] == "RolledBack" and slow["diagnostics"]["revision"] == slow["rollout_revision"]
    assert slow["diagnostics"]["conditions"][0]["text"] == "Ready=True"
    gate = slow["load_test"]
    assert (gate["task"], gate["passed"]) == ("slow_rollout.load_test", False)
    assert gate["latency_ms"]["p50"] >= 150
    assert [check["threshold"] for check in gate["checks"]] == ["p50<=100ms", "p99<=1000ms"]

    # The candidate the analysis rejected: each step's verdict and the newest report per metric.
    judged = views["judged"]
    assert judged["phase"] == "RolledBack" and judged["diagnostics"]["revision"] == judged["rollout_revision"]
    analysis = judged["analysis"]
    assert analysis["task"] == "canary"
    assert [(step["label"], step["verdict"]) for step in analysis["steps"]] == [("50%", "fail")]
    latest = analysis["latest"]
    assert (latest["verdict"], latest["canary"]) == ("fail", judged["rollout_revision"])
    assert {check["check"]: check["verdict"] for check in latest["slo"]}["p99_latency"] == "fail"
    assert latest["totals"][judged["rollout_revision"]]["p99_latency"] >= 0.2
    assert latest["metrics"], latest

    # The group's analysis steps: one report per step task, each with the numbers of its plot.
    stepped = views["stepped"]
    assert stepped["phase"] == "RolledBack"
    [step] = stepped["analysis"]["steps"]
    assert (step["label"], step["verdict"]) == ("50%", "fail")
    assert set(step["totals"]) == {stepped["rollout_revision"], stepped["stable"]}
    assert stepped["analysis"]["task"] == "stepped_rollout.analysis_50"

    # The HTML: the diagnostics, the masked log, and both reports with their plots inline.
    page = client.get(PAGE, params={"namespace": kube_namespace}, headers=login).text
    cards = dict(re.findall(r'<section class="card" data-service="([^"]+)">(.*?)</section>', page, re.S))
    assert f"Why {crash['rollout_revision']} failed" in cards["crash"]
    assert (
        '<pre class="log">' in cards["crash"]
        and "echo: *** because ECHO_FAIL_AT_START is set" in cards["crash"]
    )
    plot = re.search(r'<div class="plots load-test-plot">(<svg.*?</svg>)</div>', cards["slow"], re.S)
    assert plot and 'class="over"' in plot.group(1) and "p50&lt;=100ms" in plot.group(1)
    plots = re.search(r'<div class="plots analysis-plot">(.*?)</div>', cards["judged"], re.S)
    assert plots and plots.group(1).count("<svg") == 2 and "p99 latency per step" in plots.group(1)
    assert "<td>50%</td>" in cards["judged"] and 'class="verdict-fail"' in cards["judged"]
    plots = re.search(r'<div class="plots analysis-plot">(.*?)</div>', cards["stepped"], re.S)
    assert plots and ">50% candidate<" in plots.group(1) and ">50% baseline<" in plots.group(1)
    assert "failing at start" not in page

    # What the outcome task logs for its rollout: the same conditions and log lines.
    caplog.set_level(logging.INFO, logger="outcome-test")
    found = log_candidate_diagnostics(
        KnativeServingHook(), "crash", kube_namespace, crash["rollout_id"], logging.getLogger("outcome-test")
    )
    assert found is not None and found.revision == crash["rollout_revision"]
    logged = [record.getMessage() for record in caplog.records if record.name == "outcome-test"]
    assert logged[0].startswith(
        f"Diagnostics of revision {kube_namespace}/{found.revision}: Ready=False (ExitCode1"
    )
    assert "    | echo: *** because ECHO_FAIL_AT_START is set" in logged
    # Another rollout's record is not this one's.
    assert (
        log_candidate_diagnostics(
            KnativeServingHook(),
            "crash",
            kube_namespace,
            "other/run/group",
            logging.getLogger("outcome-test"),
        )
        is None
    )
