"""LoadTestGateOperator in real Airflow (dag.test): pass, fail, inconclusive, a report it cannot write."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadtest_dag_runner import run_dag

from benchmarks.loadgen.stall_server import StallPattern, stall_server_process

DAG = """
import pendulum
from airflow.sdk import DAG
from knative_rollout.operators.loadtest import LoadTestGateOperator

with DAG("loadtest_gate", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
    LoadTestGateOperator(
        task_id="gate_passes",
        url="{url}",
        payloads_path="{payloads}",
        rate=100,
        duration="2s",
        slo="p50<=50ms,error_rate<=0.01,achieved_rate>=95",
        report_path="{reports}/pass/report.json",
        progress_interval="1s",
    )
    LoadTestGateOperator(
        task_id="gate_fails",
        url="{url}",
        rate=100,
        duration="2s",
        slo={{"p99": "<=100ms", "error_rate": 0.01}},
        report_path="file://{reports}/fail/{{{{ run_id | replace(':', '_') }}}}.json",
        retries=3,
    )
    # The report cannot be written (its folder would be under a file): a warning, the gate still passes.
    LoadTestGateOperator(
        task_id="gate_passes_unwritable_report",
        url="{url}",
        rate=50,
        duration="1s",
        slo="p50<=50ms,error_rate<=0.01",
        report_path="{blocker}/report.json",
    )
    # A server that takes connections and never answers: inconclusive, which fails the gate ...
    LoadTestGateOperator(
        task_id="gate_dead",
        url="{dead}",
        rate=20,
        duration="3s",
        timeout="1s",
        warmup=0,  # a warm-up would only wait for an answer that never comes
        slo="p99<=200ms",
        retries=3,
    )
    # ... unless asked otherwise; a templated "False" is false.
    LoadTestGateOperator(
        task_id="gate_dead_allowed",
        url="{dead}",
        rate=20,
        duration="1s",
        timeout="1s",
        warmup="0s",
        fail_on_inconclusive="{{{{ 'False' }}}}",
    )
"""


@contextmanager
def never_answering_server() -> Iterator[str]:
    """Listen on loopback and never accept or answer: the kernel completes connections, nothing replies."""
    with socket.create_server(("127.0.0.1", 0), backlog=512) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"


def test_gate_passes_and_fails_on_the_slo_with_reports_and_xcom(tmp_path: Path) -> None:
    reports, payloads = tmp_path / "reports", tmp_path / "payloads.jsonl"
    payloads.write_text('{"instances": [[1, 2]]}\n{"instances": [[3, 4]]}\n')
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with (
        stall_server_process(StallPattern(epoch=time.time(), period=2.0, stall=0.3)) as url,
        never_answering_server() as dead,
    ):
        source = DAG.format(url=url, reports=reports, payloads=payloads, blocker=blocker, dead=dead)
        outcome = run_dag(tmp_path, "loadtest_gate", source)
    tasks, xcom = outcome["tasks"], outcome["xcom"]
    assert tasks["gate_passes"]["state"] == "success"
    # AirflowFailException: failed at once although the task has retries left.
    assert tasks["gate_fails"] == {"state": "failed", "try_number": 1}
    assert "SLO failed: p99" in outcome["log"] and "violates p99<=100ms" in outcome["log"]
    assert "completed" in outcome["log"]  # progress lines reach the task log

    passed = xcom["gate_passes"]["loadtest"]
    assert xcom["gate_passes"]["return_value"] == passed
    assert passed["verdict"]["passed"] is True and passed["completed"] == 200
    assert {"p50", "p90", "p95", "p99", "p999", "max", "mean"} == set(passed["latency_ms"])
    assert "timeline" not in passed  # the XCom stays small; the report file has everything
    report = json.loads((reports / "pass" / "report.json").read_text())
    assert report["timeline"] and report["histograms"]["ok"]["count"] == 200
    assert report["config"]["payloads"] == 2
    assert (reports / "pass" / "report.png").read_bytes().startswith(b"\x89PNG")

    failed = xcom["gate_fails"]["loadtest"]
    assert [item["metric"] for item in failed["verdict"]["failed"]] == ["p99"]
    assert failed["verdict"]["failed"][0]["measured"] > 200
    saved = list((reports / "fail").iterdir())
    assert sorted(path.suffix for path in saved) == [".json", ".png"]
    assert failed["report"].startswith("file://") and failed["report"].endswith(".json")

    unwritable = xcom["gate_passes_unwritable_report"]["loadtest"]
    assert tasks["gate_passes_unwritable_report"]["state"] == "success"
    assert unwritable["verdict"]["passed"] is True and unwritable["report"] is None
    assert "FileExistsError" in unwritable["report_warning"]  # its folder would be a file
    assert "could not write the report to" in outcome["log"]

    assert tasks["gate_dead"] == {"state": "failed", "try_number": 1}
    dead = xcom["gate_dead"]["loadtest"]
    assert dead["verdict"]["outcome"] == "inconclusive" and dead["verdict"]["passed"] is False
    assert dead["completed"] == 0 and dead["timeouts"] == 60 and dead["achieved_rate"] == 0
    assert dead["latency_ms"]["p99"] >= 1000 and "p99" in dead["above_timeout"]
    # task_groups' outcome reads these messages to say why the rollout stopped.
    messages = [item["message"] for item in dead["verdict"]["failed"]]
    assert messages[0] == "no request of 60 was answered (60 timed out after 1s)"
    assert "gate inconclusive, so failed: no request of 60 was answered" in outcome["log"]

    assert tasks["gate_dead_allowed"]["state"] == "success"
    allowed = xcom["gate_dead_allowed"]["loadtest"]
    assert allowed["verdict"] | {"checks": None} == {
        "outcome": "inconclusive",
        "passed": True,
        "fail_on_inconclusive": False,
        "inconclusive": "no request of 20 was answered (20 timed out after 1s)",
        "failed": [],
        "checks": None,
    }
