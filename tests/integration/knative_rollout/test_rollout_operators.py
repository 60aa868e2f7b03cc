"""Rollout operators in DAGs run by dag.test() on a real local_knative: failures, retries."""

from __future__ import annotations

from typing import Any

import pytest
from task_context import task_context

from knative_rollout.hooks import KnativeServingHook
from knative_rollout.resources import state_from_annotations, traffic_keys

pytestmark = pytest.mark.integration

DEPLOY = "KnativeDeployRevisionOperator"
TRAFFIC = "KnativeSetTrafficOperator"
PROMOTE = "KnativePromoteOperator"
ROLLBACK = "KnativeRollbackOperator"
TEARDOWN = "KnativeTeardownOperator"


def _target(namespace: str, service: str = "echo") -> dict[str, Any]:
    return {"service_name": service, "namespace": namespace}


def _service(namespace: str, name: str = "echo") -> dict[str, Any]:
    return KnativeServingHook().get_service(name, namespace)


def echo(version: str, **kwargs: Any) -> dict[str, Any]:
    return {"image": f"registry.example.com/knative-rollout/echo:{version}", "wait_timeout": 90, **kwargs}


def _revisions(namespace: str) -> set[str]:
    return {item["metadata"]["name"] for item in KnativeServingHook().list_revisions("echo", namespace)}


def _served(service: dict[str, Any]) -> set[tuple[str, int, str | None]]:
    return set(traffic_keys(service["status"]["traffic"]))


def test_deploy_canary_on_its_tag_url_then_shift_and_promote(run_dag, kube_namespace, cluster) -> None:
    target = _target(kube_namespace)
    first = run_dag(
        f"canary_{kube_namespace}".replace("-", "_"),
        [
            ("v1", DEPLOY, {**target, **echo("v1")}),
            ("v2", DEPLOY, {**target, **echo("v2", traffic_percent=0)}),
        ],
    )
    assert first.state == "success", first.task_states
    v1, v2 = first.results["v1"]["revision"], first.results["v2"]["revision"]
    assert first.results["v1"]["stable_revision"] == v1
    assert first.results["v2"] == {
        "revision": v2,
        "url": f"http://echo.{kube_namespace}.example.com",
        "tag_url": f"http://candidate-echo.{kube_namespace}.example.com",
        "stable_revision": v1,
        "unchanged": False,
    }
    assert _served(_service(kube_namespace)) == {(v1, 100, "stable"), (v2, 0, "candidate")}
    # The candidate answers on its tag URL while all regular traffic still goes to v1.
    status, body = cluster.get(first.results["v2"]["tag_url"])
    assert status == 200 and v2 in body
    status, body = cluster.get(first.results["v2"]["url"])
    assert status == 200 and v1 in body

    second = run_dag(
        f"shift_{kube_namespace}".replace("-", "_"),
        [("ten", TRAFFIC, {**target, "traffic": {"@stable": 90, "@candidate": 10}})],
    )
    assert second.state == "success", second.task_states
    assert second.results["ten"]["traffic"] == {v1: 90, v2: 10}
    assert _served(_service(kube_namespace)) == {(v1, 90, "stable"), (v2, 10, "candidate")}

    third = run_dag(f"promote_{kube_namespace}".replace("-", "_"), [("promote", PROMOTE, target)])
    assert third.state == "success", third.task_states
    assert third.results["promote"]["stable_revision"] == v2
    assert third.results["promote"]["previous_stable_revision"] == v1
    service = _service(kube_namespace)
    assert _served(service) == {(v2, 100, "stable")}
    state = state_from_annotations(service["metadata"]["annotations"])
    assert (state.stable, state.previous_stable, state.candidate, state.phase.value) == (
        v2,
        v1,
        None,
        "Promoted",
    )
    # Both revisions are kept: the old stable is the rollback target.
    assert _revisions(kube_namespace) == {v1, v2}


def test_every_operator_retried_changes_nothing_twice(run_dag, kube_namespace, cluster) -> None:
    target = _target(kube_namespace)
    steps = [
        ("v1", DEPLOY, {**target, **echo("v1")}),
        ("v2", DEPLOY, {**target, **echo("v2", tag="canary", traffic_percent=10)}),
        ("fifty", TRAFFIC, {**target, "traffic": {"@stable": 50, "@candidate": 50}}),
        ("promote", PROMOTE, target),
        ("rollback", ROLLBACK, {**target, "undo_promotion": True}),
        ("teardown", TEARDOWN, {**target, "keep": 0}),
    ]
    # Each task runs twice in a row: the second run is what a retry does.
    tasks = [
        task
        for task_id, cls, kwargs in steps
        for task in ((task_id, cls, kwargs), (f"{task_id}_retry", cls, kwargs))
    ]
    result = run_dag(f"retry_{kube_namespace}".replace("-", "_"), tasks)
    assert result.state == "success", result.task_states
    for task_id, _, _ in steps:
        retried, first = result.results[f"{task_id}_retry"], result.results[task_id]
        if task_id == "v1":
            # A deploy of the first revision retried finds it stable and says so (v2, a candidate, resumes).
            assert retried.pop("unchanged") is True and first.pop("unchanged") is False
            assert "nothing to roll out" in retried.pop("reason") and retried.pop("tag_url")
            first.pop("tag_url")
        assert retried == first, task_id

    service = _service(kube_namespace)
    actions = [entry.action for entry in state_from_annotations(service["metadata"]["annotations"]).history]
    # Every write leaves one history entry: a retry that wrote again would show up twice.
    assert actions == [
        "Deploying",
        "Deployed",
        "Deploying",
        "CandidateDeployed",
        "TrafficSet",
        "Promoted",
        "RolledBack",
    ]
    v1 = result.results["v1"]["revision"]
    assert _served(service) == {(v1, 100, "stable")}

    before = cluster.snapshot(kube_namespace)
    again = run_dag(f"retry_again_{kube_namespace}".replace("-", "_"), [("rollback", ROLLBACK, target)])
    assert again.state == "success"
    assert cluster.snapshot(kube_namespace) == before


