"""A first progressive rollout: deploy v1, add v2 as a 0% canary, load-test it, shift 10 -> 50 -> 100.

v2 gets its own tag URL with no traffic, and a load test of predictions on that URL must meet the SLO
before any user traffic moves; then traffic shifts 10% -> 50% -> 100% and v2 is promoted. If the gate or
any step fails, the ``rollout.rollback`` task sends all traffic back to v1 and ``rollout.outcome`` fails
the run, saying which step failed and why.

Every step is a task that is safe to retry: rerun any of them and it finds its work done. The waits
(revision Ready, traffic served) defer to the triggerer, so no worker slot is held while Knative works.
``make demo`` runs this DAG against a local_knative it starts; on GKE, set ``cluster_name`` etc. or a
``kubernetes`` connection, and point ``image`` at your registry. The gate loads the candidate's tag URL
from the worker: where that host has no DNS (local_knative's ``example.com``), set the connection's
``ingress_address`` extra to the Knative ingress.

Run it again and it is safe: v1's deploy only creates the Service the first time; v2 already stable is
"nothing to roll out" (green, production unchanged); the previous stable is refused unless ``allow_older``.
Two runs at once take turns through the Service's rollout lock.

Params: ``model_v1_uri`` / ``model_v2_uri`` (artifacts from ``python -m model.train``), ``service_name``,
``namespace``, ``image``, ``slo`` (the gate's thresholds), ``allow_older``, ``attempt`` (a new name for a
spec whose revision failed).
"""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG, Param, chain

from knative_rollout.operators import KnativeDeployRevisionOperator, KnativeTeardownOperator
from knative_rollout.sensors import KnativeRevisionReadySensor
from knative_rollout.task_groups import progressive_rollout

SERVICE = "{{ params.service_name }}"
NAMESPACE = "{{ params.namespace }}"
TARGET = {"service_name": SERVICE, "namespace": NAMESPACE}
# One iris flower per request, in the KServe v1 protocol the example model serves.
PREDICTION = json.dumps({"instances": [[5.9, 3.0, 5.1, 1.8]]})

with DAG(
    dag_id="rollout_example",
    description="Deploy v1, canary v2 on its tag URL, load-test it, shift 10/50/100, promote or roll back",
    doc_md=__doc__,
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
        "slo": Param(
            "p99<=500ms,error_rate<=0.01,achieved_rate>=18",
            type="string",
            description="the load-test gate's thresholds on v2's tag URL (20 predictions/s for 5 s)",
        ),
        "allow_older": Param(
            False, type="boolean", description="roll out v2 even if it is the previous or an older revision"
        ),
        "attempt": Param(
            0, type="integer", minimum=0, description="raise to redeploy a spec whose revision failed"
        ),
    },
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": pendulum.duration(seconds=10)},
) as dag:
    deploy_v1 = KnativeDeployRevisionOperator(
        task_id="deploy_v1",
        **TARGET,
        image="{{ params.image }}",
        env={"MODEL_URI": "{{ params.model_v1_uri }}"},
        autoscaling={"min-scale": 1},
        # Creates the Service the first time; later runs leave production alone and roll out v2 only.
        only_if_missing=True,
    )
    rollout = progressive_rollout(
        group_id="rollout",
        **TARGET,
        image="{{ params.image }}",
        env={"MODEL_URI": "{{ params.model_v2_uri }}"},
        autoscaling={"min-scale": 1},
        steps=(10, 50, 100),
        allow_older="{{ params.allow_older }}",
        attempt="{{ params.attempt }}",
        load_test={
            "rate": 20,
            "duration": "5s",
            "path": "/v1/models/{{ params.service_name }}:predict",
            "bodies": [PREDICTION],
            "headers": {"Content-Type": "application/json"},
            "expect_json_field": "predictions",
            "slo": "{{ params.slo }}",
        },
    )
    # Production's revision is Ready. (Not the whole Service: after a candidate failed, Knative reports
    # the Service not Ready until a newer revision is deployed, while the stable one serves as before.)
    ready = KnativeRevisionReadySensor(
        task_id="stable_ready",
        revision_name="{{ ti.xcom_pull(task_ids='rollout.outcome')['stable_revision'] }}",
        namespace=NAMESPACE,
        timeout=300,
    )
    teardown = KnativeTeardownOperator(task_id="teardown", **TARGET, keep=0)

    chain(deploy_v1, rollout, ready, teardown)
