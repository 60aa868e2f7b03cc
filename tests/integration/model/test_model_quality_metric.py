"""The model server's quality metric: labelled predictions counted correct/incorrect on /metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
import joblib
from sklearn import datasets

from knative_rollout.analysis.series import parse_exposition
from model.testing import ModelServer


async def test_labelled_predictions_are_counted_by_outcome_per_revision(
    start_model_server: Callable[..., ModelServer], model_artifact: Path
) -> None:
    server = start_model_server({"K_REVISION": "iris-00007"}).wait_listening()
    iris = datasets.load_iris()
    rows, truth = iris.data.tolist(), iris.target.tolist()
    labels = [(label + 1) % 3 if index % 10 == 0 else label for index, label in enumerate(truth)]
    predicted = joblib.load(model_artifact / "model.joblib").predict(rows).tolist()
    correct = sum(p == label for p, label in zip(predicted, labels, strict=True))
    url = f"{server.url}/v1/models/model:predict"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"instances": rows, "labels": labels}) as answer:
            assert answer.status == 200, await answer.text()
        async with session.post(url, json={"instances": rows}) as answer:  # no labels: not counted
            assert answer.status == 200
        async with session.post(url, json={"instances": rows[:2], "labels": [0]}) as answer:
            assert answer.status == 400
            assert "'labels' must be a list of 2 class numbers" in (await answer.json())["error"]
        async with session.get(f"{server.url}/metrics") as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await answer.text()
    # Read by the product's own parser, as an analysis would.
    samples = {sample.label("outcome"): sample for sample in parse_exposition(text, time=0).samples}
    assert (samples["correct"].value, samples["incorrect"].value) == (correct, len(rows) - correct)
    assert 0 < len(rows) - correct < len(rows) / 5
    assert {sample.label("revision_name") for sample in samples.values()} == {"iris-00007"}
    assert len({sample.label("server_id") for sample in samples.values()}) == 1
