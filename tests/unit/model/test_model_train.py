"""Training the example model: speed, offline metrics, versioned immutable artifacts, the CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest
from sklearn import datasets

from model.artifact import ArtifactError, load_artifact
from model.train import next_version, train

INCLUDE_DIR = Path(__file__).resolve().parents[3] / "include"


@pytest.mark.parametrize(
    ("dataset", "n_features", "min_accuracy"), [("iris", 4, 0.9), ("breast_cancer", 30, 0.93)]
)
def test_train_is_fast_and_writes_artifact_with_sane_metrics(
    tmp_path: Path, dataset: str, n_features: int, min_accuracy: float
) -> None:
    started = time.perf_counter()
    artifact_dir = train(tmp_path, "v7", seed=1, dataset=dataset)
    elapsed = time.perf_counter() - started

    assert elapsed < 15, f"training took {elapsed:.1f}s; it must take seconds"
    assert artifact_dir == tmp_path / "v7"
    assert sorted(path.name for path in artifact_dir.iterdir()) == ["metadata.json", "model.joblib"]
    metadata = json.loads((artifact_dir / "metadata.json").read_text())
    assert metadata["version"] == "v7"
    assert metadata["dataset"] == dataset
    assert metadata["seed"] == 1
    assert metadata["n_features"] == n_features == len(metadata["feature_names"])
    metrics = metadata["metrics"]
    assert min_accuracy <= metrics["accuracy"] <= 1.0
    for name in ("f1_macro", "precision_macro", "recall_macro"):
        assert 0.8 <= metrics[name] <= 1.0, name
    total = len(getattr(datasets, f"load_{dataset}")().target)
    assert metrics["train_samples"] + metrics["test_samples"] == total
    assert metrics["test_samples"] == pytest.approx(total * 0.25, abs=1)


def test_same_seed_gives_same_model_and_metrics(tmp_path: Path) -> None:
    first, second = train(tmp_path, "a", seed=5), train(tmp_path, "b", seed=5)
    other_seed = train(tmp_path, "c", seed=6)
    features = datasets.load_iris().data

    first_model, second_model = joblib.load(first / "model.joblib"), joblib.load(second / "model.joblib")
    assert (first_model.predict_proba(features) == second_model.predict_proba(features)).all()
    metrics = [
        json.loads((path / "metadata.json").read_text())["metrics"] for path in (first, second, other_seed)
    ]
    assert metrics[0] == metrics[1]
    other_model = joblib.load(other_seed / "model.joblib")
    assert (first_model.predict_proba(features) != other_model.predict_proba(features)).any()


def test_versions_default_to_next_number_and_are_immutable(tmp_path: Path) -> None:
    assert next_version(tmp_path) == "v1"
    assert train(tmp_path).name == "v1"
    train(tmp_path, "v9")
    train(tmp_path, "v10-hotfix")  # not a plain vN: does not count
    assert train(tmp_path).name == "v10"

    before = (tmp_path / "v1" / "model.joblib").read_bytes()
    with pytest.raises(ArtifactError, match="already exists: versions are immutable"):
        train(tmp_path, "v1", seed=3)
    assert (tmp_path / "v1" / "model.joblib").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["v1", "v10", "v10-hotfix", "v9"]


@pytest.mark.parametrize("version", ["", "../escape", "a/b", ".hidden", "-dash", "v 1", "x" * 64, "v1\n"])
def test_invalid_version_is_refused_before_training(tmp_path: Path, version: str) -> None:
    with pytest.raises(ArtifactError, match="invalid model version"):
        train(tmp_path / "out", version)
    assert list((tmp_path / "out").iterdir()) == []


def test_unknown_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="unknown data set 'mnist': choose one of iris, breast_cancer"):
        train(tmp_path, dataset="mnist")


def test_trained_artifact_loads_back(tmp_path: Path) -> None:
    artifact = load_artifact(train(tmp_path, "v2"))
    assert artifact.version == "v2"
    assert artifact.n_features == 4
    assert artifact.model.predict([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]  # the first iris sample: a setosa


def test_cli_prints_metrics_and_artifact_path_last(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "model.train",
        "--output",
        str(tmp_path),
        "--version",
        "v3",
        "--seed",
        "2",
    ]
    result = subprocess.run(
        command, cwd=INCLUDE_DIR, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert Path(lines[-1]) == (tmp_path / "v3").resolve()
    reported = dict(line.strip().split(": ", 1) for line in lines if line.startswith("  "))
    assert float(reported["accuracy"]) >= 0.9, result.stdout
    assert set(reported) >= {"accuracy", "f1_macro", "precision_macro", "recall_macro"}

    again = subprocess.run(command, cwd=INCLUDE_DIR, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert again.stdout == ""


def test_relative_output_gives_an_absolute_artifact_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    artifact_dir = train("artifacts", "v1")
    assert artifact_dir.is_absolute()
    assert artifact_dir == tmp_path.resolve() / "artifacts" / "v1"
