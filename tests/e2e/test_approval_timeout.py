"""canary_rollout_with_approval on a real scheduler: an approval nobody answers times out and rolls back."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from knative_rollout.resources import state_from_annotations
from local_airflow import AirflowStack
from local_knative.testing import LocalKnative

pytestmark = pytest.mark.e2e

# deploy + one 6 s window + the 8 s response timeout + the scheduler's sweep (every 2 s on the test stack)
# + the rollback (pytest-timeout, 300 s, counts the stack start too)
RUN_TIMEOUT = 200.0
# The DAG's response_timeout (tests/e2e/dags/e2e_approval_timeout.py).
RESPONSE_TIMEOUT = timedelta(seconds=8)
ALERTS_VARIABLE = "e2e_approval_timeout_alerts"


@pytest.fixture
def alerts(airflow_stack: AirflowStack) -> Iterator[list[dict[str, Any]]]:
    """An HTTP endpoint keeping the alerts posted to it, configured as the DAG's alerts Variable."""
    posted: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    value = json.dumps({"webhook_url": url})
    airflow_stack.api("POST", "/api/v2/variables", {"key": ALERTS_VARIABLE, "value": value})
    try:
        yield posted
    finally:
        airflow_stack.api("DELETE", f"/api/v2/variables/{ALERTS_VARIABLE}")
        server.shutdown()


def test_unanswered_approval_times_out_and_rolls_back(
    airflow_stack: AirflowStack,
    alerts: list[dict[str, Any]],
    local_knative: LocalKnative,
    kube_namespace: str,
    kubeconfig_path: Path,
) -> None:
    conf = {"namespace": kube_namespace, "metrics_url": local_knative.metrics_url}
    run_id = airflow_stack.trigger("e2e_approval_timeout", conf)
    result = airflow_stack.wait_for_run("e2e_approval_timeout", run_id, timeout=RUN_TIMEOUT)
    diagnostics = airflow_stack.diagnostics(result.dag_id, result.run_id)
    states = result.task_states
    assert result.state == "failed", diagnostics
    assert states["rollout.canary"] == "success", diagnostics
    # The timeout answered with the default, Reject: the approval succeeded and skipped the promotion.
    assert states["rollout.approve"] == "success" and states["rollout.promote"] == "skipped", diagnostics
    assert states["rollout.rollback"] == "success" and states["rollout.outcome"] == "failed", diagnostics

    details = airflow_stack.api("GET", f"/api/v2/dags/{result.dag_id}/dagRuns/{run_id}/hitlDetails")
    (detail,) = details["hitl_details"]
    assert detail["chosen_options"] == ["Reject"] and detail["responded_by_user"] is None, detail
    # The scheduler answered for nobody, and not before the response timeout had passed.
    waited = datetime.fromisoformat(detail["responded_at"]) - datetime.fromisoformat(detail["created_at"])
    assert waited >= RESPONSE_TIMEOUT, detail

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig_path)))
    service = api.get_namespaced_custom_object(
        "serving.knative.dev", "v1", kube_namespace, "services", "echo"
    )
    state = state_from_annotations(service["metadata"]["annotations"])
    served = [(t["revisionName"], t["percent"]) for t in service["status"]["traffic"]]
    assert served == [(state.stable, 100)] and state.phase.value == "RolledBack", service["status"]
    assert state.rollout_revision != state.stable, "the candidate that was waiting serves nothing"
    leases = client.CoordinationV1Api(config.new_client_from_config(config_file=str(kubeconfig_path)))
    holders = [lease.spec.holder_identity for lease in leases.list_namespaced_lease(kube_namespace).items]
    assert not any(holders), f"the lock is released: {holders}"
    # Alerts from the workers, configured by the Variable: asked, then rolled back by nobody's answer.
    assert [alert["event"] for alert in alerts] == ["approval_requested", "rolled_back"], alerts
    assert alerts[1]["task_id"] == "rollout.rollback" and alerts[1]["revision"] == state.rollout_revision
    assert alerts[1]["reason"].startswith("not approved: rejected, or no answer within the"), alerts