def test_rollback_after_promote_is_an_undo_only_when_asked(run_dag, kube_namespace) -> None:
    target = _target(kube_namespace)
    result = run_dag(
        f"undo_{kube_namespace}".replace("-", "_"),
        [
            ("v1", DEPLOY, {**target, **echo("v1")}),
            ("v2", DEPLOY, {**target, **echo("v2")}),
            ("promote", PROMOTE, target),
            # A phase left by a promotion is no evidence against it: a plain rollback keeps v2.
            ("keep", ROLLBACK, target),
            ("undo", ROLLBACK, {**target, "undo_promotion": "{{ 'True' }}"}),
        ],
    )
    assert result.state == "success", result.task_states
    v1, v2 = result.results["v1"]["revision"], result.results["v2"]["revision"]
    assert result.results["keep"]["stable_revision"] == v2
    assert result.results["undo"]["stable_revision"] == v1
    service = _service(kube_namespace)
    assert _served(service) == {(v1, 100, "stable")}
    state = state_from_annotations(service["metadata"]["annotations"])
    assert (state.stable, state.candidate, state.previous_stable) == (v1, None, None)
    assert v2 in _revisions(kube_namespace)


def test_rollback_during_canary_and_to_a_named_revision(run_dag, kube_namespace) -> None:
    target = _target(kube_namespace)
    result = run_dag(
        f"rollback_{kube_namespace}".replace("-", "_"),
        [
            ("v1", DEPLOY, {**target, **echo("v1")}),
            ("v2", DEPLOY, {**target, **echo("v2", traffic_percent=20)}),
            ("back", ROLLBACK, target),
            ("to_v2", ROLLBACK, {**target, "revision": "{{ ti.xcom_pull('v2')['revision'] }}"}),
        ],
    )
    assert result.state == "success", result.task_states
    v1, v2 = result.results["v1"]["revision"], result.results["v2"]["revision"]
    assert result.results["back"]["stable_revision"] == v1
    assert result.results["to_v2"]["stable_revision"] == v2
    state = state_from_annotations(_service(kube_namespace)["metadata"]["annotations"])
    assert (state.stable, state.previous_stable) == (v2, v1)


def test_teardown_keeps_n_and_never_deletes_a_revision_with_traffic(run_dag, kube_namespace) -> None:
    target = _target(kube_namespace)
    tasks: list[tuple[str, str, dict[str, Any]]] = [("v1", DEPLOY, {**target, **echo("v1")})]
    for version in ("v2", "v3", "v4"):
        tasks += [(version, DEPLOY, {**target, **echo(version)}), (f"promote_{version}", PROMOTE, target)]
    tasks += [
        ("v5", DEPLOY, {**target, **echo("v5", traffic_percent=10)}),
        ("teardown", TEARDOWN, {**target, "keep": 1}),
    ]
    result = run_dag(f"teardown_{kube_namespace}".replace("-", "_"), tasks)
    assert result.state == "success", result.task_states
    names = {version: result.results[version]["revision"] for version in ("v1", "v2", "v3", "v4", "v5")}
    # v4 is stable (90%), v5 the candidate (10%), v3 the rollback target; of v1 and v2 the newest one stays.
    assert result.results["teardown"] == {"deleted_revisions": [names["v1"]], "deleted_service": False}
    remaining = _revisions(kube_namespace)
    assert remaining == {names["v2"], names["v3"], names["v4"], names["v5"]}
    assert _served(_service(kube_namespace)) == {(names["v4"], 90, "stable"), (names["v5"], 10, "candidate")}


