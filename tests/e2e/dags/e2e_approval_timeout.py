"""End-to-end test DAG: a judged canary step, then an approval nobody answers within ``response_timeout``.

In Airflow 3.3 an ``ApprovalOperator`` waits in ``awaiting_input`` with no trigger: its timeout is the
scheduler's sweep (``check_awaiting_input_timeouts``), so only a real scheduler can show that a timeout
rejects and the rollout ends rolled back. The analysis sends its own synthetic load (through the
connection's ``ingress_address``), so the step gets a decision without traffic from the test. Alerts are
configured the way a deployment would, by a JSON Variable, read when an alert goes out.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from knative_rollout.approval import canary_rollout_with_approval
from knative_rollout.notifiers import KnativeRolloutVariableNotifier
from knative_rollout.operators import KnativeDeployRevisionOperator

ECHO = "registry.example.com/knative-rollout/echo"

with DAG(
    dag_id="e2e_approval_timeout",
    description="Canary to 30%, ask for approval, nobody answers: the timeout rejects and rolls back",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    params={
        "namespace": Param(type="string", description="namespace to deploy into (it must exist)"),
        "metrics_url": Param(type="string", description="local_knative's /metrics, read by direct scrape"),
    },
    tags=["e2e"],
) as dag:
    target = {"service_name": "echo", "namespace": "{{ params.namespace }}", "wait_timeout": 90}
    KnativeDeployRevisionOperator(
        task_id="deploy_stable", image=f"{ECHO}:v1", only_if_missing=True, **target
    ) >> canary_rollout_with_approval(
        group_id="rollout",
        image=f"{ECHO}:v2",
        steps=[30],
        analysis={
            "scrape_urls": ["{{ params.metrics_url }}"],
            "window": "6s",
            "interval": "1s",
            "load": {"rate": 20, "path": "/"},
            "slo": {"max_p99_latency": "300ms", "max_error_rate": 0.02, "min_requests": 20},
        },
        response_timeout=timedelta(seconds=8),
        notifiers=[KnativeRolloutVariableNotifier(variable="e2e_approval_timeout_alerts")],
        **target,
    )
