"""The task group and the single task agree: the same candidates, analysis and load end the same way.

Each case is one DAG run (``dag.test()``) holding both forms, each on its own
Service in its own namespace: ``progressive_rollout(..., analysis=...)`` and
``KnativeCanaryRolloutOperator``, with the same echo candidate, the same analysis mapping and the same
open-model synthetic load (sent by the analysis itself, so no test thread shapes either side's traffic).
Both must take the same decision at every step, end at the same step with the same traffic, write the
same kinds of history and send the same alerts. With ``baseline=True`` both judge against a fresh baseline
and both delete it at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_canary_rollout import ECHO, Webhook, analysis, lease_holder, service_state

from knative_rollout.resources.baselines import BASELINE_OF_ANNOTATION
from local_knative.testing import LocalKnative

pytestmark = pytest.mark.integration

DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.notifiers import KnativeRolloutWebhookNotifier
from knative_rollout.operators import KnativeCanaryRolloutOperator, KnativeDeployRevisionOperator
from knative_rollout.task_groups import progressive_rollout

candidate = dict(image="{echo}:v2", env={env}, steps=[20, 50], analysis={analysis}, max_inconclusive=1,
                 baseline={baseline})

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         default_args={{"retries": 0}}) as dag:
    group = dict(service_name="echo", namespace="{group_namespace}", wait_timeout=90)
    KnativeDeployRevisionOperator(task_id="group_stable", image="{echo}:v1", **group) >> progressive_rollout(
        group_id="group", notifiers=[KnativeRolloutWebhookNotifier(url="{hook_url}")], **candidate, **group
    )
    task = dict(service_name="echo", namespace="{task_namespace}", wait_timeout=90)
    KnativeDeployRevisionOperator(task_id="task_stable", image="{echo}:v1", **task) >> (
        KnativeCanaryRolloutOperator(
            task_id="task", notifiers=[KnativeRolloutWebhookNotifier(url="{hook_url}")], **candidate, **task
        )
    )
"""


@pytest.fixture
def task_namespace(local_knative: LocalKnative, kube_namespace: str) -> Iterator[str]:
    """A second namespace, for the single task's Service (the group's is ``kube_namespace``)."""
    name = f"{kube_namespace}-task"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    status, answer = local_knative.request("POST", "/api/v1/namespaces", body)
    assert status == 201, answer
    yield name
    local_knative.request("DELETE", f"/api/v1/namespaces/{name}")


