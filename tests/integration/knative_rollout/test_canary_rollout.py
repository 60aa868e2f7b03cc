"""KnativeCanaryRolloutOperator on local_knative: real echo/model pods, real load over sockets, live analysis.

Each test runs a DAG (``dag.test()``, so every analysis window is a real deferral whose trigger runs the
analysis) while a background thread sends open-model load through the ingress to the Service's route,
so the candidate gets its step's share of real requests. Metrics come from local_knative's ``/metrics``
(direct scrape) or from a real Prometheus scraping it.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_analysis_live import Prometheus

from knative_rollout.resources import state_from_annotations
from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ECHO = "registry.example.com/knative-rollout/echo"
MODEL = "registry.example.com/knative-rollout/model-server"
SERVICE = "echo"


class Load:
    """Open-model load on one Service's route (through the ingress), counted by answering revision."""

    def __init__(self, cluster: LocalKnative, namespace: str, *, rate: float = 40.0, path: str = "/") -> None:
        self.url = cluster.ingress_url + path
        self.host = f"{SERVICE}.{namespace}.{cluster.domain}"
        self.rate = rate
        self.answers: collections.Counter[tuple[str, int]] = collections.Counter()
        self.body: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def by_revision(self, revision: str) -> tuple[int, int]:
        """(answers, 5xx answers) from ``revision``."""
        answers = [(status, count) for (name, status), count in self.answers.items() if name == revision]
        return sum(c for _, c in answers), sum(c for s, c in answers if s >= 500)

    async def _one(self, session: aiohttp.ClientSession) -> None:
        try:
            method = "POST" if self.body is not None else "GET"
            async with session.request(
                method, self.url, json=self.body, headers={"Host": self.host}
            ) as answer:
                await answer.read()
                self.answers[(answer.headers.get("X-Revision", "?"), answer.status)] += 1
        except (aiohttp.ClientError, TimeoutError):
            self.answers[("?", 0)] += 1

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=timeout
        ) as session:
            started, index, pending = time.monotonic(), 0, set()
            while not self._stop.is_set():
                delay = started + index / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._one(session))
                pending.add(task)
                task.add_done_callback(pending.discard)
                index += 1
            await asyncio.gather(*pending)


def analysis(metrics_url: str, **extra: Any) -> dict[str, Any]:
    """Short windows of 1 s samples, read by direct scrape; the judge plus an SLO."""
    return {
        "scrape_urls": [metrics_url],
        "window": "8s",
        "interval": "1s",
        "slo": {"max_p99_latency": "200ms", "max_error_rate": 0.02, "min_requests": 20},
        **extra,
    }


def canary_dag(
    namespace: str, image: str, env: dict[str, str], analysis_args: dict[str, Any], **extra: Any
) -> list[tuple[str, str, dict[str, Any]]]:
    target = {"service_name": SERVICE, "namespace": namespace, "wait_timeout": 90}
    stable = {"image": f"{ECHO}:v1", "only_if_missing": True, **target}
    canary = {"image": image, "env": env, "steps": [20, 50], "analysis": analysis_args, **target, **extra}
    return [
        ("deploy_stable", "KnativeDeployRevisionOperator", stable),
        ("canary", "KnativeCanaryRolloutOperator", canary),
    ]


def service_state(cluster: Any, namespace: str) -> tuple[Any, list[tuple[str, int, str | None]]]:
    import json

    service = json.loads(cluster.kubectl("-n", namespace, "get", f"ksvc/{SERVICE}", "-o", "json"))
    served = [(t["revisionName"], t["percent"], t.get("tag")) for t in service["status"]["traffic"]]
    return state_from_annotations(service["metadata"]["annotations"]), served


def lease_holder(cluster: Any, namespace: str) -> str | None:
    import json

    lease = json.loads(cluster.kubectl("-n", namespace, "get", "leases", "-o", "json"))["items"]
    return (lease[0]["spec"].get("holderIdentity") or None) if lease else None


