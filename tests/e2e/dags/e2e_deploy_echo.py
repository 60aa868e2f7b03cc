"""End-to-end test DAG: deploy an echo revision (deferrable) while a deferrable sensor waits for its Service.

The sensor does not depend on the deploy: it starts with it, finds no Ready Service, and so waits in the
triggerer until the deploy has made the Service Ready. Placed after the deploy it would find the Service
already Ready and succeed without deferring. Both tasks set ``inline_wait_seconds=0``: by default they
watch in the worker for a few seconds first, which is long enough for local_knative, so nothing would
reach the triggerer that this DAG exists to exercise.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from knative_rollout.operators import KnativeDeployRevisionOperator
from knative_rollout.sensors import KnativeServiceReadySensor

with DAG(
    dag_id="e2e_deploy_echo",
    description="Deploy the echo image into a namespace and wait until its Service is Ready",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    params={
        "namespace": Param(type="string", description="namespace to deploy into (it must exist)"),
        "service_name": Param("echo", type="string"),
        "image": Param("registry.example.com/knative-rollout/echo:v1", type="string"),
    },
    tags=["e2e"],
) as dag:
    KnativeDeployRevisionOperator(
        task_id="deploy",
        service_name="{{ params.service_name }}",
        namespace="{{ params.namespace }}",
        image="{{ params.image }}",
        wait_timeout=90,
        inline_wait_seconds=0,
    )
    KnativeServiceReadySensor(
        task_id="service_ready",
        service_name="{{ params.service_name }}",
        namespace="{{ params.namespace }}",
        deferrable=True,
        timeout=90,
        inline_wait_seconds=0,
    )
