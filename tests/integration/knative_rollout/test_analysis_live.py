"""Canary analysis on live metrics: real model pods on local_knative, load over sockets, both schemas.

For each metric schema local_knative can expose (``LOCAL_KNATIVE_METRICS_SCHEMA``), one module-scoped
scenario: a fresh local_knative, a real Prometheus (Debian ``prometheus``) scraping its ``/metrics``
every second, and one Service with four model revisions at 25 % each: the stable, an identical canary,
a canary 60 ms slower and one failing 20 % of predictions. First a window with no traffic, then 10 s of
open-model load through the route's host while a direct scraper reads ``/metrics`` too. The tests judge
that one run through the Prometheus API and through the direct scrape, and check the counts both read
against what the client saw (``X-Revision`` on every answer).
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from knative_rollout.analysis import (
    SLO,
    AnalysisResult,
    MetricsSchema,
    MetricsUnavailable,
    PrometheusProvider,
    RevisionWindow,
    ScrapeProvider,
    analyse,
    evaluate,
)
from knative_rollout.analysis.series import MetricsParseError
from knative_rollout.policy import Verdict
from local_knative.runtime import FAST_SCALING_ARGS
from local_knative.testing import LocalKnative
from model.train import train
from tests.conftest import REPO_ROOT, require_binary

pytestmark = pytest.mark.integration

TEMPLATE = REPO_ROOT / "include" / "manifests" / "knative-service.yaml"
NAMESPACE = "models"
SERVICE = "iris-classifier"
STABLE, SAME, SLOW, FAILING = (f"{SERVICE}-v{number}" for number in (1, 2, 3, 4))
FAULTS = {STABLE: {}, SAME: {}, SLOW: {"FAULT_LATENCY_MS": "60"}, FAILING: {"FAULT_ERROR_RATE": "0.2"}}
# 2000 requests over all four revisions, 500 for each to judge: at 200/s they take 10 s, not 20 s at 100/s.
RATE = 200.0  # requests per second over all four revisions
LOAD_SECONDS = 10.0
STEP = 2.0
SLO_LIMITS = SLO(max_p99_latency=0.05, max_error_rate=0.01)


@dataclass
class Scenario:
    """What one schema's run produced."""

    schema: MetricsSchema
    cluster: LocalKnative
    prometheus_url: str | None
    quiet: dict[str, AnalysisResult] = field(default_factory=dict)
    answers: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    sent: int = 0
    scraped: dict[str, RevisionWindow] = field(default_factory=dict)
    scrape_analysis: AnalysisResult | None = None
    load_started: float = 0.0
    load_ended: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A ``prometheus`` process scraping one target every second, on its own data directory."""

    def __init__(self, binary: str, directory: Path, target: str, extra_args: Sequence[str] = ()) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {"job_name": "local_knative", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_scraping(self, timeout: float = 60.0) -> None:
        """Wait until the target has been scraped successfully."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited:\n{self.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/query?query=up", timeout=5) as response:
                    result = json.load(response)["data"]["result"]
                if result and result[0]["value"][1] == "1":
                    return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(
            f"prometheus did not scrape local_knative within {timeout:.0f}s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def service_manifest(artifact: Path, revisions: list[str]) -> dict[str, Any]:
    """The template with the last of ``revisions`` as its template and traffic split evenly over all."""
    service = yaml.safe_load(TEMPLATE.read_text())
    service["metadata"]["namespace"] = NAMESPACE
    name = revisions[-1]
    template = service["spec"]["template"]
    template["metadata"]["name"] = name
    container = template["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]} | {"MODEL_URI": str(artifact)}
    container["env"] = [{"name": key, "value": value} for key, value in (env | FAULTS[name]).items()]
    share = 100 // len(revisions)
    percents = [share] * len(revisions)
    percents[0] += 100 - sum(percents)
    service["spec"]["traffic"] = [
        {"revisionName": revision, "percent": percent}
        for revision, percent in zip(revisions, percents, strict=True)
    ]
    return service


def wait_created(cluster: LocalKnative, revision: str, timeout: float = 30.0) -> None:
    """Wait until the controller made ``revision``: it makes one for the latest generation it sees only."""
    deadline = time.monotonic() + timeout
    path = f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/revisions/{revision}"
    while cluster.request("GET", path)[0] != 200:
        if time.monotonic() > deadline:
            pytest.fail(f"revision {revision} was not created within {timeout:.0f}s\n{cluster.output()}")
        time.sleep(0.05)


def wait_ready(cluster: LocalKnative, revision: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    path = f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/revisions/{revision}"
    while time.monotonic() < deadline:
        status, body = cluster.request("GET", path)
        conditions = (
            {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])} if status == 200 else {}
        )
        ready = conditions.get("Ready", {})
        if ready.get("status") == "True":
            return
        assert ready.get("status") != "False", f"{revision} failed: {ready}\n{cluster.output()}"
        time.sleep(0.3)
    pytest.fail(f"revision {revision} was not Ready within {timeout:.0f}s\n{cluster.output()}")


def deploy(cluster: LocalKnative, artifact: Path) -> None:
    status, body = cluster.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    assert status == 201, body
    base = f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/services"
    revisions: list[str] = []
    for revision in (STABLE, SAME, SLOW, FAILING):
        revisions.append(revision)
        manifest = service_manifest(artifact, revisions)
        if len(revisions) == 1:
            status, body = cluster.request("POST", base, manifest)
            assert status == 201, body
        else:
            status, current = cluster.request("GET", f"{base}/{SERVICE}")
            manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            status, body = cluster.request("PUT", f"{base}/{SERVICE}", manifest)
            assert status == 200, body
        wait_created(cluster, revision)
    # The four model servers start at once.
    for revision in revisions:
        wait_ready(cluster, revision)


async def open_model_load(cluster: LocalKnative, scenario: Scenario) -> None:
    """Send RATE requests a second for LOAD_SECONDS through the route's host, on schedule (open model)."""
    host = f"{SERVICE}.{NAMESPACE}.{cluster.domain}"
    url = f"{cluster.ingress_url}/v1/models/{SERVICE}:predict"
    body = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}

    async def one(session: aiohttp.ClientSession) -> None:
        async with session.post(url, json=body, headers={"Host": host}) as response:
            await response.read()
            scenario.answers[(response.headers.get("X-Revision", "?"), response.status)] += 1

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        started = time.monotonic()
        tasks = []
        for index in range(int(RATE * LOAD_SECONDS)):
            delay = started + index / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session)))
            scenario.sent += 1
        await asyncio.gather(*tasks)
    scenario.load_ended = time.time()


