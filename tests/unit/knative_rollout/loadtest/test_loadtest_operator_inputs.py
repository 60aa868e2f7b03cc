"""LoadTestGateOperator's input errors, ingress resolution, and the in-cluster pod's command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from knative_rollout.exceptions import KnativeInputError
from knative_rollout.loadtest.cli import build_parser, config_from_args
from knative_rollout.operators.loadtest import (
    LoadTestGateOperator,
    load_test_cli_arguments,
    load_test_pod_operator,
)
from knative_rollout.resources import parse_bool


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either url or service_name"),
        ({"url": "http://a", "service_name": "svc", "tag": "t"}, "either url or service_name"),
        ({"service_name": "svc"}, "needs a tag"),
    ],
)
def test_target_must_be_url_or_service_and_tag(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(KnativeInputError, match=message):
        LoadTestGateOperator(task_id="gate", rate=10, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slo": "p99=200"}, "METRIC OP VALUE"),
        ({"slo": "p99<=200ms", "duration": "forever"}, "invalid duration"),
        ({"slo": "p99<=200ms", "rate": None}, "positive rate"),
        ({"slo": "p99<=200ms", "model": "spiral"}, "model must be"),
        ({"slo": "p99<=200ms", "ingress_address": "localhost"}, "needs a host and a port"),
        ({"fail_on_inconclusive": "abc"}, "fail_on_inconclusive must be true or false, got 'abc'"),
        ({"fail_on_inconclusive": 0}, "fail_on_inconclusive must be true or false, got 0"),
        ({"slo": "p99<=200ms", "warmup": "-5s"}, "invalid duration"),
    ],
)
def test_bad_parameters_fail_before_any_request(kwargs: dict[str, Any], message: str) -> None:
    operator = LoadTestGateOperator(task_id="gate", url="http://127.0.0.1:9/", **{"rate": 10, **kwargs})
    with pytest.raises(KnativeInputError, match=message):
        operator.execute({})  # fails on input, before the context is used


def test_payloads_come_from_bodies_or_a_file(tmp_path: Path) -> None:
    with pytest.raises(KnativeInputError, match="not both"):
        LoadTestGateOperator(task_id="gate", url="http://a", rate=1, bodies=["{}"], payloads_path="/x.jsonl")
    empty, lines = tmp_path / "empty.jsonl", tmp_path / "lines.jsonl"
    empty.write_text("\n")
    lines.write_text('{"instances": [[1]]}\n\n{"instances": [[2]]}\n')
    for path, message in (
        (tmp_path / "missing.jsonl", "cannot read payloads_path"),
        (empty, "no request bodies"),
    ):
        operator = LoadTestGateOperator(task_id="gate", url="http://a", rate=1, payloads_path=str(path))
        with pytest.raises(KnativeInputError, match=message):
            operator.build_config("http://a/", None)
    operator = LoadTestGateOperator(task_id="gate", url="http://a", rate=1, payloads_path=f"file://{lines}")
    assert operator.build_config("http://a/", None).bodies == (
        b'{"instances": [[1]]}',
        b'{"instances": [[2]]}',
    )


def test_ingress_is_used_when_given_or_when_the_host_does_not_resolve() -> None:
    direct = LoadTestGateOperator(task_id="gate", url="http://127.0.0.1:8080/", rate=1)
    assert direct.resolve_ingress("http://127.0.0.1:8080/") is None
    forced = LoadTestGateOperator(
        task_id="gate", url="http://x", rate=1, ingress_address="http://127.0.0.1:31380"
    )
    assert forced.resolve_ingress("http://candidate-model.ns.example.com") == "127.0.0.1:31380"
    config = forced.build_config("http://candidate-model.ns.example.com/v1", "127.0.0.1:31380")
    assert config.host == "candidate-model.ns.example.com" and config.connect_to == "127.0.0.1:31380"


def test_pod_runs_the_same_engine_with_arguments_the_cli_accepts() -> None:
    arguments = load_test_cli_arguments(
        url="http://model.team-a.svc.cluster.local/v1/models/model",
        host="candidate-model.team-a.example.com",
        rate=50,
        duration="60s",
        slo="p99<=200ms,error_rate<=0.01",
        headers={"Knative-Serving-Tag": "candidate"},
        warmup="0",
    )
    config = config_from_args(build_parser().parse_args(arguments))
    assert config.warmup_s == 0, "0 turns the warm-up off"
    default = load_test_cli_arguments(url="http://model.team-a.svc.cluster.local/", rate=5)
    assert config_from_args(build_parser().parse_args(default)).warmup_s == 30
    assert (config.url, config.host, config.rate, config.duration_s) == (
        "http://model.team-a.svc.cluster.local/v1/models/model",
        "candidate-model.team-a.example.com",
        50.0,
        60.0,
    )
    assert config.headers == (("Knative-Serving-Tag", "candidate"),)
    assert arguments[arguments.index("--slo") + 1] == "p99<=200ms,error_rate<=0.01"
    assert arguments[arguments.index("--json") + 1] == "/airflow/xcom/return.json"

    pod = load_test_pod_operator(
        task_id="gate_in_cluster",
        image="registry.example.com/knative-rollout/loadtest:0.1.0",
        namespace="team-a",
        arguments=arguments,
    )
    assert pod.cmds == ["python", "-m", "knative_rollout.loadtest"]
    assert pod.do_xcom_push is True and pod.arguments == arguments


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(True, True), (False, False), ("False", False), (" true ", True), ("0", False), ("YES", True)],
)
def test_fail_on_inconclusive_is_parsed_strictly(value: object, parsed: bool) -> None:
    assert parse_bool(value, "fail_on_inconclusive") is parsed


def test_pod_passes_an_inconclusive_gate_only_when_asked() -> None:
    strict = load_test_cli_arguments(url="http://model.team-a.svc.cluster.local/", rate=5)
    lenient = load_test_cli_arguments(
        url="http://model.team-a.svc.cluster.local/", rate=5, fail_on_inconclusive=False
    )
    assert "--allow-inconclusive" not in strict
    assert lenient[-1] == "--allow-inconclusive"
    assert build_parser().parse_args(lenient).allow_inconclusive is True