def test_good_canary_is_promoted_through_every_step_and_a_second_run_changes_nothing(
    run_dag: Any, cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    tasks = canary_dag(kube_namespace, f"{ECHO}:v2", {}, analysis(local_knative.metrics_url))
    with Load(local_knative, kube_namespace) as load:
        first = run_dag("canary_good", tasks)
    assert first.state == "success", first.task_states
    summary = first.results["canary"]
    stable = first.results["deploy_stable"]["revision"]
    candidate = summary["revision"]
    assert summary["promoted"] is True and summary["stable_revision"] == candidate
    assert summary["previous_stable_revision"] == stable
    assert [(step["percent"], step["verdict"]) for step in summary["steps"]] == [
        (20, "pass"),
        (50, "pass"),
        (100, "pass"),
    ]
    state, served = service_state(cluster, kube_namespace)
    assert served == [(candidate, 100, "stable")]
    assert (state.phase.value, state.rollout_revision) == ("Promoted", candidate)
    assert state.rollout_id and state.rollout_id.endswith("/canary")
    assert lease_holder(cluster, kube_namespace) is None, "the lock is released"
    # The candidate really answered its share of the load while it was judged.
    assert load.by_revision(candidate)[0] > 100 and load.by_revision(stable)[0] > 100
    history = [entry.action for entry in state.history]
    assert history[-4:] == ["CandidateDeployed", "TrafficSet", "TrafficSet", "Promoted"]

    before = cluster.snapshot(kube_namespace)
    second = run_dag("canary_good", tasks)
    assert second.state == "success", second.task_states
    assert second.results["canary"]["unchanged"] is True
    assert second.results["canary"]["promoted"] is False
    assert cluster.snapshot(kube_namespace) == before, "the second run wrote nothing"
    assert lease_holder(cluster, kube_namespace) is None


def test_slow_canary_is_rolled_back_at_the_first_analysis(
    run_dag: Any, cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    tasks = canary_dag(
        kube_namespace, f"{ECHO}:v2", {"ECHO_DELAY_MS": "250"}, analysis(local_knative.metrics_url)
    )
    with Load(local_knative, kube_namespace):
        outcome = run_dag("canary_slow", tasks)
    assert outcome.state == "failed", outcome.task_states
    assert outcome.task_states == {"deploy_stable": "success", "canary": "failed"}
    stable = outcome.results["deploy_stable"]["revision"]
    state, served = service_state(cluster, kube_namespace)
    assert served == [(stable, 100, "stable")]
    assert (state.phase.value, state.stable, state.candidate) == ("RolledBack", stable, None)
    # Rolled back at the first step: it never got more than 20%.
    assert [entry.action for entry in state.history][-3:] == ["Deploying", "CandidateDeployed", "RolledBack"]
    assert lease_holder(cluster, kube_namespace) is None


def test_no_traffic_is_inconclusive_and_never_promoted(
    run_dag: Any, cluster: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    tasks = canary_dag(
        kube_namespace,
        f"{ECHO}:v2",
        {},
        analysis(local_knative.metrics_url, window="4s"),
        max_inconclusive=1,
    )
    outcome = run_dag("canary_quiet", tasks)  # no load at all
    assert outcome.state == "failed", outcome.task_states
    stable = outcome.results["deploy_stable"]["revision"]
    state, served = service_state(cluster, kube_namespace)
    assert served == [(stable, 100, "stable")]
    assert state.phase.value == "RolledBack"
    assert state.history[-1].detail.startswith("all traffic back to")


@pytest.fixture(scope="module")
def prometheus(local_knative: LocalKnative, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the session local_knative every second."""
    binary = require_binary("prometheus")
    target = local_knative.metrics_url.split("//")[1].split("/")[0]
    server = Prometheus(binary, tmp_path_factory.mktemp("canary-prometheus"), target)
    try:
        server.wait_scraping()
        yield server.url
    finally:
        server.stop()


def test_erroring_model_is_rolled_back_with_prometheus(
    run_dag: Any,
    cluster: Any,
    local_knative: LocalKnative,
    kube_namespace: str,
    prometheus: str,
    tmp_path: Path,
) -> None:
    from model.train import train

    artifact = str(train(tmp_path / "artifacts", "v1", seed=0))
    target = {"service_name": SERVICE, "namespace": kube_namespace, "wait_timeout": 120}
    config = {
        "prometheus_url": prometheus,
        "window": "8s",
        "interval": "1s",
        "settle": "3s",
        "slo": {"max_error_rate": 0.02, "min_requests": 20},
    }
    tasks = [
        (
            "deploy_stable",
            "KnativeDeployRevisionOperator",
            {"image": f"{MODEL}:v1", "env": {"MODEL_URI": artifact}, **target},
        ),
        (
            "canary",
            "KnativeCanaryRolloutOperator",
            {
                "image": f"{MODEL}:v1",
                "env": {"MODEL_URI": artifact, "FAULT_ERROR_RATE": "0.3"},
                "steps": [25, 50],
                "analysis": config,
                **target,
            },
        ),
    ]
    load = Load(local_knative, kube_namespace, path=f"/v1/models/{SERVICE}:predict")
    load.body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    with load:
        outcome = run_dag("canary_errors", tasks)
    assert outcome.state == "failed", outcome.task_states
    stable = outcome.results["deploy_stable"]["revision"]
    state, served = service_state(cluster, kube_namespace)
    assert served == [(stable, 100, "stable")]
    assert state.phase.value == "RolledBack"
    assert [entry.action for entry in state.history][-2:] == ["CandidateDeployed", "RolledBack"]
    failing = state.rollout_revision
    assert failing and load.by_revision(failing)[1] > 0, "the candidate did answer 500s"
    assert load.answers[(stable, 200)] > 100, load.answers


def gate_dag(namespace: str, metrics_url: str, **gate: Any) -> list[tuple[str, str, dict[str, Any]]]:
    target = {"service_name": SERVICE, "namespace": namespace, "wait_timeout": 90}
    return [
        ("deploy_stable", "KnativeDeployRevisionOperator", {"image": f"{ECHO}:v1", **target}),
        (
            "deploy_candidate",
            "KnativeDeployRevisionOperator",
            {"image": f"{ECHO}:v2", "traffic_percent": 30, **target},
        ),
        ("analysis", "KnativeCanaryAnalysisOperator", {"analysis": analysis(metrics_url), **target, **gate}),
    ]


def test_analysis_gate_passes_an_identical_candidate_under_load(
    run_dag: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    with Load(local_knative, kube_namespace):
        outcome = run_dag("gate_pass", gate_dag(kube_namespace, local_knative.metrics_url))
    assert outcome.state == "success", outcome.task_states
    report = outcome.results["analysis"]
    assert report["verdict"] == "pass"
    assert report["canary"] == outcome.results["deploy_candidate"]["revision"]
    assert report["baseline"] == outcome.results["deploy_stable"]["revision"]
    assert report["judgement"]["classification"] == "pass"


def test_analysis_gate_fails_on_no_data(
    run_dag: Any, local_knative: LocalKnative, kube_namespace: str
) -> None:
    tasks = gate_dag(kube_namespace, local_knative.metrics_url)
    tasks[-1][2]["analysis"]["window"] = "3s"
    outcome = run_dag("gate_quiet", tasks)  # no load: inconclusive, which is not a pass
    assert outcome.task_states["analysis"] == "failed"
    assert outcome.task_states["deploy_candidate"] == "success"
