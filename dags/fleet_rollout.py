"""Roll one model out to a fleet of Knative Services in one DAG run: one progressive rollout per Service.

Design: dynamic task mapping. ``plan_<wave>`` splits the fleet into three waves (the first Service alone,
then ``wave_percent`` of the others, then the rest); each wave is a mapped TaskGroup (``first``,
``second``, ``rest``) expanded over its Services, two tasks per Service: ``bootstrap`` creates the Service
with the stable image when it does not exist, and ``rollout`` is that Service's whole progressive rollout
in one deferrable task (:class:`~knative_rollout.operators.KnativeCanaryRolloutOperator`: lock, deploy,
each step of :data:`STEPS` checked against the SLO on live metrics, promote, or roll back). Mapping keeps
every Service's rollout visible and clearable on its own in the grid, and keeps them independent: each
map index has its own rollout identity (``fleet_rollout/<run_id>/<wave>.rollout/<map_index>``), its own
Lease and its own record on its Service, so a failure rolls back only that Service.

At most :data:`MAX_AT_ONCE` Services roll out at once: one task instance is one Service from its lock to
its outcome, and the rollout task's ``max_active_tis_per_dagrun`` counts it while it runs, is queued or
waits deferred in the triggerer. The limit is fixed when the DAG is parsed (Airflow reads it from the
task), so it comes from the environment variable ``KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE`` (default 16).

Stop the fleet: once ``max_failures`` Services' rollouts failed (each rolled back), no further Service
starts: a rollout that has not started yet skips (its first try checks; a retry carries on the rollout it
began, never leaving it half done), and the ``gate`` before the second and the last wave fails, so their
Services end ``upstream_failed``. Rollouts already under way finish on their own. ``summary`` (the only
leaf) says which Services were promoted, unchanged, rolled back or not started, and fails the run unless
every Service ended promoted or unchanged.

Params: ``services`` (Knative Service names), ``namespace``, ``image`` (the candidate), ``stable_image``
(deployed where a Service does not exist yet), ``wave_percent``, ``max_failures``; the analysis of each
step: ``metrics_url`` (a Prometheus, or a ``/metrics`` endpoint; empty: the Knative ingress' /metrics of
the ``kubernetes_default`` connection), ``analysis_window``, ``load_rate`` (synthetic requests per second
during each window; 0: real traffic only), ``p99_ms``, ``max_error_rate``. ``benchmarks/fleet.py`` runs it
on 100 Services; the e2e tests on 5.
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, chain, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from knative_rollout.operators import KnativeCanaryRolloutOperator, KnativeDeployRevisionOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

WAVES = ("first", "second", "rest")
STEPS = (50, 100)
MAX_AT_ONCE_VARIABLE = "KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE"
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,50}[a-z0-9])?")


def _max_at_once() -> int:
    """Return the fleet's limit on Services rolling out at once, from the environment (default 16)."""
    text = os.environ.get(MAX_AT_ONCE_VARIABLE, "16")
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{MAX_AT_ONCE_VARIABLE} must be a whole number of at least 1, got {text!r}")
    return int(text)


MAX_AT_ONCE = _max_at_once()


def _outcomes(waves: list[str], *, read_results: bool = True) -> dict[str, list[str]]:
    """Return Service names by how their rollout ended (or not), for the given waves of this run.

    ``read_results=False`` (enough to count failures) reads no XCom per Service: promoted and unchanged
    ones are ``succeeded`` together.
    """
    ti = get_current_context()["ti"]
    waves_of_plan = {name: ti.xcom_pull(task_ids=f"plan_{name}") or [] for name in waves}
    task_ids = [f"{name}.{step}" for name in waves for step in ("bootstrap", "rollout")]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id]).get(ti.run_id, {})
    found: dict[str, list[str]] = {}
    for name, services in waves_of_plan.items():
        for index, service in enumerate(services):
            state = states.get(f"{name}.rollout_{index}")
            if state == "success" and not read_results:
                key = "succeeded"
            elif state == "success":
                result = ti.xcom_pull(task_ids=f"{name}.rollout", map_indexes=index) or {}
                key = "unchanged" if result.get("unchanged") else "promoted"
            elif "failed" in (state, states.get(f"{name}.bootstrap_{index}")):
                key = "failed"
            else:  # skipped (the fleet stopped), upstream_failed (a gate stopped it), or not yet run
                key = "not_started"
            found.setdefault(key, []).append(service)
    return found


def _stop_reason(failed: list[str]) -> str | None:
    """Return why the fleet stops, once ``max_failures`` rollouts of this run failed; else ``None``."""
    max_failures = int(get_current_context()["params"]["max_failures"])
    if len(failed) < max_failures:
        return None
    return (
        f"the fleet stopped: {len(failed)} rollout(s) failed ({', '.join(failed)}), the limit is "
        f"{max_failures}; each was rolled back, no further Service is started. Fix the cause and trigger a "
        "new run: Services already promoted are 'nothing to roll out' then"
    )


