"""The Rollouts page as an operations console, driven in a real headless Chromium against a real Airflow.

The session's Airflow stack (``airflow_stack``: the production topology, CeleryExecutor) runs the DAGs
of ``dags/`` against the session's local_knative. The browser is Debian's ``chromium`` driven by
Playwright's Python client (``executable_path``; no browser download). Not signed in, it is sent to
Airflow's login (the test stack's simple auth manager lets everyone in as admin, so no password is
typed) and back. It sees the page's own rollout form refuse a bad model URI, rolls a model out from
Airflow's trigger form of ``manual_rollout``, watches the page show the rollout in progress and then the
new stable with its load-test verdict, opens the history link to the DAG run that wrote an entry, and
presses "Roll back" to see the traffic return. Screenshots of every step land in the test's temporary
directory (its path is printed).

The same stack, over the REST API only: ``retrain_and_rollout``'s daily run bootstraps a Service;
``manual_rollout`` with steps out of order fails at ``check_params`` naming the field and writes nothing,
with good Params it rolls out a model of its own (its judged step deferred to the triggerer and
resumed); an asset event with half the labels broken then retrains on that event's batch, scores it
against the model ``manual_rollout`` deployed and stops at ``evaluate``. A better model promoted through
the gate and 10% -> 50% -> 100%, and the same batch again being "nothing to roll out", are
``test_retrain_dags``'s (``dag.test()``) and the demo's (``test_demo``, a real Airflow over REST).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_airflow import AirflowStack, AirflowStackError, DagRunResult, deferred_and_resumed
from local_knative.testing import LocalKnative
from tests.conftest import require, require_binary

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE = "/knative-rollout/"


RETRAIN_NAMESPACE = "retrain-e2e"


# Set for this module over the REST API; Variables are read when a task runs, not when the DAG is parsed.
VARIABLES = {"knative_rollout_namespace": RETRAIN_NAMESPACE}


@pytest.fixture(scope="module")
def console_stack(airflow_stack: AirflowStack, local_knative: LocalKnative) -> Iterator[AirflowStack]:
    """Return the session's Airflow stack with this module's namespace and Variables.

    Scheduled and asset-triggered runs of retrain_and_rollout take their namespace from the Variable
    ``knative_rollout_namespace`` (a namespace of this module's own). Afterwards the Variable is deleted
    and the DAG is paused again, so no later run of it (its schedule) lands in the other tests' stack.
    """
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RETRAIN_NAMESPACE}}
    status, body = local_knative.request("POST", "/api/v1/namespaces", namespace)
    assert status in (201, 409), body
    for key, value in VARIABLES.items():
        airflow_stack.api("POST", "/api/v2/variables", {"key": key, "value": value})
    try:
        yield airflow_stack
    finally:
        with contextlib.suppress(AirflowStackError):
            airflow_stack.api("PATCH", "/api/v2/dags/retrain_and_rollout", {"is_paused": True})
        for key in VARIABLES:
            airflow_stack.api("DELETE", f"/api/v2/variables/{key}")
        local_knative.request("DELETE", f"/api/v1/namespaces/{RETRAIN_NAMESPACE}")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Return a headless Chromium (Debian's) driven by Playwright."""
    chromium = require_binary("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


def _train(tmp_path: Path, version: str, seed: int) -> str:
    from model.train import train

    return str(train(tmp_path / "models", version=version, seed=seed))


def _served(local_knative: LocalKnative, namespace: str) -> list[tuple[str, int]]:
    """Return what the Service ``iris`` in ``namespace`` serves: (revision, percent)."""
    status, body = local_knative.request(
        "GET", f"/apis/serving.knative.dev/v1/namespaces/{namespace}/services/iris"
    )
    assert status == 200, body
    service = body if isinstance(body, dict) else json.loads(body)
    return [(target["revisionName"], target["percent"]) for target in service["status"]["traffic"]]


def _triggered_run(card: Any) -> str:
    """Wait for the action's answer on the card; return the run id it triggered (or fail with the answer)."""
    result = card.locator(".action-result")
    deadline = time.monotonic() + 30
    while "Triggered" not in result.inner_text() and "Refused" not in result.inner_text():
        assert time.monotonic() < deadline, f"the action did not answer: {result.inner_text()!r}"
        time.sleep(0.2)
    assert "Triggered" in result.inner_text(), result.inner_text()
    return card.locator("a.triggered-run").inner_text().removeprefix("manual_rollout run ")


def _runs(stack: AirflowStack) -> list[dict[str, Any]]:
    return list(stack.api("GET", "/api/v2/dags/manual_rollout/dagRuns?limit=100")["dag_runs"])


def _new_run(stack: AirflowStack, before: set[str]) -> str:
    """Wait for a run of manual_rollout that is not in ``before``; return its id."""
    deadline = time.monotonic() + 30
    while True:
        new = [run["dag_run_id"] for run in _runs(stack) if run["dag_run_id"] not in before]
        if new:
            return str(new[0])
        assert time.monotonic() < deadline, "the trigger form started no run"
        time.sleep(0.5)


def _wait_for_text(page: Any, pattern: str, timeout: float) -> str:
    """Reload the page until its text matches ``pattern``; return the text."""
    deadline = time.monotonic() + timeout
    while True:
        text = page.inner_text("body")
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {pattern!r}; it shows:\n{text[:3000]}")
        time.sleep(0.5)
        page.reload()


def test_console_rolls_out_shows_progress_links_runs_and_rolls_back(
    console_stack: AirflowStack,
    browser: Any,
    local_knative: LocalKnative,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")
    v1, v2 = _train(tmp_path, "v1", seed=0), _train(tmp_path, "v2", seed=1)
    # The Service's first model, over the REST API (the way a pipeline would): manual_rollout bootstraps it.
    first = console_stack.run_dag(
        "manual_rollout", {"service_name": "iris", "namespace": kube_namespace, "model_uri": v1}, timeout=180
    )
    assert first.state == "success", first.task_states
    old = _served(local_knative, kube_namespace)[0][0]

    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Roll back ... now?"
    # Not signed in: the page sends the browser to Airflow's login, which comes back to it.
    page.goto(f"{console_stack.api_url}{PAGE}?namespace={kube_namespace}")
    page.wait_for_selector("h1:has-text('Knative rollouts')", timeout=30_000)
    assert page.url.startswith(f"{console_stack.api_url}{PAGE}"), page.url
    page.screenshot(path=str(shots / "1-stable.png"), full_page=True)
    card = page.locator("section.card[data-service='iris']")
    assert card.locator(".phase").inner_text() in ("Stable", "Promoted")
    assert card.locator("table.revisions").inner_text().count("v1") == 1

    # A bad model URI from the page's "Roll out a model" form: Airflow refuses the run (the DAG's Params).
    card.locator("form.rollout input[name='model_uri']").fill("relative/path")
    card.locator("form.rollout button[type='submit']").click()
    refused = card.locator(".action-result.error")
    refused.wait_for(timeout=30_000)
    assert "manual_rollout refused the request" in refused.inner_text()
    assert "model_uri" in refused.inner_text()

    # Roll out v2 from Airflow's own trigger form for manual_rollout (its Params as fields).
    before = {run["dag_run_id"] for run in _runs(console_stack)}
    ui = browser.new_page(viewport={"width": 1400, "height": 1000})
    ui.goto(f"{console_stack.api_url}/dags/manual_rollout")
    ui.get_by_role("button", name="Trigger").first.click()
    ui.locator("#element_namespace").fill(kube_namespace)
    ui.locator("#element_model_uri").fill(v2)
    # A generous gate: this test is about the console, and the shared test machine may be busy.
    p99 = ui.locator('[id="number-input:element_p99_ms:inc"]').get_attribute("aria-controls")
    ui.locator(f'[id="{p99}"]').fill("60000")
    # Each of the three steps judged for the shortest window the form allows (5 s, not the default 10 s):
    # the page shows the rollout in progress for the gate and the steps all the same.
    interval = ui.locator('[id="number-input:element_interval:inc"]').get_attribute("aria-controls")
    ui.locator(f'[id="{interval}"]').fill("5")
    ui.screenshot(path=str(shots / "2-trigger-form.png"), full_page=True)
    ui.locator("[data-testid='trigger-dag-submit']").click()
    run_id = _new_run(console_stack, before)
    ui.close()
    text = _wait_for_text(page, r"Rollout in progress .*manual_rollout/" + re.escape(run_id), timeout=120)
    assert "lock held by" in text
    page.screenshot(path=str(shots / "3-in-progress.png"), full_page=True)
    result = console_stack.wait_for_run("manual_rollout", run_id, timeout=240)
    assert result.state == "success", result.task_states
    new = _served(local_knative, kube_namespace)[0][0]
    assert new != old
    page.reload()
    card = page.locator("section.card[data-service='iris']")
    assert card.locator(".phase").inner_text() == "Promoted"
    assert new in card.locator("table.state").inner_text()
    assert "lock free" in card.locator("p.rollout").inner_text()
    # The rollout's load-test gate, read from its XCom: what it measured and its verdict.
    gate = card.locator("p.gate").inner_text()
    assert "Load test (rollout.load_test)" in gate and "SLO passed" in gate, gate
    # Its latency plot, an inline SVG drawn from the same XCom, is rendered with a bar per percentile.
    plot = card.locator(".load-test-plot svg.chart")
    assert plot.is_visible() and plot.bounding_box()["width"] > 100, plot.bounding_box()
    assert plot.locator("rect").count() == 6
    page.screenshot(path=str(shots / "4-promoted.png"), full_page=True)

    # The history names who wrote each entry and links to that DAG run in the Airflow UI.
    promoted_entry = card.locator("table.history tr.history-row", has_text="Promoted").first
    link = promoted_entry.locator("a.run-link")
    assert run_id in link.inner_text()
    link.click()
    page.wait_for_url(re.compile(r"/dags/manual_rollout/runs/"), timeout=30_000)
    page.wait_for_selector("text=rollout", timeout=30_000)
    page.screenshot(path=str(shots / "5-dag-run.png"), full_page=True)

    # Roll back now: a manual_rollout run with rollback_now; traffic returns to v1.
    page.goto(f"{console_stack.api_url}{PAGE}?namespace={kube_namespace}")
    card = page.locator("section.card[data-service='iris']")
    card.locator("button.rollback").click()
    back_id = _triggered_run(card)
    back = console_stack.wait_for_run("manual_rollout", back_id, timeout=180)
    assert back.state == "success", back.task_states
    assert back.task_states["rollback_now"] == "success"
    assert _served(local_knative, kube_namespace) == [(old, 100)]
    page.reload()
    text = page.locator("section.card[data-service='iris']").inner_text()
    assert "RolledBack" in text and f"all traffic back to {old}" in text
    page.screenshot(path=str(shots / "6-rolled-back.png"), full_page=True)


def _next_run(stack: AirflowStack, before: set[str], timeout: float = 60) -> dict[str, Any] | None:
    """Wait up to ``timeout`` seconds for a run of retrain_and_rollout not in ``before``; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = stack.api("GET", "/api/v2/dags/retrain_and_rollout/dagRuns?limit=100")["dag_runs"]
        new = [run for run in runs if run["dag_run_id"] not in before]
        if new:
            before.add(new[0]["dag_run_id"])
            return dict(new[0])
        time.sleep(0.5)
    return None


def _asset_run(stack: AirflowStack, asset_id: int, extra: dict[str, Any], before: set[str]) -> Any:
    """Post an asset event with ``extra`` over REST and wait for the retrain run it starts."""
    stack.api("POST", "/api/v2/assets/events", {"asset_id": asset_id, "extra": extra})
    run = _next_run(stack, before)
    assert run is not None, "the asset event started no run of retrain_and_rollout"
    assert run["run_type"] == "asset_triggered", run
    return stack.wait_for_run("retrain_and_rollout", run["dag_run_id"], timeout=300)


def _cluster_record(local_knative: LocalKnative, namespace: str) -> dict[str, Any]:
    """Return what a rollout writes in ``namespace``: the Service's spec and state, revisions, leases."""
    found = {}
    for kind, path in (
        ("services", "/apis/serving.knative.dev/v1/namespaces/{}/services"),
        ("revisions", "/apis/serving.knative.dev/v1/namespaces/{}/revisions"),
        ("leases", "/apis/coordination.k8s.io/v1/namespaces/{}/leases"),
    ):
        status, body = local_knative.request("GET", path.format(namespace))
        assert status == 200, body
        items = (body if isinstance(body, dict) else json.loads(body))["items"]
        found[kind] = {
            item["metadata"]["name"]: (
                item["metadata"].get("generation"),
                item["metadata"].get("annotations"),
                item.get("spec"),
            )
            for item in items
        }
    return found


def _deferred(stack: AirflowStack, result: DagRunResult) -> list[str]:
    """Return the tasks of a finished run whose logs show they deferred and the triggerer fired them."""
    return [
        task_id
        for task_id in result.task_states
        if deferred_and_resumed(stack.task_log_events(result.dag_id, result.run_id, task_id))
    ]


# Four DAG runs in a row (85 s on 2 cores at load 5): a busier machine may need more than the default 300 s.
@pytest.mark.timeout(900)
def test_retrain_on_new_data_stops_a_worse_model_and_manual_rollout_checks_its_params_over_rest(
    console_stack: AirflowStack, local_knative: LocalKnative, tmp_path: Path
) -> None:
    from model.data import BatchSpec, write_batch
    from model.train import train_on_batch

    console_stack.wait_for_dag("retrain_and_rollout")
    seen: set[str] = set()
    console_stack.api("PATCH", "/api/v2/dags/retrain_and_rollout", {"is_paused": False})
    # Unpaused, Airflow 3.3 starts the latest daily run at once: it trains on the day's batch and,
    # nothing serving yet, deploys that model as the Service.
    scheduled = _next_run(console_stack, seen, timeout=30)
    assert scheduled is not None and scheduled["run_type"] == "scheduled", scheduled
    daily = console_stack.wait_for_run("retrain_and_rollout", scheduled["dag_run_id"], timeout=300)
    assert daily.state == "success", daily.task_states
    assert daily.task_states["bootstrap"] == "success"
    [asset] = console_stack.api("GET", "/api/v2/assets?name_pattern=iris_training_data")["assets"]

    # manual_rollout over REST, which is not held to the form's checks: steps out of order pass the
    # Params' JSON schema, so only check_params stops them, naming the field, before anything is written.
    target = {"service_name": "iris", "namespace": RETRAIN_NAMESPACE}
    # A model rolled out by hand, trained on a clean batch: the broken retrain below scores worse.
    spec = BatchSpec(batch=3, label_noise=0.0)
    by_hand_model = str(train_on_batch(write_batch(spec, tmp_path / "data"), tmp_path / "models", spec.name))
    before = _cluster_record(local_knative, RETRAIN_NAMESPACE)
    refused = console_stack.run_dag(
        "manual_rollout", {**target, "model_uri": by_hand_model, "steps": [50, 20]}, timeout=120
    )
    assert refused.state == "failed", refused.task_states
    assert refused.task_states["check_params"] == "failed", refused.task_states
    # Besides check_params only the short circuits ran (trigger rule all_done), to skip their paths.
    ran = [task for task, state in refused.task_states.items() if state not in ("skipped", "upstream_failed")]
    assert all(task == "check_params" or task.endswith("_path") for task in ran), refused.task_states
    log = console_stack.task_log("manual_rollout", refused.run_id, "check_params")
    assert "Param 'steps' is invalid" in log and "Nothing was changed" in log, log
    assert _cluster_record(local_knative, RETRAIN_NAMESPACE) == before

    # The same over REST with good Params: one judged step straight to 100% for 10 s, a window long
    # enough that the canary task defers it to the triggerer (analysis.wait_for_analysis). A generous p99
    # (a loaded test machine answered in 10 s): the step is about the deferral, not the latency.
    good = {**target, "model_uri": by_hand_model, "steps": [100], "interval": 10, "p99_ms": 60000}
    manual = console_stack.run_dag("manual_rollout", good, timeout=240)
    assert manual.state == "success", manual.task_states
    by_hand = console_stack.xcom("manual_rollout", manual.run_id, "rollout.deploy_candidate")["revision"]
    assert _served(local_knative, RETRAIN_NAMESPACE) == [(by_hand, 100)]
    # Deferred in one worker, fired in the triggerer, resumed (and finished) in another worker.
    assert "rollout.canary" in _deferred(console_stack, manual), manual.task_states
    assert manual.task_states["rollout.canary"] == "success"

    # New data with half the labels broken, posted over REST: the asset event starts a retrain on that
    # event's batch, which scores it against the model manual_rollout deployed and stops at the offline
    # evaluation, green, with nothing published or rolled out.
    worse = _asset_run(console_stack, asset["id"], {"batch": 2, "label_noise": 0.5}, seen)
    assert worse.state == "success", worse.task_states
    assert worse.task_states["publish"] == worse.task_states["rollout.outcome"] == "skipped"
    decision = console_stack.xcom("retrain_and_rollout", worse.run_id, "evaluate")
    assert decision["roll_out"] is False, decision
    assert (decision["candidate_version"], decision["serving_version"]) == ("iris-b2-n50-d0", spec.name)
    assert _served(local_knative, RETRAIN_NAMESPACE) == [(by_hand, 100)]
