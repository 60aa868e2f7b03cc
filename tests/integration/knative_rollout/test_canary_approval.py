"""canary_rollout_with_approval on local_knative: judged steps, a person answers through the real REST API.

The DAG runs with ``dag.test()`` in this process; the approval task parks in ``awaiting_input`` (Airflow
3.3: no trigger, no triggerer) and a thread answers it through Airflow's own api-server app, served by
uvicorn on a real port over the same metadata database, exactly as the Required Actions UI would.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_canary_rollout import ECHO, SERVICE, Load, Webhook, lease_holder, service_state

from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration

DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.approval import canary_rollout_with_approval
from knative_rollout.notifiers import KnativeRolloutWebhookNotifier
from knative_rollout.operators import KnativeDeployRevisionOperator

target = dict(service_name="{service}", namespace="{namespace}", wait_timeout=90)
analysis = {{"scrape_urls": ["{metrics_url}"], "window": "6s", "interval": "1s",
            "slo": {{"max_p99_latency": "200ms", "max_error_rate": 0.02, "min_requests": 20}}}}

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         default_args={{"retries": 0}}) as dag:
    KnativeDeployRevisionOperator(task_id="deploy_stable", image="{echo}:v1", only_if_missing=True,
                                  **target) >> canary_rollout_with_approval(
        group_id="rollout", image="{echo}:v2", steps=[30], analysis=analysis,
        notifiers=[KnativeRolloutWebhookNotifier(url="{hook_url}")], **target,
    )
"""


class Api:
    """Airflow's api-server app served by uvicorn in a thread (all users admin, as in the e2e stack)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import socket

        import uvicorn

        monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
        from airflow.api_fastapi.app import create_app

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api/v2"
        config = uvicorn.Config(create_app("core"), host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "the api-server did not start"
            time.sleep(0.1)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def answer(self, dag_id: str, option: str, seen: list[dict[str, Any]], stop: threading.Event) -> None:
        """Wait for the approval request, keep what it shows, answer it with ``option``."""
        while not stop.wait(0.5):
            try:
                details = self.call("GET", f"/dags/{dag_id}/dagRuns/~/hitlDetails")["hitl_details"]
            except (urllib.error.URLError, OSError):
                continue
            waiting = [d for d in details if not d.get("response_received")]
            if waiting:
                detail = waiting[0]
                seen.append(detail)
                ti = detail["task_instance"]
                self.call(
                    "PATCH",
                    f"/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/-1/hitlDetails",
                    {"chosen_options": [option]},
                )
                return

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def api(run_dag: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    server = Api(monkeypatch)
    yield server
    server.stop()


def run_source(tmp_path: Path, dag_id: str, source: str) -> Any:
    """Write a DAG into the run_dag fixture's bundle folder and run it with dag.test()."""
    path = tmp_path / "dags" / f"{dag_id}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(dag_id, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag.test()


@pytest.mark.parametrize("option", ["Approve", "Reject"])
def test_approval_waits_then_promotes_or_rolls_back(
    api: Api, cluster: Any, local_knative: LocalKnative, kube_namespace: str, tmp_path: Path, option: str
) -> None:
    hook = Webhook()
    dag_id = f"canary_approval_{option.lower()}"
    source = DAG.format(
        service=SERVICE,
        namespace=kube_namespace,
        metrics_url=local_knative.metrics_url,
        dag_id=dag_id,
        echo=ECHO,
        hook_url=hook.url,
    )
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    answering = threading.Thread(target=api.answer, args=(dag_id, option, seen, stop), daemon=True)
    answering.start()
    try:
        with Load(local_knative, kube_namespace):
            dagrun = run_source(tmp_path, dag_id, source)
    finally:
        stop.set()
        answering.join(timeout=10)
    states = {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}
    assert seen, "the approval was requested and answered through the REST API"
    body = seen[0]["body"]
    assert "passed every analysis" in body and "| 30% | pass |" in body, body
    state, served = service_state(cluster, kube_namespace)
    assert hook.events()[0] == "approval_requested"
    assert lease_holder(cluster, kube_namespace) is None
    if option == "Approve":
        assert str(dagrun.state) == "success", states
        assert states["rollout.promote"] == "success" and states["rollout.outcome"] == "success"
        assert served[0][1:] == (100, "stable") and state.phase.value == "Promoted"
    else:
        assert str(dagrun.state) == "failed", states
        assert states["rollout.promote"] == "skipped" and states["rollout.rollback"] == "success"
        assert served == [(state.stable, 100, "stable")] and state.phase.value == "RolledBack"
        assert state.stable != state.rollout_revision, "the rejected candidate serves nothing"
        assert hook.events() == ["approval_requested", "rolled_back"]
        assert hook.posted[1]["task_id"] == "rollout.rollback"
        assert hook.posted[1]["reason"].startswith("not approved: rejected, or no answer"), hook.posted[1]