class FleetServiceRollout(KnativeCanaryRolloutOperator):
    """One Service's rollout, which does not start once the fleet has stopped (see the module docstring)."""

    def execute(self, context: Context) -> Any:
        # Only a first try may skip: a retry resumes what the first one began (nothing is left half done).
        if context["ti"].try_number <= 1:
            reason = _stop_reason(_outcomes(list(WAVES), read_results=False).get("failed", []))
            if reason:
                self.log.warning("Not started: %s", reason)  # Airflow logs a skip without its reason
                raise AirflowSkipException(reason)
        return super().execute(context)


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
            1, type="integer", minimum=1, description="failed rollouts after which no new Service starts"
        ),
        "metrics_url": Param(
            "",
            type="string",
            description="Prometheus URL, or a /metrics endpoint; empty: the Knative ingress' /metrics",
        ),
        "analysis_window": Param(
            5, type="integer", minimum=1, description="seconds each step is checked against the SLO"
        ),
        "load_rate": Param(
            10,
            type="number",
            minimum=0,
            description="synthetic requests per second to each candidate in a window; 0: real traffic only",
        ),
        "p99_ms": Param(2000, type="integer", minimum=1, description="SLO: p99 latency in milliseconds"),
        "max_error_rate": Param(0.01, type="number", minimum=0, maximum=1, description="SLO: error rate"),
    },
    default_args={
        "owner": "ml-platform",
        "retries": 1,
        "retry_delay": pendulum.duration(seconds=5),
        "max_active_tis_per_dagrun": MAX_AT_ONCE,
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

    @task
    def analysis() -> dict[str, Any]:
        """Return the ``analysis`` of every step, built from the Params and checked before any Service."""
        from knative_rollout.analysis import AnalysisConfig
        from knative_rollout.operators.analysis import metrics_source

        params = get_current_context()["params"]
        source = metrics_source(params["metrics_url"])
        if source is None:
            raise AirflowFailException(
                "Param 'metrics_url' is empty and the kubernetes_default connection has no "
                "'ingress_address' extra to read /metrics from; give the Prometheus URL"
            )
        window = int(params["analysis_window"])
        settings: dict[str, Any] = {
            **source,
            "window": window,
            "interval": max(1, window // 5),
            "compare": False,
            "slo": {"max_p99_latency": f"{params['p99_ms']}ms", "max_error_rate": params["max_error_rate"]},
        }
        if params["load_rate"]:
            settings["load"] = {"rate": params["load_rate"]}
        try:
            config = AnalysisConfig.of(settings)
        except (TypeError, ValueError) as error:
            raise AirflowFailException(f"the analysis built from the Params is refused: {error}") from None
        sent = params["load_rate"] * window
        if config.slo is not None and 0 < sent < config.slo.min_requests:
            raise AirflowFailException(
                f"load_rate {params['load_rate']} x analysis_window {window} s sends {sent:g} requests per "
                f"window, fewer than the {config.slo.min_requests} the SLO check needs: every step would be "
                "inconclusive. Raise either; nothing was changed"
            )
        return settings

    @task_group
    def wave(service_name: str, settings: dict[str, Any]) -> None:
        """One Service: create it with the stable image if missing, then roll the image out."""
        target: dict[str, Any] = {"service_name": service_name, "namespace": "{{ params.namespace }}"}
        bootstrap = KnativeDeployRevisionOperator(
            task_id="bootstrap", **target, image="{{ params.stable_image }}", only_if_missing=True
        )
        rollout = FleetServiceRollout(
            task_id="rollout",
            **target,
            image="{{ params.image }}",
            steps=STEPS,
            analysis=settings,
            lock_timeout=600,
        )
        bootstrap >> rollout

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def gate(before: list[str]) -> int:
        """Fail (so no later wave starts) once ``max_failures`` rollouts of the earlier waves failed."""
        failed = _outcomes(before, read_results=False).get("failed", [])
        reason = _stop_reason(failed)
        if reason:
            raise AirflowFailException(reason)
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

    plans = {name: plan.override(task_id=f"plan_{name}")(wave=name) for name in WAVES}
    checked = analysis()
    first = wave.override(group_id="first").partial(settings=checked).expand(service_name=plans["first"])
    gate_second = gate.override(task_id="gate_second")(before=["first"])
    second = wave.override(group_id="second").partial(settings=checked).expand(service_name=plans["second"])
    gate_rest = gate.override(task_id="gate_rest")(before=["first", "second"])
    rest = wave.override(group_id="rest").partial(settings=checked).expand(service_name=plans["rest"])
    chain(first, gate_second, second, gate_rest, rest, summary())
    checked >> [first, second, rest]  # a refused analysis starts no Service, not even a bootstrap
