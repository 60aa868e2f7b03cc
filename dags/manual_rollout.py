"""Roll out a model of your own: a form in the Airflow UI ("Trigger" on this DAG) or the REST API.

Give the Service, the server image and the model artifact (a path or ``gs://`` URI written by
``python -m model.train``), the load-test gate's thresholds and, when on purpose, ``allow_older`` (roll
back to an older model by rolling it out) or ``attempt`` (try again a spec whose revision failed).
Each Param has a type and limits, so the form refuses bad values; ``check_params`` checks them again
with the same JSON schemas as the first task, because a run triggered over the REST API is not held to
the form, and a bad value fails that task, naming the field, before anything is written.

Then: ``bootstrap`` creates the Service with this model when it does not exist yet, and ``rollout``
puts the model on a 0% canary with its own tag URL, load-tests it there, shifts 10% -> 50% -> 100% and
promotes it, or rolls back and fails the run. The same inputs twice are "nothing to roll out".

The Rollouts page's "Roll out a model" button opens this form prefilled for its Service. Its "Roll
back" button triggers this DAG with ``rollback_now``: all traffic back to the stable revision (or,
right after a promotion, to the previous one), nothing deployed.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, chain, task
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.operators import KnativeDeployRevisionOperator, KnativeRollbackOperator
from knative_rollout.task_groups import progressive_rollout

SERVICE = "{{ params.service_name }}"
NAMESPACE = "{{ params.namespace }}"
TARGET = {"service_name": SERVICE, "namespace": NAMESPACE}
DNS_LABEL = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
PREDICTION = '{"instances": [[5.9, 3.0, 5.1, 1.8]]}'
ENV = {"MODEL_URI": "{{ params.model_uri }}"}

PARAMS = {
    "service_name": Param(
        "iris", type="string", pattern=DNS_LABEL, maxLength=63, description="Knative Service (DNS-1035 name)"
    ),
    "namespace": Param(
        "default", type="string", pattern=DNS_LABEL, maxLength=63, description="its namespace"
    ),
    "image": Param(
        "registry.example.com/knative-rollout/model-server:v1",
        type="string",
        minLength=1,
        maxLength=500,
        description="model server image (the guardrails may limit the registries)",
    ),
    "model_uri": Param(
        None,
        type="string",
        minLength=1,
        maxLength=1000,
        pattern="^(gs://[a-z0-9][-a-z0-9_.]{1,221}/.+|/.+)$",
        description="the model artifact: an absolute path, or gs://BUCKET/PATH (MODEL_URI of the server)",
    ),
    "p99_ms": Param(
        500, type="integer", minimum=1, maximum=60000, description="gate: p99 latency limit (ms)"
    ),
    "max_error_rate": Param(
        0.01, type="number", minimum=0, maximum=1, description="gate: largest share of failed requests"
    ),
    "min_rate": Param(
        18, type="integer", minimum=0, maximum=20, description="gate: answered requests per second (of 20)"
    ),
    "allow_older": Param(
        False, type="boolean", description="roll out an older model on purpose (a rollback by rollout)"
    ),
    "attempt": Param(
        0,
        type="integer",
        minimum=0,
        maximum=1000,
        description="raise it to retry a spec whose revision failed",
    ),
    "rollback_now": Param(
        False,
        type="boolean",
        description="deploy nothing: send all traffic back to the stable revision (after a promotion: the "
        "previous one)",
    ),
}

with DAG(
    dag_id="manual_rollout",
    description="Roll out a model of your own from the UI form or the REST API, gated and step by step",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["knative-rollout", "example", "manual"],
    params=PARAMS,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": pendulum.duration(seconds=10)},
) as dag:

    @task(retries=0)
    def check_params(params: dict[str, Any]) -> dict[str, Any]:
        """Check every Param against its JSON schema again: a REST trigger is not held to the form."""
        import jsonschema

        for name, param in PARAMS.items():
            value = params.get(name)
            try:
                jsonschema.validate(value, param.schema)
            except jsonschema.ValidationError as error:
                raise AirflowFailException(
                    f"Param {name!r} is invalid: {error.message} (got {value!r}). {param.description}. "
                    "Nothing was changed; trigger again with a valid value"
                ) from None
        return {name: params.get(name) for name in PARAMS}

    # Two short circuits rather than a branch: a short circuit skips everything after it whatever the
    # trigger rules, so the rollout's outcome task (trigger rule all_done) does not run on the rollback path.
    @task.short_circuit
    def wants_rollback(params: dict[str, Any]) -> bool:
        """Go on to ``rollback_now`` only when it was asked for."""
        return bool(params["rollback_now"])

    @task.short_circuit
    def wants_rollout(params: dict[str, Any]) -> bool:
        """Go on to the rollout unless a rollback was asked for."""
        return not params["rollback_now"]

    rollback_now = KnativeRollbackOperator(
        task_id="rollback_now", **TARGET, undo_promotion="{{ params.rollback_now }}"
    )
    bootstrap = KnativeDeployRevisionOperator(
        task_id="bootstrap", **TARGET, image="{{ params.image }}", env=ENV, only_if_missing=True
    )
    rollout = progressive_rollout(
        group_id="rollout",
        **TARGET,
        image="{{ params.image }}",
        env=ENV,
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
            "slo": "p99<={{ params.p99_ms }}ms,error_rate<={{ params.max_error_rate }},"
            "achieved_rate>={{ params.min_rate }}",
        },
    )
    checked = check_params()
    chain(checked, wants_rollback(), rollback_now)
    chain(checked, wants_rollout(), bootstrap, rollout)