def test_teardown_deletes_the_service(run_dag, kube_namespace) -> None:
    target = _target(kube_namespace)
    result = run_dag(
        f"delete_{kube_namespace}".replace("-", "_"),
        [
            ("v1", DEPLOY, {**target, **echo("v1")}),
            ("delete", TEARDOWN, {**target, "delete_service": True}),
            ("delete_again", TEARDOWN, {**target, "delete_service": True}),
        ],
    )
    assert result.state == "success", result.task_states
    assert result.results["delete"] == {"deleted_revisions": [], "deleted_service": True}
    assert result.results["delete_again"] == {"deleted_revisions": [], "deleted_service": False}
    assert KnativeServingHook().find_service("echo", kube_namespace) is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"image": "registry.example.com/knative-rollout/nope:v1"}, "ContainerMissing"),
        (
            {"image": "registry.example.com/knative-rollout/echo:crash", "env": {"ECHO_FAIL_AT_START": "1"}},
            "ExitCode",
        ),
    ],
    ids=["unknown-image", "crashing-process"],
)
def test_a_failing_revision_leaves_traffic_untouched(run_dag, kube_namespace, bad, reason) -> None:
    target = _target(kube_namespace)
    good = run_dag(f"good_{kube_namespace}".replace("-", "_"), [("v1", DEPLOY, {**target, **echo("v1")})])
    assert good.state == "success", good.task_states
    v1 = good.results["v1"]["revision"]
    spec_before = _service(kube_namespace)["spec"]["traffic"]

    failed = run_dag(
        f"bad_{kube_namespace}".replace("-", "_"), [("bad", DEPLOY, {**target, "wait_timeout": 90, **bad})]
    )
    assert failed.task_states == {"bad": "failed"}
    service = _service(kube_namespace)
    assert service["spec"]["traffic"] == spec_before
    assert _served(service) == {(v1, 100, "stable")}
    state = state_from_annotations(service["metadata"]["annotations"])
    assert (state.stable, state.candidate, state.phase.value) == (v1, None, "Failed")
    assert state.history[-1].action == "RevisionFailed" and reason in state.history[-1].detail


def test_two_writers_racing_on_one_service_both_land(run_dag, kube_namespace) -> None:
    target = _target(kube_namespace)
    setup = run_dag(
        f"race_{kube_namespace}".replace("-", "_"),
        [("v1", DEPLOY, {**target, **echo("v1")}), ("v2", DEPLOY, {**target, **echo("v2")})],
    )
    assert setup.state == "success", setup.task_states
    first, second = KnativeServingHook(), KnativeServingHook()

    def label(key: str, interfere: bool) -> Any:
        calls = {"count": 0}

        def mutate(service: dict[str, Any]) -> dict[str, Any]:
            calls["count"] += 1
            if interfere and calls["count"] == 1:
                # The other writer gets in between this read and this write: a real 409 follows.
                second.update_service("echo", kube_namespace, label("second", interfere=False))
            service["metadata"].setdefault("labels", {})[f"race.test/{key}"] = str(calls["count"])
            return service

        return mutate

    _, written = first.update_service("echo", kube_namespace, label("first", interfere=True))
    assert written and first.conflicts == 1 and second.conflicts == 0
    labels = _service(kube_namespace)["metadata"]["labels"]
    assert labels["race.test/first"] == "2" and labels["race.test/second"] == "1"


def test_operators_racing_with_threads_both_end_correctly(run_dag, kube_namespace) -> None:
    import threading

    from knative_rollout.operators import KnativeSetTrafficOperator

    target = _target(kube_namespace)
    setup = run_dag(
        f"threads_{kube_namespace}".replace("-", "_"),
        [("v1", DEPLOY, {**target, **echo("v1")}), ("v2", DEPLOY, {**target, **echo("v2")})],
    )
    assert setup.state == "success", setup.task_states
    splits = [{"@stable": 70, "@candidate": 30}, {"@stable": 40, "@candidate": 60}]
    operators = [
        KnativeSetTrafficOperator(task_id=f"t{index}", traffic=split, deferrable=False, **target)
        for index, split in enumerate(splits)
    ]
    errors: list[BaseException] = []

    def run(operator: KnativeSetTrafficOperator) -> None:
        try:
            operator.execute(task_context())
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(operator,)) for operator in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    service = _service(kube_namespace)
    state = state_from_annotations(service["metadata"]["annotations"])
    # Both writes landed, in some order; the spec, the status and the recorded step agree on the last one.
    assert [entry.action for entry in state.history].count("TrafficSet") == 2
    last = state.history[-1].detail
    final = {(revision, percent) for revision, percent, _ in traffic_keys(service["spec"]["traffic"])}
    assert all(f"{revision}={percent}%" in last for revision, percent in final)
    assert state.step == dict(final)[setup.results["v2"]["revision"]]


def test_events_tell_the_story(run_dag, kube_namespace, cluster) -> None:
    target = _target(kube_namespace)
    result = run_dag(
        f"events_{kube_namespace}".replace("-", "_"),
        [
            ("v1", DEPLOY, {**target, **echo("v1")}),
            ("v2", DEPLOY, {**target, **echo("v2")}),
            ("p", PROMOTE, target),
        ],
    )
    assert result.state == "success", result.task_states
    described = cluster.kubectl("-n", kube_namespace, "describe", "ksvc", "echo")
    for reason in ("Deploying", "Deployed", "CandidateDeployed", "Promoted"):
        assert reason in described
