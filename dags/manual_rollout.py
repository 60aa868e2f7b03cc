"""Roll out a model of your own: a form in the Airflow UI ("Trigger" on this DAG) or the REST API.

Give the Service, the server image and the model artifact (a path or ``gs://`` URI written by
``python -m model.train``), and choose how it goes out: ``strategy`` ``canary`` (traffic ``steps``, each
judged for ``interval`` seconds against the stable revision and the SLO: ``p99_ms``,
``max_error_rate``), with or without a person's ``approval`` before the promotion, or ``ab`` (a fixed
``ab_split`` held for ``ab_window`` seconds; B is promoted only when it wins). ``load_rate`` sends
synthetic requests to the judged revisions during each window, for a Service with little real traffic.
On purpose: ``allow_older`` (roll back to an older model by rolling it out) or ``attempt`` (try again a
spec whose revision failed).

Each Param has a type and limits, so the form refuses bad values. ``check_params`` checks them again
as the first task, with the same JSON schemas and then the product's own parsers (names, image, the
steps' order, the analysis built from them), because a run triggered over the REST API is not held to
the form: a bad value fails that task, naming the field, before anything is written. It also builds
the analysis each path uses, so the steps and windows are this run's, not fixed when the DAG is parsed.

Then: ``bootstrap`` creates the Service with this model when it does not exist yet, and one path runs
(the others are skipped by their short circuits):

* ``rollout`` (canary, no approval): lock, 0% canary with its own tag URL, the load-test gate there
  (``p99_ms``, ``max_error_rate``, ``min_rate``), then the judged ``steps`` in one deferrable task and
  the promotion;
* ``approval`` (canary with approval): the judged steps below 100%, then an approval task (Required
  Actions in the UI, or the REST API) that rejects after ``approval_timeout`` seconds; approved, the
  candidate is promoted, otherwise traffic goes back to the stable;
* ``ab``: lock, deploy, the A/B test, promotion when B wins, otherwise back to A.

Each path ends in an ``outcome`` task that fails the run unless the candidate was promoted or there was
nothing to roll out. The same inputs twice are "nothing to roll out".

The Rollouts page's "Roll out a model" button opens this form prefilled for its Service. Its "Roll
back" button triggers this DAG with ``rollback_now``: all traffic back to the stable revision (or,
right after a promotion, to the previous one), nothing deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, TaskGroup, TriggerRule, chain, task
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.approval import canary_rollout_with_approval
from knative_rollout.operators import (
    KnativeABTestOperator,
    KnativeCanaryRolloutOperator,
    KnativeDeployRevisionOperator,
    KnativeLockOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    LoadTestGateOperator,
)
from knative_rollout.resources import (
    check_image,
    check_namespace,
    check_percent,
    check_service_name,
    parse_bool,
    parse_int,
)
from knative_rollout.task_groups import KnativeRolloutOutcomeOperator, default_rollout_id

SERVICE = "{{ params.service_name }}"
NAMESPACE = "{{ params.namespace }}"
TARGET = {"service_name": SERVICE, "namespace": NAMESPACE}
CANDIDATE = {
    "image": "{{ params.image }}",
    "env": {"MODEL_URI": "{{ params.model_uri }}"},
    "allow_older": "{{ params.allow_older }}",
    "attempt": "{{ params.attempt }}",
}
DNS_LABEL = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
PREDICTION = '{"instances": [[5.9, 3.0, 5.1, 1.8]]}'
PREDICT_PATH = "/v1/models/{service}:predict"
PREDICT = {
    "bodies": [PREDICTION],
    "headers": {"Content-Type": "application/json"},
}
MAX_APPROVAL_TIMEOUT = 7 * 24 * 3600


def _steps(value: Any) -> object:
    from knative_rollout.policy import RolloutPlan

    return RolloutPlan.of([parse_int(step, "steps") for step in value])


def _integer(name: str) -> Callable[[Any], object]:
    return lambda value: parse_int(value, name)


# One table: each Param (what the form shows and refuses) and the product's parser of its value, which
# check_params applies after the schema. The schema's limits are the only copy of the limits.
FIELDS: dict[str, tuple[Param, Callable[[Any], object] | None]] = {
    "service_name": (
        Param(
            "iris",
            type="string",
            pattern=DNS_LABEL,
            maxLength=63,
            description="Knative Service (DNS-1035 name)",
        ),
        check_service_name,
    ),
    "namespace": (
        Param("default", type="string", pattern=DNS_LABEL, maxLength=63, description="its namespace"),
        check_namespace,
    ),
    "image": (
        Param(
            "registry.example.com/knative-rollout/model-server:v1",
            type="string",
            minLength=1,
            maxLength=500,
            description="model server image (the guardrails may limit the registries)",
        ),
        check_image,
    ),
    "model_uri": (
        Param(
            None,
            type="string",
            minLength=1,
            maxLength=1000,
            pattern="^(gs://[a-z0-9][-a-z0-9_.]{1,221}/.+|/.+)$",
            description="the model artifact: an absolute path, or gs://BUCKET/PATH (MODEL_URI of the server)",
        ),
        None,
    ),
    "strategy": (
        Param(
            "canary",
            type="string",
            enum=["canary", "ab"],
            description="canary: traffic steps judged one by one; ab: a fixed split held for one window, "
            "B promoted only when it wins",
        ),
        None,
    ),
    "steps": (
        Param(
            [10, 50, 100],
            type="array",
            items={"type": "integer", "minimum": 1, "maximum": 100},
            minItems=1,
            maxItems=10,
            description="canary: the candidate's traffic percents, strictly increasing (100 is added); with "
            "approval the steps below 100 come before it",
        ),
        _steps,
    ),
    "interval": (
        Param(
            10,
            type="integer",
            minimum=5,
            maximum=3600,
            description="canary: seconds each step is measured (the analysis window)",
        ),
        _integer("interval"),
    ),
    "p99_ms": (
        Param(
            500,
            type="integer",
            minimum=1,
            maximum=60000,
            description="SLO: p99 latency limit (ms), gate and steps",
        ),
        _integer("p99_ms"),
    ),
    "max_error_rate": (
        Param(
            0.01,
            type="number",
            minimum=0,
            maximum=1,
            description="SLO: largest share of failed requests, gate and steps",
        ),
        None,
    ),
    "min_rate": (
        Param(
            18,
            type="integer",
            minimum=0,
            maximum=20,
            description="gate: answered requests per second (of 20)",
        ),
        _integer("min_rate"),
    ),
    "load_rate": (
        Param(
            10,
            type="integer",
            minimum=0,
            maximum=200,
            description="synthetic requests per second to each judged revision during a window (0: real "
            "traffic only)",
        ),
        _integer("load_rate"),
    ),
    "metrics_url": (
        # Optional (null allowed): the form treats an empty required text field as missing.
        Param(
            None,
            type=["null", "string"],
            maxLength=500,
            pattern="^(https?://[^\\s]+)?$",
            description="where the metrics are: a Prometheus API URL, or a URL ending in /metrics read "
            "directly; empty: the kubernetes connection's ingress_address + /metrics (local_knative)",
        ),
        None,
    ),
    "approval": (
        Param(
            False, type="boolean", description="canary: a person approves the promotion (Required Actions)"
        ),
        lambda value: parse_bool(value, "approval"),
    ),
    "approval_timeout": (
        Param(
            3600,
            type="integer",
            minimum=10,
            maximum=MAX_APPROVAL_TIMEOUT,
            description="approval: seconds to wait for the answer, then reject (roll back)",
        ),
        _integer("approval_timeout"),
    ),
    "ab_split": (
        Param(50, type="integer", minimum=1, maximum=99, description="ab: B's percent of the traffic"),
        lambda value: check_percent(value, "ab_split"),
    ),
    "ab_window": (
        Param(
            30,
            type="integer",
            minimum=5,
            maximum=86400,
            description="ab: seconds the split is held and measured",
        ),
        _integer("ab_window"),
    ),
    "allow_older": (
        Param(
            False, type="boolean", description="roll out an older model on purpose (a rollback by rollout)"
        ),
        lambda value: parse_bool(value, "allow_older"),
    ),
    "attempt": (
        Param(
            0,
            type="integer",
            minimum=0,
            maximum=1000,
            description="raise it to retry a spec whose revision failed",
        ),
        _integer("attempt"),
    ),
    "rollback_now": (
        Param(
            False,
            type="boolean",
            description="deploy nothing: send all traffic back to the stable revision (after a promotion: "
            "the previous one)",
        ),
        lambda value: parse_bool(value, "rollback_now"),
    ),
}
PARAMS = {name: param for name, (param, _) in FIELDS.items()}


PATHS = ("rollout", "approval", "ab")
"""The rollout paths (each a TaskGroup of that id); check_params picks one per run."""


def _path(params: dict[str, Any]) -> str:
    if params["strategy"] == "ab":
        return "ab"
    return "approval" if params["approval"] else "rollout"


def _refuse(name: str, value: Any, reason: str) -> AirflowFailException:
    description = FIELDS[name][0].description if name in FIELDS else ""
    return AirflowFailException(
        f"Param {name!r} is invalid: {reason} (got {value!r}). {description}. "
        "Nothing was changed; trigger again with a valid value"
    )


def _metrics_source(url: str | None) -> dict[str, Any]:
    """Return the analysis' metrics source: the Param, else the Knative ingress' /metrics."""
    from knative_rollout.operators.analysis import metrics_source

    source = metrics_source(url)
    if source is None:
        raise _refuse(
            "metrics_url",
            url,
            "it is empty and the kubernetes_default connection has no 'ingress_address' extra to read "
            "/metrics from; give the Prometheus URL",
        )
    return source


def _analysis(params: dict[str, Any], window: int) -> dict[str, Any]:
    """Return the ``analysis`` mapping of one window (see knative_rollout.analysis.config)."""
    analysis: dict[str, Any] = {
        **_metrics_source(params["metrics_url"]),
        "window": window,
        "interval": max(1, window // 10),
        "slo": {"max_p99_latency": f"{params['p99_ms']}ms", "max_error_rate": params["max_error_rate"]},
    }
    if params["load_rate"]:
        # Not rendered by Jinja (the mapping travels as an XCom): the Service is filled in here.
        path = PREDICT_PATH.format(service=params["service_name"])
        analysis["load"] = {"rate": params["load_rate"], **PREDICT, "path": path}
    return analysis


with DAG(
    dag_id="manual_rollout",
    description="Roll out a model of your own from the UI form or REST: canary steps, approval or A/B",
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
        """Check every Param again (a REST trigger is not held to the form); build this run's plan."""
        import jsonschema

        from knative_rollout.analysis import AnalysisConfig

        checked = {}
        for name, (param, parse) in FIELDS.items():
            value = params.get(name)
            try:
                jsonschema.validate(value, param.schema)
                if parse is not None:
                    parse(value)
            except (jsonschema.ValidationError, ValueError) as error:
                raise _refuse(name, value, getattr(error, "message", str(error))) from None
            checked[name] = value
        if checked["approval"] and checked["strategy"] != "canary":
            raise _refuse("approval", True, "an approval is part of the canary strategy; set it false for ab")
        approval_steps = [step for step in checked["steps"] if step < 100]
        if checked["approval"] and not approval_steps:
            raise _refuse("steps", checked["steps"], "with approval, give at least one step below 100")
        path = "rollback" if checked["rollback_now"] else _path(checked)
        plan = {"path": path, "steps": checked["steps"], "approval_steps": approval_steps, "analysis": None}
        if path != "rollback":  # a rollback measures nothing, so it needs no metrics source
            window = checked["ab_window"] if path == "ab" else checked["interval"]
            plan["analysis"] = _analysis(checked, window)
            try:
                AnalysisConfig.of(plan["analysis"])
            except (TypeError, ValueError) as error:
                raise _refuse(
                    "metrics_url",
                    checked["metrics_url"],
                    f"the analysis built from the Params is refused: {error}",
                ) from None
        return plan

    # Short circuits rather than a branch: a short circuit skips everything after it whatever the trigger
    # rules, so the outcome tasks (trigger rule all_done) of the paths not taken do not run. The groups'
    # own run whatever happened (all_done) for the same reason: after a failed check_params they skip
    # their group instead of leaving its rollback and outcome to run; the run still fails, by the leaf
    # rollback_now (upstream_failed). They pass on the plan (an XCom per key) for their group to read, so
    # no task in a group hangs on check_params directly: it would be upstream_failed before the short
    # circuit could skip it.
    @task.short_circuit
    def takes(paths: list[str], after_bootstrap: bool = False, **context: Any) -> bool:
        """Go on (and pass on this run's plan) only when the plan takes one of ``paths``."""
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids="check_params")
        if plan is None or plan["path"] not in paths:
            return False
        if after_bootstrap and ti.xcom_pull(task_ids="bootstrap") is None:
            raise AirflowFailException("bootstrap did not succeed (its log says why); nothing was rolled out")
        for key, value in plan.items():
            ti.xcom_push(key=key, value=value)
        return True

    plan = check_params()
    chain(
        plan,
        takes.override(task_id="rollback_path")(["rollback"]),
        KnativeRollbackOperator(task_id="rollback_now", **TARGET, undo_promotion="{{ params.rollback_now }}"),
    )
    bootstrap = KnativeDeployRevisionOperator(
        task_id="bootstrap", **TARGET, **CANDIDATE, only_if_missing=True
    )
    chain(plan, takes.override(task_id="deploy_path")(list(PATHS)), bootstrap)

    def path_to(path: str) -> Any:
        """Return the short circuit into ``path``'s group, after the bootstrap."""
        taken = takes.override(task_id=f"{path}_path", trigger_rule=TriggerRule.ALL_DONE)([path], True)
        bootstrap >> taken
        return taken

    def locked_candidate(group_id: str) -> tuple[dict[str, Any], list[Any], str]:
        """Return the rollout's identity, its lock and 0% candidate tasks, and the candidate's template."""
        rollout = {**TARGET, "rollout_id": default_rollout_id(group_id)}
        lock = KnativeLockOperator(task_id="lock", **rollout, on_conflict="wait", lock_timeout=3600)
        deploy = KnativeDeployRevisionOperator(
            task_id="deploy_candidate",
            **rollout,
            **CANDIDATE,
            tag="candidate",
            traffic_percent=0,
            skip_if_unchanged=True,
            create_service=False,
        )
        revision = f"{{{{ ti.xcom_pull(task_ids='{deploy.task_id}')['revision'] }}}}"
        return rollout, [lock, deploy], revision

    def ending(rollout: dict[str, Any], steps: list[Any]) -> None:
        """Close a path: roll back when a step failed, then the outcome that says how it ended."""
        rollback = KnativeRollbackOperator(task_id="rollback", **rollout, trigger_rule=TriggerRule.ONE_FAILED)
        outcome = KnativeRolloutOutcomeOperator(
            task_id="outcome",
            **rollout,
            step_task_ids=[step.task_id for step in steps],
            deploy_task_id=steps[1].task_id,
            rollback_task_id=rollback.task_id,
        )
        chain(*steps)
        steps >> rollback >> outcome

    rollout_plan = path_to("rollout")
    with TaskGroup(group_id="rollout") as canary_path:
        rollout, steps, revision = locked_candidate("rollout")
        steps.append(
            LoadTestGateOperator(
                task_id="load_test",
                **TARGET,
                tag="candidate",
                revision=revision,
                rate=20,
                duration="5s",
                path=PREDICT_PATH.format(service=SERVICE),
                **PREDICT,
                expect_json_field="predictions",
                slo="p99<={{ params.p99_ms }}ms,error_rate<={{ params.max_error_rate }},"
                "achieved_rate>={{ params.min_rate }}",
            )
        )
        steps.append(
            KnativeCanaryRolloutOperator(
                task_id="canary",
                **rollout,
                **CANDIDATE,
                steps=rollout_plan["steps"],
                analysis=rollout_plan["analysis"],
            )
        )
        ending(rollout, steps)

    def approval_timeout(context: Any) -> None:
        """Give the approval this run's timeout (the operator takes a fixed one when the DAG is parsed)."""
        context["task"].response_timeout = timedelta(seconds=int(context["params"]["approval_timeout"]))

    approval_plan = path_to("approval")
    approval_path = canary_rollout_with_approval(
        group_id="approval",
        **TARGET,
        **CANDIDATE,
        steps=approval_plan["approval_steps"],
        analysis=approval_plan["analysis"],
        response_timeout=timedelta(seconds=MAX_APPROVAL_TIMEOUT),
        lock_duration="{{ params.approval_timeout + 600 }}",  # type: ignore[arg-type]
        approval_kwargs={"pre_execute": approval_timeout},
    )

    ab_plan = path_to("ab")
    with TaskGroup(group_id="ab") as ab_path:
        rollout, steps, revision = locked_candidate("ab")
        ab_test = KnativeABTestOperator(
            task_id="ab_test",
            **rollout,
            revision=revision,
            split="{{ params.ab_split }}",
            analysis=ab_plan["analysis"],
        )

        @task
        def b_wins(result: dict[str, Any]) -> dict[str, Any]:
            """Fail unless the A/B test named B the winner: only a better B is promoted."""
            if result["winner"] != "b":
                raise AirflowFailException(f"A/B test: {result['summary']}; B is not promoted")
            return result

        steps += [
            ab_test,
            b_wins(ab_test.output).operator,
            KnativePromoteOperator(task_id="promote", **rollout, revision=revision),
        ]
        ending(rollout, steps)

    for taken, group in ((rollout_plan, canary_path), (approval_plan, approval_path), (ab_plan, ab_path)):
        taken >> group
