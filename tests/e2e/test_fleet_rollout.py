"""dags/fleet_rollout.py on the Celery stack: five Services, at most two at once, a failure stops the fleet.

The session stack sets ``KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE=2`` (tests/e2e/conftest.py). The waves are
``fleet-0``, then ``fleet-1``, then ``fleet-2..4``. ``fleet-2`` exists, someone else's rollout holds its
Lease, and the API refuses every change to it (as RBAC would): its rollout waits for the Lease, holding one
of the two places. Once ``fleet-3``'s rollout holds the other, the test frees the Lease, and ``fleet-2``'s
rollout fails at its first write. ``fleet-4`` waited for a free place, and by then the fleet has stopped
(``max_failures`` 1): it must not start, while ``fleet-3``, already under way, is promoted.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from knative_rollout.resources import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    held_lease,
    lease_name,
    state_from_annotations,
)
from local_airflow import AirflowStack
from local_knative.testing import LocalKnative

pytestmark = pytest.mark.e2e

FLEET_TIMEOUT = 240.0
SERVICES = [f"fleet-{n}" for n in range(5)]
BROKEN = "fleet-2"
UNDER_WAY = "fleet-3"
NOT_STARTED = "fleet-4"
MAX_AT_ONCE = 2
STABLE_IMAGE = "registry.example.com/knative-rollout/echo:v1"


def _api(kubeconfig: Path) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))


def _service(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        _api(kubeconfig).get_namespaced_custom_object(
            "serving.knative.dev", "v1", namespace, "services", name
        )
    )


class FleetLeases:
    """Every 0.2 s, read the namespace's rollout Leases: which Services' Leases the fleet held.

    Once ``UNDER_WAY``'s Lease is the fleet's, the Lease of ``BROKEN`` (held by someone else) is deleted.
    """

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.api = client.CoordinationV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.namespace = namespace
        self.holders: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            leases = self.api.list_namespaced_lease(self.namespace).items
            held = {
                lease.metadata.name
                for lease in leases
                if lease.spec and (lease.spec.holder_identity or "").startswith("fleet_rollout/")
            }
            if lease_name(UNDER_WAY) in held and lease_name(UNDER_WAY) not in self.holders:
                self.api.delete_namespaced_lease(lease_name(BROKEN), self.namespace)
            self.holders |= held

    def __enter__(self) -> FleetLeases:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def peak_overlap(spans: list[tuple[str, str]]) -> int:
    """Return how many of the (start, end) spans (ISO times) overlapped at most."""
    edges = sorted((moment, change) for start, end in spans for moment, change in ((start, 1), (end, -1)))
    running = peak = 0
    for _, change in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += change
        peak = max(peak, running)
    return peak


def test_fleet_rolls_out_at_most_two_at_once_and_stops_after_a_failure(
    airflow_stack: AirflowStack, local_knative: LocalKnative, kube_namespace: str, kubeconfig_path: Path
) -> None:
    conf = {
        "services": SERVICES,
        "namespace": kube_namespace,
        "wave_percent": 25,
        "max_failures": 1,
        "analysis_window": 2,
        "load_rate": 20,
    }
    # BROKEN: managed and serving v1 (its bootstrap has nothing to do), its Lease someone else's, and
    # every change to it refused.
    _api(kubeconfig_path).create_namespaced_custom_object(
        "serving.knative.dev",
        "v1",
        kube_namespace,
        "services",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {
                "name": BROKEN,
                "namespace": kube_namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            },
            "spec": {"template": {"spec": {"containers": [{"image": STABLE_IMAGE}]}}},
        },
    )
    foreign = held_lease(
        None,
        service=BROKEN,
        namespace=kube_namespace,
        rollout_id="someone-else",
        duration_seconds=600,
        now=datetime.now(UTC),
    )
    client.CoordinationV1Api(
        config.new_client_from_config(config_file=str(kubeconfig_path))
    ).create_namespaced_lease(kube_namespace, foreign)
    forbidden = {
        "layer": "api",
        "namespaces": [kube_namespace],
        "names": [BROKEN],
        "resources": ["services"],
        "verbs": ["update", "patch"],
        "error": 403,
    }
    with local_knative.faults.injected(forbidden), FleetLeases(kubeconfig_path, kube_namespace) as leases:
        result = airflow_stack.run_dag("fleet_rollout", conf, timeout=FLEET_TIMEOUT)
    diagnostics = airflow_stack.diagnostics(result.dag_id, result.run_id)
    instances = airflow_stack.task_instances(result.dag_id, result.run_id)
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in instances if "." in ti["task_id"]}
    assert states == {
        **{
            (f"{wave}.{step}", 0): "success"
            for wave in ("first", "second", "rest")
            for step in ("bootstrap", "rollout")
        },
        ("rest.rollout", 0): "failed",  # BROKEN
        ("rest.bootstrap", 1): "success",
        ("rest.rollout", 1): "success",  # UNDER_WAY
        # The third waited for a free place; by then the fleet had stopped.
        ("rest.bootstrap", 2): "success",
        ("rest.rollout", 2): "skipped",
    }, diagnostics
    # Never more than the limit of rollout tasks (first start to end, deferrals included) at once, and the
    # limit was reached: the refused rollout waited for its Lease while the next one ran.
    spans = [
        (ti["start_date"], ti["end_date"])
        for ti in instances
        if ti["task_id"].endswith(".rollout") and ti["start_date"] and ti["end_date"]
    ]
    assert peak_overlap(spans) == MAX_AT_ONCE, (spans, diagnostics)
    assert NOT_STARTED not in {name.removesuffix("-rollout-lock") for name in leases.holders}, leases.holders
    # The refused rollout took the Lease (the test had deleted it), changed nothing and freed it: a rerun
    # need not wait for it to expire.
    broken_lease = leases.api.read_namespaced_lease(lease_name(BROKEN), kube_namespace)
    assert not broken_lease.spec.holder_identity, broken_lease
    # The run tells the truth: the summary (the leaf) failed, naming the failed and the unstarted Service.
    assert result.state == "failed", diagnostics
    assert result.task_states["summary"] == "failed", diagnostics
    assert result.task_states["gate_second"] == result.task_states["gate_rest"] == "success", diagnostics
    summary_log = airflow_stack.task_log(result.dag_id, result.run_id, "summary")
    assert f"rolled back or failed ['{BROKEN}'], not started ['{NOT_STARTED}']" in summary_log, summary_log
    skipped_log = airflow_stack.task_log(result.dag_id, result.run_id, "rest.rollout", map_index=2)
    assert f"the fleet stopped: 1 rollout(s) failed ({BROKEN}), the limit is 1" in skipped_log, skipped_log

    for name in SERVICES:
        service = _service(kubeconfig_path, kube_namespace, name)
        served = [
            (t["revisionName"], t["percent"], t.get("tag")) for t in service["status"].get("traffic", [])
        ]
        image = service["spec"]["template"]["spec"]["containers"][0]["image"]
        state = state_from_annotations(service["metadata"].get("annotations"))
        if name in (BROKEN, NOT_STARTED):
            # Untouched by a rollout: v1 as it was made, serving alone, no rollout recorded.
            assert image == STABLE_IMAGE, service
            assert [percent for _, percent, _ in served] == [100], (name, served)
            assert not state.rollout_id and not state.candidate, (name, state)
            continue
        assert image.endswith("echo:v2"), (name, image)
        assert served == [(state.stable, 100, "stable")], (name, served)
        assert state.previous_stable and state.previous_stable != state.stable, (name, state)
        # Each Service had a rollout of its own: the identity names its wave and map index.
        assert state.rollout_id and state.rollout_id.startswith(f"fleet_rollout/{result.run_id}/"), state


def test_fleet_run_twice_changes_nothing_and_two_runs_at_once_take_turns(
    airflow_stack: AirflowStack, kube_namespace: str, kubeconfig_path: Path
) -> None:
    services = [f"again-{n}" for n in range(3)]
    conf = {"services": services, "namespace": kube_namespace, "analysis_window": 2, "load_rate": 20}

    def served() -> dict[str, list[tuple[str, int, str | None]]]:
        return {
            name: [
                (t["revisionName"], t["percent"], t.get("tag"))
                for t in _service(kubeconfig_path, kube_namespace, name)["status"].get("traffic", [])
            ]
            for name in services
        }

    first = airflow_stack.run_dag("fleet_rollout", conf, timeout=FLEET_TIMEOUT)
    assert first.state == "success", airflow_stack.diagnostics(first.dag_id, first.run_id)
    after_first = served()
    # The same inputs again: nothing to roll out anywhere, production exactly as it was.
    again = airflow_stack.run_dag("fleet_rollout", conf, timeout=FLEET_TIMEOUT)
    assert again.state == "success", airflow_stack.diagnostics(again.dag_id, again.run_id)
    assert airflow_stack.xcom(again.dag_id, again.run_id, "summary")["unchanged"] == sorted(services)
    assert served() == after_first
    # Two runs of a newer image at once: each Service's Lease makes them take turns; one promotes it,
    # the other then finds nothing to roll out. Every Service ends on the new image, served alone.
    newer = {**conf, "image": "registry.example.com/knative-rollout/echo:v3"}
    run_ids = [airflow_stack.trigger("fleet_rollout", newer) for _ in range(2)]
    results = [airflow_stack.wait_for_run("fleet_rollout", run_id, FLEET_TIMEOUT) for run_id in run_ids]
    summaries = [airflow_stack.xcom(r.dag_id, r.run_id, "summary") for r in results]
    assert [r.state for r in results] == ["success", "success"], [
        airflow_stack.diagnostics(r.dag_id, r.run_id) for r in results
    ]
    for name in services:
        assert sorted(name in s["promoted"] for s in summaries) == [False, True], (name, summaries)
        service = _service(kubeconfig_path, kube_namespace, name)
        assert service["spec"]["template"]["spec"]["containers"][0]["image"].endswith("echo:v3")
        state = state_from_annotations(service["metadata"]["annotations"])
        assert served()[name] == [(state.stable, 100, "stable")], name
