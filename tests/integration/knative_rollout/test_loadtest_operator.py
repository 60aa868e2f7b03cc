"""LoadTestGateOperator in real Airflow (dag.test) against the stall server: pass, fail without retry."""

from __future__ import annotations

import json
import time
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
"""


def test_gate_passes_and_fails_on_the_slo_with_reports_and_xcom(tmp_path: Path) -> None:
    reports, payloads = tmp_path / "reports", tmp_path / "payloads.jsonl"
    payloads.write_text('{"instances": [[1, 2]]}\n{"instances": [[3, 4]]}\n')
    with stall_server_process(StallPattern(epoch=time.time(), period=2.0, stall=0.3)) as url:
        outcome = run_dag(tmp_path, "loadtest_gate", DAG.format(url=url, reports=reports, payloads=payloads))
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
    assert report["timeline"] and report["histogram"]["count"] == 200
    assert report["config"]["payloads"] == 2
    assert (reports / "pass" / "report.png").read_bytes().startswith(b"\x89PNG")

    failed = xcom["gate_fails"]["loadtest"]
    assert [item["metric"] for item in failed["verdict"]["failed"]] == ["p99"]
    assert failed["verdict"]["failed"][0]["measured"] > 200
    saved = list((reports / "fail").iterdir())
    assert sorted(path.suffix for path in saved) == [".json", ".png"]
    assert failed["report"].startswith("file://") and failed["report"].endswith(".json")
