"""A first progressive rollout: deploy a model as v1, add v2 as a 0% canary, shift 10 -> 50 -> 100, promote.

Every step is a task that is safe to retry: rerun any of them and it finds its work done. The waits
(revision Ready, traffic served) defer to the triggerer, so no worker slot is held while Knative works.
``make demo`` runs this DAG against a local_knative it starts; on GKE, set ``cluster_name`` etc. or a
``kubernetes`` connection, and point ``image`` at your registry.

Params: ``model_v1_uri`` / ``model_v2_uri`` (artifacts from ``python -m model.train``), ``service_name``,
``namespace``, ``image``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, chain

from knative_rollout.operators import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeSetTrafficOperator,
    KnativeTeardownOperator,
)
from knative_rollout.sensors import KnativeServiceReadySensor

SERVICE = "{{ params.service_name }}"
NAMESPACE = "{{ params.namespace }}"
TARGET = {"service_name": SERVICE, "namespace": NAMESPACE}

with DAG(
    dag_id="rollout_example",
    description="Deploy v1, canary v2 on its tag URL, shift 10/50/100, promote, tear down",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["knative-rollout", "example"],
    params={
        "service_name": Param("iris", type="string", description="Knative Service name (DNS-1035)"),
        "namespace": Param("default", type="string"),
        "image": Param("registry.example.com/knative-rollout/model-server:v1", type="string"),
        "model_v1_uri": Param("", type="string", description="artifact of model v1 (path or gs://)"),
        "model_v2_uri": Param("", type="string", description="artifact of model v2 (path or gs://)"),
    },
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=10)},
) as dag:
    deploy_v1 = KnativeDeployRevisionOperator(
        task_id="deploy_v1",
        **TARGET,
        image="{{ params.image }}",
        env={"MODEL_URI": "{{ params.model_v1_uri }}"},
        autoscaling={"min-scale": 1},
    )
    deploy_v2 = KnativeDeployRevisionOperator(
        task_id="deploy_v2_canary",
        **TARGET,
        image="{{ params.image }}",
        env={"MODEL_URI": "{{ params.model_v2_uri }}"},
        autoscaling={"min-scale": 1},
        tag="candidate",
        traffic_percent=0,
    )
    shifts = [
        KnativeSetTrafficOperator(
            task_id=f"traffic_{percent}",
            **TARGET,
            traffic={"@stable": 100 - percent, "@candidate": percent},
        )
        for percent in (10, 50, 100)
    ]
    promote = KnativePromoteOperator(task_id="promote", **TARGET)
    ready = KnativeServiceReadySensor(
        task_id="service_ready", service_name=SERVICE, namespace=NAMESPACE, timeout=300
    )
    teardown = KnativeTeardownOperator(task_id="teardown", **TARGET, keep=0)

    chain(deploy_v1, deploy_v2, *shifts, promote, ready, teardown)
