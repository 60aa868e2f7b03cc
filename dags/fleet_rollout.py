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

At most ``max_rolling_out`` at once: a Service's rollout first takes a slot, a Lease
``fleet-rollout-slot-<k>-rollout-lock`` in the target namespace (the Service at map index ``i`` of its wave
takes slot ``k = i % max_rolling_out``), waiting for it deferred as for the Service's own lock (the same
:class:`~knative_rollout.operators.KnativeLockOperator`, on the slot's name), and ``free_slot``
(trigger rule ``all_done``) frees it after the outcome, so a rolled-back or failed Service frees its slot
too. Airflow has no limit for a mapped group as a whole; the slots are one. Waves run one after another,
so one run's waves never share a slot at once; fleet runs at the same time in one namespace share the
slots (a platform-wide limit: at most the largest ``max_rolling_out`` among them). A slot is held
without renewal, for :data:`SLOT_SECONDS`, which covers a rollout: the slot of a killed run frees itself
that long after it was taken. :data:`MAX_PARALLEL` (``max_active_tis_per_dagrun``) still bounds each step's
running or deferred task instances, which bounds the worker slots and the API load a fleet takes.

Stop the fleet: before the second and the last wave a ``gate`` counts the rollouts that failed so far;
from ``max_failures`` on it fails, and no Service of the later waves starts (they end ``upstream_failed``,
production untouched).
``summary`` (the only leaf) says which Services were promoted, unchanged, rolled back or not started,
and fails the run unless every Service ended promoted or unchanged.

Params: ``services`` (Knative Service names), ``namespace``, ``image`` (the candidate), ``stable_image``
(deployed where a Service does not exist yet), ``wave_percent``, ``max_failures``, ``max_rolling_out``;
``steps`` is fixed at parse time (:data:`STEPS`). ``benchmarks/fleet.py`` runs it on 100 Services, the e2e
tests on 5.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, chain, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.locks import RolloutLock
from knative_rollout.operators import KnativeDeployRevisionOperator, KnativeLockOperator
from knative_rollout.task_groups import progressive_rollout

WAVES = ("first", "second", "rest")
STEPS = (50, 100)
# How many task instances of one step of one wave run at once (bootstraps, locks, shifts...).
MAX_PARALLEL = 16
# A slot is held, unrenewed, from a Service's rollout start to its outcome: far longer than one takes.
SLOT_SECONDS = 3600
# How long a Service waits for its slot: a slot serves its wave's Services one after another.
SLOT_WAIT_SECONDS = 24 * 3600
# The slot of the Service at map index i of a wave, and that Service's hold on it (wave and index).
SLOT = "fleet-rollout-slot-{{ ti.map_index % params.max_rolling_out }}"
SLOT_HOLDER = "{{ dag.dag_id }}/{{ run_id }}/{{ ti.task_id.split('.')[0] }}/{{ ti.map_index }}"
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
        "max_rolling_out": Param(
            16,
            type="integer",
            minimum=1,
            description="at most this many Services between taking their slot and their outcome at once "
            "(the slots are shared with the fleet runs in the same namespace at that time)",
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
        """One Service's rollout in a slot: create it with the stable image if missing, roll the image out."""
        target: dict[str, Any] = {"service_name": service_name, "namespace": "{{ params.namespace }}"}
        slot = KnativeLockOperator(
            task_id="slot",
            service_name=SLOT,
            namespace="{{ params.namespace }}",
            rollout_id=SLOT_HOLDER,
            lock_duration=SLOT_SECONDS,
            lock_timeout=SLOT_WAIT_SECONDS,
            wait_timeout=SLOT_WAIT_SECONDS,  # Airflow's own limit on the deferral (+60 s)
        )
        bootstrap = KnativeDeployRevisionOperator(
            task_id="bootstrap", **target, image="{{ params.stable_image }}", only_if_missing=True
        )
        rollout = progressive_rollout(
            group_id="rollout", **target, image="{{ params.image }}", steps=STEPS, lock_timeout=600
        )
        # Creating a missing Service with the stable image is no rollout: it runs while the slot is awaited.
        [slot, bootstrap] >> rollout >> free_slot(slot=SLOT, holder=SLOT_HOLDER)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def free_slot(slot: str, holder: str) -> bool:
        """Free the Service's slot whatever its rollout did; return whether it still held it."""
        namespace = str(get_current_context()["params"]["namespace"])
        return RolloutLock(KnativeServingHook(), slot, namespace).release(holder)

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