def decisions(xcom: dict[str, dict[str, Any]]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Return every analysis of each form as (percent, verdict): the group's steps, the task's summary."""
    group = [
        (entry["percent"], entry["verdict"])
        for percent in (20, 50, 100)
        for entry in (xcom.get(f"group.analysis_{percent}", {}).get("step") or {}).get("steps", [])
    ]
    task = [(step["percent"], step["verdict"]) for step in xcom["task"]["rollout"]["steps"]]
    return group, task


def history_kinds(cluster: Any, namespace: str, *, group: bool, baseline: bool) -> list[str]:
    """Return the kinds of the Service's history entries, oldest first.

    The group deploys its candidate at 0% (its tag URL first) and then shifts it to the first step; the
    single task deploys it at the first step. That one extra ``TrafficSet`` is the only difference the
    two forms may show, so it is taken out here. With a baseline there is none: the single task shifts
    again to give the baseline its share, as the group's first step does.
    """
    state, _ = service_state(cluster, namespace)
    kinds = [entry.action for entry in state.history]
    if group and not baseline:
        deployed = kinds.index("CandidateDeployed")
        assert kinds[deployed + 1] == "TrafficSet", kinds
        del kinds[deployed + 1]
    return kinds


def alerts(hook: Webhook, namespace: str) -> list[str]:
    return [body["event"] for body in hook.posted if body["namespace"] == namespace]


LOAD = {"rate": 25, "path": "/"}


def baselines(cluster: Any, namespace: str) -> list[str]:
    """Return the revisions in ``namespace`` made as a baseline (by their marker annotation)."""
    revisions = json.loads(cluster.kubectl("-n", namespace, "get", "revisions", "-o", "json"))["items"]
    return [
        item["metadata"]["name"]
        for item in revisions
        if BASELINE_OF_ANNOTATION in (item["metadata"].get("annotations") or {})
    ]


@pytest.mark.parametrize(
    ("env", "load", "verdicts", "sent", "baseline"),
    [
        pytest.param({}, True, [(20, "pass"), (50, "pass"), (100, "pass")], ["promoted"], False, id="good"),
        pytest.param(
            {}, True, [(20, "pass"), (50, "pass"), (100, "pass")], ["promoted"], True, id="good-baseline"
        ),
        pytest.param(
            {"ECHO_DELAY_MS": "250"},
            True,
            [(20, "fail")],
            ["analysis_failed", "rolled_back"],
            False,
            id="slow",
        ),
        pytest.param(
            {"ECHO_DELAY_MS": "250"},
            True,
            [(20, "fail")],
            ["analysis_failed", "rolled_back"],
            True,
            id="slow-baseline",
            marks=pytest.mark.full,  # make test-full; make test compares against a baseline in good-baseline
        ),
        # No traffic at all: inconclusive, measured once more (max_inconclusive=1), then rolled back.
        pytest.param(
            {},
            False,
            [(20, "inconclusive"), (20, "inconclusive")],
            ["rolled_back"],
            False,
            id="no-traffic",
            marks=pytest.mark.full,  # make test-full; the canary tests cover no traffic in make test
        ),
    ],
)
def test_task_group_and_single_task_end_the_same(
    run_dag: Any,
    local_knative: LocalKnative,
    kube_namespace: str,
    task_namespace: str,
    cluster: Any,
    env: dict[str, str],
    load: bool,
    verdicts: list[tuple[int, str]],
    sent: list[str],
    baseline: bool,
) -> None:
    promoted = sent == ["promoted"]
    config = analysis(
        local_knative.metrics_url,
        window="4s" if load else "3s",
        interval="800ms",
        **({"load": {**LOAD, "ingress_address": local_knative.ingress_url}} if load else {}),
    )
    hook = Webhook()
    source = DAG.format(
        echo=ECHO,
        env=json.dumps(env),
        analysis=json.dumps(config),
        baseline=baseline,
        dag_id="forms_agree",
        group_namespace=kube_namespace,
        task_namespace=task_namespace,
        hook_url=hook.url,
    )
    outcome = run_dag("forms_agree", source=source)
    states, xcom = outcome.task_states, outcome.xcom

    group, task = decisions(xcom)
    reasons = [(task_id, keys["step"]["reason"]) for task_id, keys in xcom.items() if "step" in keys]
    assert group == task == verdicts, (group, task, reasons, xcom.get("task", {}).get("rollout"))
    assert states["task"] == ("success" if promoted else "failed"), states
    assert states["group.outcome"] == states["task"], states
    assert states["group.promote"] == ("success" if promoted else "upstream_failed"), states
    assert states["group.rollback"] == ("skipped" if promoted else "success"), states

    for namespace, stable_task, deploy in (
        (kube_namespace, "group_stable", xcom["group.deploy_candidate"]["return_value"]),
        (task_namespace, "task_stable", xcom["task"]["rollout"]),
    ):
        stable = xcom[stable_task]["return_value"]["revision"]
        state, served = service_state(cluster, namespace)
        expected = deploy["revision"] if promoted else stable
        assert served == [(expected, 100, "stable")], (namespace, served)
        assert state.phase.value == ("Promoted" if promoted else "RolledBack")
        assert lease_holder(cluster, namespace) is None, "the lock is released"
    assert history_kinds(cluster, kube_namespace, group=True, baseline=baseline) == history_kinds(
        cluster, task_namespace, group=False, baseline=baseline
    )
    if baseline:
        # Both judged their compared steps against a baseline of their own, and deleted it at the end.
        compared = {percent for percent, _ in verdicts if percent < 100}
        group_against = {xcom[f"group.analysis_{p}"]["analysis"]["baseline"] for p in compared}
        task_against = {
            step["baseline"] for step in xcom["task"]["rollout"]["steps"] if step["percent"] < 100
        }
        stables = {
            xcom["group_stable"]["return_value"]["revision"],
            xcom["task_stable"]["return_value"]["revision"],
        }
        assert len(group_against) == len(task_against) == 1 and not (group_against | task_against) & stables
        assert baselines(cluster, kube_namespace) == baselines(cluster, task_namespace) == []
        for namespace in (kube_namespace, task_namespace):
            assert service_state(cluster, namespace)[0].baseline is None
    assert alerts(hook, kube_namespace) == alerts(hook, task_namespace) == sent, hook.posted
    rolled_back = [
        body["reason"]
        for body in hook.posted
        if body["event"] == "rolled_back" and body["namespace"] == kube_namespace
    ]
    if rolled_back:
        # The group's alert (its outcome's failure) says which step rolled the candidate back and why.
        assert f"group.analysis_20 judged the candidate {verdicts[-1][1]} at 20%" in rolled_back[0]
