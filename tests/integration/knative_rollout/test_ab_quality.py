"""KnativeABTestOperator on the example model's quality metric: the more accurate model wins.

Two revisions of the example model that differ only in the labels they were trained on (one with 70 %
of its training labels replaced at random), under the same synthetic load of labelled holdout rows
sent by the analysis itself: the A/B test reads each revision's ``/metrics`` through its tag URL at the
window's start and end and names the clean model the winner on accuracy (latency and errors equal).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_canary_rollout import MODEL, SERVICE

from local_knative.testing import LocalKnative
from model.data import BatchSpec, holdout, write_batch
from model.train import train_on_batch

pytestmark = pytest.mark.integration


def labelled_bodies(rows_per_body: int = 9) -> list[str]:
    """The iris holdout as predict bodies that carry each row's true class."""
    x, y = holdout("iris")
    return [
        json.dumps(
            {"instances": x[i : i + rows_per_body].tolist(), "labels": y[i : i + rows_per_body].tolist()}
        )
        for i in range(0, len(y), rows_per_body)
    ]


def test_the_more_accurate_model_wins_the_ab_test_on_accuracy(
    run_dag: Any, local_knative: LocalKnative, kube_namespace: str, tmp_path: Path
) -> None:
    artifacts = {
        noise: str(
            train_on_batch(write_batch(BatchSpec(label_noise=noise), tmp_path), tmp_path / "models", name)
        )
        for noise, name in ((0.7, "noisy"), (0.0, "clean"))
    }
    target = {"service_name": SERVICE, "namespace": kube_namespace, "wait_timeout": 120}
    load = {
        "rate": 15,
        "path": f"/v1/models/{SERVICE}:predict",
        "method": "POST",
        "headers": {"Content-Type": "application/json"},
        "bodies": labelled_bodies(),
        "ingress_address": local_knative.ingress_url,
    }
    config = {"scrape_urls": [local_knative.metrics_url], "window": "8s", "interval": "1s", "load": load}
    tasks = [
        (
            "deploy_a",
            "KnativeDeployRevisionOperator",
            {"image": f"{MODEL}:v1", "env": {"MODEL_URI": artifacts[0.7]}, **target},
        ),
        (
            "deploy_b",
            "KnativeDeployRevisionOperator",
            {"image": f"{MODEL}:v1", "env": {"MODEL_URI": artifacts[0.0]}, **target},
        ),
        (
            "ab",
            "KnativeABTestOperator",
            {"analysis": config, "split": 50, "quality_path": "/metrics", **target},
        ),
    ]
    outcome = run_dag("ab_quality", tasks)
    assert outcome.state == "success", outcome.task_states
    result = outcome.results["ab"]
    b = outcome.results["deploy_b"]["revision"]
    quality = result["quality"]
    assert quality["metric"] == "accuracy" and quality["classification"] == "High", quality
    # Each side's accuracy over the window is its accuracy on the holdout (every body was sent in turn).
    assert quality["canary"]["count"] > 200 and quality["baseline"]["count"] > 200, quality
    assert quality["canary"]["mean"] > 0.9 > 0.8 > quality["baseline"]["mean"], quality
    assert (result["winner"], result["winner_revision"]) == ("b", b), result["summary"]
    assert "accuracy" in result["summary"]