async def run_scenario(scenario: Scenario, scrape: ScrapeProvider) -> None:
    revisions = [STABLE, SAME, SLOW, FAILING]
    scrape_window = LOAD_SECONDS + 2 * STEP
    scenario.load_started = time.time()
    scraped, scrape_analysis, _ = await asyncio.gather(
        scrape.windows(namespace=NAMESPACE, revisions=revisions, window=scrape_window, step=STEP),
        analyse(
            scrape,
            namespace=NAMESPACE,
            canary=SLOW,
            baseline=STABLE,
            window=scrape_window,
            step=STEP,
            slo=SLO_LIMITS,
        ),
        open_model_load(scenario.cluster, scenario),
    )
    scenario.scraped = scraped
    scenario.scrape_analysis = scrape_analysis


@pytest.fixture(scope="module", params=list(MetricsSchema), ids=[schema.value for schema in MetricsSchema])
def scenario(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    schema: MetricsSchema = request.param
    root = tmp_path_factory.mktemp(f"analysis-{schema.value}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCAL_KNATIVE_METRICS_SCHEMA", schema.value)  # the server process inherits it
        cluster = LocalKnative.start(root / "cluster", extra_args=FAST_SCALING_ARGS)
    prometheus = None
    try:
        # Prometheus starts up while the model is trained and deployed; it scrapes all along.
        binary = shutil.which("prometheus")
        if binary is not None:
            prometheus = Prometheus(
                binary, root / "prometheus", cluster.metrics_url.split("//")[1].split("/")[0]
            )
        scenario = Scenario(schema, cluster, prometheus.url if prometheus else None)
        deploy(cluster, train(root / "artifacts", "v1", seed=0))
        if prometheus is not None:
            prometheus.wait_scraping()
            # No request has reached any revision yet: a window of silence.
            provider = PrometheusProvider(prometheus.url)
            for name in ("auto", schema.value):
                scenario.quiet[name] = asyncio.run(
                    analyse(
                        provider,
                        namespace=NAMESPACE,
                        canary=SAME,
                        baseline=STABLE,
                        window=6,
                        step=STEP,
                        slo=SLO_LIMITS,
                        schema=name,
                    )
                )
        asyncio.run(run_scenario(scenario, ScrapeProvider([cluster.metrics_url])))
        if prometheus is not None:
            # Two more scrapes after the last answer, so Prometheus holds the counts: the direct scrape's
            # window outlasts the load by two steps, so this is usually over already.
            time.sleep(max(0.0, scenario.load_ended + 3 - time.time()))
        yield scenario
    finally:
        if prometheus is not None:
            prometheus.stop()
        cluster.stop()


@pytest.fixture
def prometheus_url(scenario: Scenario) -> str:
    """Return the scenario's Prometheus URL; a missing ``prometheus`` binary skips, and fails in CI."""
    require_binary("prometheus")
    assert scenario.prometheus_url is not None
    return scenario.prometheus_url


def prometheus_window(scenario: Scenario) -> float:
    """Seconds from just before the load to now, in whole steps (so the last step is now)."""
    return math.ceil((time.time() - scenario.load_started + STEP) / STEP) * STEP


def analyse_with_prometheus(
    scenario: Scenario, url: str, canary: str, baseline: str | None = STABLE, **kwargs: Any
) -> AnalysisResult:
    return asyncio.run(
        analyse(
            PrometheusProvider(url),
            namespace=NAMESPACE,
            canary=canary,
            baseline=baseline,
            window=prometheus_window(scenario),
            step=STEP,
            slo=SLO_LIMITS,
            **kwargs,
        )
    )


def metric(result: AnalysisResult, name: str) -> str:
    assert result.judgement is not None
    return next(m.classification.value for m in result.judgement.metrics if m.spec.name == name)


def client_counts(scenario: Scenario, revision: str) -> tuple[int, int]:
    """(answers, 5xx answers) the client got from ``revision``."""
    answers = sum(count for (name, _), count in scenario.answers.items() if name == revision)
    errors = sum(
        count for (name, status), count in scenario.answers.items() if name == revision and status >= 500
    )
    return answers, errors


def test_every_request_was_answered_by_one_of_the_revisions(scenario: Scenario) -> None:
    assert sum(scenario.answers.values()) == scenario.sent == int(RATE * LOAD_SECONDS)
    assert {name for name, _ in scenario.answers} == {STABLE, SAME, SLOW, FAILING}
    for revision in (STABLE, SAME, SLOW, FAILING):
        answers, errors = client_counts(scenario, revision)
        assert 0.15 * scenario.sent < answers < 0.35 * scenario.sent, scenario.answers
        assert (errors > 0) == (revision == FAILING), scenario.answers


def test_no_traffic_is_inconclusive_never_a_pass(scenario: Scenario, prometheus_url: str) -> None:
    for name, result in scenario.quiet.items():
        assert result.verdict is Verdict.INCONCLUSIVE, (name, result.reason)
        assert result.judgement is not None and result.judgement.classification.value == "nodata"
        assert {check.verdict for check in result.slo_checks} == {Verdict.INCONCLUSIVE}
        assert result.totals[SAME]["requests"] == 0


def test_prometheus_counts_what_the_client_saw(scenario: Scenario, prometheus_url: str) -> None:
    windows = asyncio.run(
        PrometheusProvider(prometheus_url).windows(
            namespace=NAMESPACE,
            revisions=[STABLE, SAME, SLOW, FAILING],
            window=prometheus_window(scenario),
            step=STEP,
        )
    )
    for revision, window in windows.items():
        assert window.schema is scenario.schema, "auto-detected from the cluster's series"
        assert (window.total.requests, window.total.errors) == client_counts(scenario, revision)


def test_prometheus_identical_canary_passes(scenario: Scenario, prometheus_url: str) -> None:
    result = analyse_with_prometheus(scenario, prometheus_url, SAME)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.schema == scenario.schema.value
    assert metric(result, "latency_p99") == metric(result, "error_rate") == "Pass"
    json.dumps(result.to_dict())


def test_prometheus_slow_canary_fails_on_latency(scenario: Scenario, prometheus_url: str) -> None:
    result = analyse_with_prometheus(scenario, prometheus_url, SLOW, schema=scenario.schema.value)
    assert result.verdict is Verdict.FAIL, result.reason
    assert metric(result, "latency_p99") == "High"
    assert metric(result, "error_rate") == "Pass"
    p99 = next(check for check in result.slo_checks if check.name == "p99_latency")
    assert p99.verdict is Verdict.FAIL and p99.observed is not None and p99.observed > 0.06


def test_prometheus_failing_canary_fails_on_errors(scenario: Scenario, prometheus_url: str) -> None:
    result = analyse_with_prometheus(scenario, prometheus_url, FAILING)
    assert result.verdict is Verdict.FAIL, result.reason
    assert metric(result, "error_rate") == "High"
    assert result.judgement is not None and result.judgement.score == 0.0, "error rate is critical"
    errors = next(check for check in result.slo_checks if check.name == "error_rate")
    assert errors.verdict is Verdict.FAIL and 0.1 < (errors.observed or 0) < 0.3


def test_prometheus_without_a_baseline_checks_the_slo_only(scenario: Scenario, prometheus_url: str) -> None:
    result = analyse_with_prometheus(scenario, prometheus_url, SAME, baseline=None)
    assert result.verdict is Verdict.PASS and result.judgement is None and len(result.slo_checks) == 2


def test_direct_scrape_counts_what_the_client_saw(scenario: Scenario) -> None:
    for revision, window in scenario.scraped.items():
        assert window.schema is scenario.schema
        assert (window.total.requests, window.total.errors) == client_counts(scenario, revision)
        assert len(window.intervals) == round((LOAD_SECONDS + 2 * STEP) / STEP)


@pytest.mark.parametrize(
    ("canary", "verdict", "failing_metric"),
    [(SAME, Verdict.PASS, None), (SLOW, Verdict.FAIL, "latency_p99"), (FAILING, Verdict.FAIL, "error_rate")],
    ids=["identical", "slow", "failing"],
)
def test_direct_scrape_judges_like_prometheus(
    scenario: Scenario, canary: str, verdict: Verdict, failing_metric: str | None
) -> None:
    result = evaluate(scenario.scraped[canary], scenario.scraped[STABLE], slo=SLO_LIMITS)
    assert result.verdict is verdict, result.reason
    assert result.judgement is not None
    high = [m.spec.name for m in result.judgement.metrics if m.classification.value == "High"]
    assert high == ([failing_metric] if failing_metric else [])


def test_direct_scrape_analyse_runs_during_the_load(scenario: Scenario) -> None:
    result = scenario.scrape_analysis
    assert result is not None and result.verdict is Verdict.FAIL, result
    assert result.canary == SLOW and metric(result, "latency_p99") == "High"
    assert result.end - result.start == pytest.approx(LOAD_SECONDS + 2 * STEP, abs=1.5)


def test_prometheus_refusing_a_query_is_a_permanent_error(scenario: Scenario, prometheus_url: str) -> None:
    with pytest.raises(MetricsParseError, match="bad_data"):
        asyncio.run(PrometheusProvider(prometheus_url).query("sum(("))


def test_an_unreachable_source_is_a_temporary_error() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MetricsUnavailable, match="is it running"):
        asyncio.run(PrometheusProvider(closed, timeout=5).detect_schema())
    with pytest.raises(MetricsUnavailable, match="is it running"):
        asyncio.run(ScrapeProvider([f"{closed}/metrics"], timeout=5).scrape())
