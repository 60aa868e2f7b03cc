"""fleet_rollout refuses an analysis that could never decide before it touches any Service."""

from __future__ import annotations

from typing import Any

from knative_rollout.hooks import KnativeServingHook
from tests.conftest import REPO_ROOT


def test_too_little_synthetic_load_fails_the_run_before_any_bootstrap(
    run_dag: Any, kube_namespace: str
) -> None:
    conf = {
        "services": ["svc-a", "svc-b", "svc-c"],
        "namespace": kube_namespace,
        "metrics_url": "http://prometheus.invalid:9090",
        "analysis_window": 5,
        "load_rate": 2,  # 10 requests a window; the SLO check needs 20
    }
    source = (REPO_ROOT / "dags" / "fleet_rollout.py").read_text()
    result = run_dag("fleet_rollout", source=source, conf=conf)
    assert result.state == "failed", result
    assert result.task_states["analysis"] == "failed", result.task_states
    assert {"first.bootstrap", "rest.rollout"} <= set(result.task_states), result.task_states
    for task_id, state in result.task_states.items():
        if task_id.endswith((".bootstrap", ".rollout")):
            assert state == "upstream_failed", (task_id, state)
    assert result.task_states["summary"] == "failed", result.task_states
    hook = KnativeServingHook()
    assert [hook.find_service(name, kube_namespace) for name in conf["services"]] == [None, None, None]
