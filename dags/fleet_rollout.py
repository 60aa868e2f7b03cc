"""Roll one model out to a fleet of Knative Services in one DAG run: one progressive rollout per Service.

Design: dynamic task mapping over a TaskGroup. ``plan`` splits the fleet into three waves (the first
Service alone, then ``wave_percent`` of the others, then the rest); each wave is a mapped TaskGroup
(``first``, ``second``, ``rest``) expanded over its Services, and each map index is a whole
:func:`~knative_rollout.task_groups.progressive_rollout` of one Service (bootstrap, lock, deploy, shifts,
promote, rollback, outcome). Mapping over the group rather than writing one fleet operator keeps every
Service's rollout visible and clearable on its own in the grid, and keeps them independent: each map
index has its own rollout identity (``dag_id/run_id/<group>/<map_index>``), its own Lease
(``<service>-rollout-lock``) and its own record on its Service, so a failure in one Service rolls back only
that one and the others carry on.

Stop the fleet: before the second and the last wave a ``gate`` counts the rollouts that failed so far;
from ``max_failures`` on it fails, and no Service of the later waves starts (they end ``upstream_failed``,
production untouched). A wave's Services start together, at most :data:`MAX_PARALLEL` of each step at
once (``max_active_tis_per_dagrun``), which bounds the worker slots and the API load a fleet takes; it
does not bound how many of a wave's Services are between their lock and their outcome at a time (Airflow
has no limit for a mapped group as a whole): ``benchmarks/fleet.py`` measures both.
``summary`` (the only leaf) says which Services were promoted, unchanged, rolled back or not started,
and fails the run unless every Service ended promoted or unchanged.

Params: ``services`` (Knative Service names), ``namespace``, ``image`` (the candidate), ``stable_image``
(deployed where a Service does not exist yet), ``wave_percent``, ``max_failures``, ``steps`` is fixed at
parse time (:data:`STEPS`). ``benchmarks/fleet.py`` runs it on 100 Services; the e2e tests on 5.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, chain, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.operators import KnativeDeployRevisionOperator
from knative_rollout.task_groups import progressive_rollout

WAVES = ("first", "second", "rest")
STEPS = (50, 100)
# How many task instances of one step of one wave run at once (bootstraps, locks, shifts...).
MAX_PARALLEL = 16
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,50}[a-z0-9])?")

with DAG(
    dag_id="fleet_rollout",
    description="Roll one image out to many Knative Services: first one, then a percentage, then the rest",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["knative-rollout", "example", "fleet"],
    max_active_tasks=64,
    params={
        "services": Param(
            [f"echo-{n}" for n in range(5)],
            type="array",
            items={"type": "string"},
            minItems=1,
            description="the Knative Services to roll out to (DNS-1035 names, each at most 52 characters)",
        ),
        "namespace": Param("default", type="string"),
        "image": Param("registry.example.com/knative-rollout/echo:v2", type="string"),
        "stable_image": Param(
            "registry.example.com/knative-rollout/echo:v1",
            type="string",
            description="deployed as the stable revision of a Service that does not exist yet",
        ),
        "wave_percent": Param(
            25, type="integer", minimum=1, maximum=100, description="share of the others in wave two"
        ),
        "max_failures": Param(
            1, type="integer", minimum=1, description="failed rollouts after which no new wave starts"
        ),
    },
    default_args={
        "owner": "ml-platform",
        "retries": 1,
        "retry_delay": pendulum.duration(seconds=5),
        "max_active_tis_per_dagrun": MAX_PARALLEL,
    },
) as dag:

    @task
    def plan(wave: str) -> list[str]:
        """Return one wave's Services: the first Service, ``wave_percent`` of the others, or the rest."""
        params = get_current_context()["params"]
        services, wave_percent = list(params["services"]), int(params["wave_percent"])
        bad = [name for name in services if not isinstance(name, str) or not _DNS_1035.fullmatch(name)]
        if bad:
            raise AirflowFailException(f"not Knative Service names (DNS-1035, <= 52 characters): {bad}")
        duplicates = sorted({name for name in services if services.count(name) > 1})
        if duplicates:
            raise AirflowFailException(f"Services listed twice: {duplicates}; list each once")
        others = services[1:]
        second = math.ceil(len(others) * wave_percent / 100)
        return {"first": services[:1], "second": others[:second], "rest": others[second:]}[wave]

    @task_group
    def wave(service_name: str) -> None:
        """One Service's rollout: create it with the stable image if missing, then roll the image out."""
        target: dict[str, Any] = {"service_name": service_name, "namespace": "{{ params.namespace }}"}
        bootstrap = KnativeDeployRevisionOperator(
            task_id="bootstrap", **target, image="{{ params.stable_image }}", only_if_missing=True
        )
        rollout = progressive_rollout(
            group_id="rollout", **target, image="{{ params.image }}", steps=STEPS, lock_timeout=600
        )
        bootstrap >> rollout

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def gate(before: list[str]) -> int:
        """Fail (so no later wave starts) once ``max_failures`` rollouts of the earlier waves failed."""
        max_failures = int(get_current_context()["params"]["max_failures"])
        failed = _outcomes(before).get("failed", [])
        if len(failed) >= max_failures:
            raise AirflowFailException(
                f"stopping the fleet: {len(failed)} rollout(s) failed ({', '.join(failed)}), the limit is "
                f"{max_failures}; each was rolled back, no further Service is started. Fix the cause and "
                "trigger a new run: Services already promoted are 'nothing to roll out' then."
            )
        return len(failed)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary() -> dict[str, list[str]]:
        """Say which Services were promoted, unchanged, rolled back or not started; fail unless all went."""
        outcomes = _outcomes(list(WAVES))
        result = {
            key: sorted(outcomes.get(key, [])) for key in ("promoted", "unchanged", "failed", "not_started")
        }
        if result["failed"] or result["not_started"]:
            raise AirflowFailException(
                f"fleet rollout incomplete: promoted {len(result['promoted'])}, unchanged "
                f"{len(result['unchanged'])}, rolled back or failed {result['failed']}, not started "
                f"{result['not_started']}"
            )
        return result

    def _outcomes(waves: list[str]) -> dict[str, list[str]]:
        """Return Service names by how their rollout ended, for the given waves of this run."""
        ti = get_current_context()["ti"]
        waves_of_plan = {name: ti.xcom_pull(task_ids=f"plan_{name}") or [] for name in waves}
        task_ids = [f"{name}.rollout.{step}" for name in waves for step in ("outcome", "deploy_candidate")]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id]).get(
            ti.run_id, {}
        )
        found: dict[str, list[str]] = {}
        for name, services in waves_of_plan.items():
            for index, service in enumerate(services):
                outcome = states.get(f"{name}.rollout.outcome_{index}")
                if outcome == "success":
                    deployed = states.get(f"{name}.rollout.deploy_candidate_{index}")
                    key = "unchanged" if deployed == "skipped" else "promoted"
                elif outcome == "failed":
                    key = "failed"
                else:
                    key = "not_started"
                found.setdefault(key, []).append(service)
        return found

    plans = {name: plan.override(task_id=f"plan_{name}")(wave=name) for name in WAVES}
    first = wave.override(group_id="first").expand(service_name=plans["first"])
    gate_second = gate.override(task_id="gate_second")(before=["first"])
    second = wave.override(group_id="second").expand(service_name=plans["second"])
    gate_rest = gate.override(task_id="gate_rest")(before=["first", "second"])
    rest = wave.override(group_id="rest").expand(service_name=plans["rest"])
    chain(first, gate_second, second, gate_rest, rest, summary())
