"""Tear down what is no longer needed: prune a Service's old revisions, or delete the Service.

Triggered by hand (the UI's form or the REST API). ``dry_run`` is on by default: the run lists, in the
``teardown`` task's log and return value, what would be deleted, and deletes nothing; trigger again
with ``dry_run`` off to delete. Pruning never deletes a revision that serves traffic, carries a tag, is
recorded as stable, candidate or rollback target, or is the newest of the rest up to ``keep``; nothing
is deleted while a rollout holds the Service's lock.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, chain, task
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.operators import KnativeTeardownOperator

DNS_LABEL = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
PARAMS = {
    "service_name": Param(
        None, type="string", pattern=DNS_LABEL, maxLength=63, description="Knative Service (DNS-1035 name)"
    ),
    "namespace": Param(
        "default", type="string", pattern=DNS_LABEL, maxLength=63, description="its namespace"
    ),
    "mode": Param(
        "prune_revisions",
        type="string",
        enum=["prune_revisions", "delete_service"],
        description="prune_revisions: delete old unprotected revisions; delete_service: the whole Service",
    ),
    "keep": Param(
        2, type="integer", minimum=0, maximum=100, description="unprotected revisions to keep, newest first"
    ),
    "dry_run": Param(True, type="boolean", description="only list what would be deleted"),
}

with DAG(
    dag_id="teardown",
    description="Prune a Knative Service's old revisions or delete it, with a dry run first",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["knative-rollout", "example", "teardown"],
    params=PARAMS,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": pendulum.duration(seconds=10)},
) as dag:

    @task(retries=0)
    def check_params(params: dict[str, Any]) -> dict[str, Any]:
        """Check every Param against its JSON schema again: a REST trigger is not held to the form."""
        import jsonschema

        for name, param in PARAMS.items():
            try:
                jsonschema.validate(params.get(name), param.schema)
            except jsonschema.ValidationError as error:
                raise AirflowFailException(
                    f"Param {name!r} is invalid: {error.message} (got {params.get(name)!r}). "
                    f"{param.description}. Nothing was deleted"
                ) from None
        return {name: params.get(name) for name in PARAMS}

    teardown = KnativeTeardownOperator(
        task_id="teardown",
        service_name="{{ params.service_name }}",
        namespace="{{ params.namespace }}",
        keep="{{ params.keep }}",
        delete_service="{{ params.mode == 'delete_service' }}",
        dry_run="{{ params.dry_run }}",
    )
    chain(check_params(), teardown)
