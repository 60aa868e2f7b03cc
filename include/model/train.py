"""Train the example classifier on a data set bundled with scikit-learn and write a versioned artifact.

Run ``python -m model.train --output DIR [--version V] [--seed N] [--dataset iris|breast_cancer]``; the
artifact's path is the last line on stdout, so scripts can do ``ARTIFACT=$(... | tail -n1)``. Airflow tasks
call :func:`train` directly.

The artifact is written to a temporary directory beside its final place and renamed into place, so a
crashed or retried task never leaves a half-written version that a server could load.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.artifact import METADATA_FILE, MODEL_FILE, ArtifactError, validate_version

DATASETS = ("iris", "breast_cancer")
TEST_FRACTION = 0.25


def next_version(output_dir: Path) -> str:
    """Return ``v{N+1}`` where ``vN`` is the highest ``v<number>`` version already in ``output_dir``."""
    numbers = [
        int(match.group(1))
        for child in output_dir.glob("v*")
        if (match := re.fullmatch(r"v(\d+)", child.name))
    ]
    return f"v{max(numbers, default=0) + 1}"


def fit_and_evaluate(dataset: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """Fit the classifier on a stratified training split and measure it on the held-out split.

    :param dataset: ``iris`` or ``breast_cancer``
    :param seed: seed of the split and the estimator
    :return: the fitted estimator and a metadata dict (metrics, data set description)
    """
    if dataset not in DATASETS:
        raise ArtifactError(f"unknown data set {dataset!r}: choose one of {', '.join(DATASETS)}")
    # scikit-learn is imported here, not at module level, so `--help` and argument errors answer instantly.
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bunch = getattr(datasets, f"load_{dataset}")()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=TEST_FRACTION, random_state=seed, stratify=bunch.target
    )
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    started = time.perf_counter()
    estimator.fit(x_train, y_train)
    training_seconds = time.perf_counter() - started
    predicted = estimator.predict(x_test)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "precision_macro": float(precision_score(y_test, predicted, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y_test, predicted, average="macro", zero_division=0)),
        "train_samples": len(y_train),
        "test_samples": len(y_test),
    }
    description = {
        "dataset": dataset,
        "algorithm": "StandardScaler + LogisticRegression",
        "n_features": int(bunch.data.shape[1]),
        "feature_names": [str(name) for name in bunch.feature_names],
        "target_names": [str(name) for name in bunch.target_names],
        "metrics": metrics,
        "training_seconds": round(training_seconds, 4),
    }
    return estimator, description


def train(output_dir: Path | str, version: str | None = None, seed: int = 0, dataset: str = "iris") -> Path:
    """Train the model and write the artifact directory ``output_dir/version``; return its absolute path.

    :param output_dir: parent directory of all versions (created if missing)
    :param version: artifact version; default: the next ``vN`` in ``output_dir``
    :param seed: random seed; the same seed and data set give the same model
    :param dataset: ``iris`` or ``breast_cancer`` (both ship with scikit-learn, no download)
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    version = validate_version(version if version is not None else next_version(output_dir))
    final_dir = output_dir / version
    if final_dir.exists():
        raise ArtifactError(
            f"artifact {str(final_dir)!r} already exists: versions are immutable, pass another --version "
            "or omit it to get the next free one"
        )
    estimator, description = fit_and_evaluate(dataset, seed)
    return write_artifact(final_dir, estimator, {"version": version, "seed": seed, **description})


def train_on_batch(batch_file: Path | str, output_dir: Path | str, version: str, seed: int = 0) -> Path:
    """Train on a batch from :func:`model.data.write_batch`, score it on the holdout, write the artifact.

    An artifact of ``version`` that exists already is returned as it is (versions are immutable, and the
    same batch and seed give the same model), so a retried training task writes nothing twice.

    :param batch_file: the batch's JSON file
    :param output_dir: parent directory of all versions
    :param version: the artifact's version (name it after the batch, so the same batch reuses it)
    :param seed: seed of the estimator
    """
    from model.data import read_batch, score

    final_dir = Path(output_dir) / validate_version(version)
    if (final_dir / METADATA_FILE).is_file():
        return final_dir.resolve()
    spec, x, y = read_batch(Path(batch_file))
    bunch_description = fit_description(spec.dataset)
    estimator = _estimator(seed)
    started = time.perf_counter()
    estimator.fit(x, y)
    metadata = {
        "version": version,
        "seed": seed,
        **bunch_description,
        "batch": {
            "name": spec.name,
            "batch": spec.batch,
            "label_noise": spec.label_noise,
            "drift": spec.drift,
            "rows": len(y),
        },
        "metrics": score(estimator, spec.dataset),
        "training_seconds": round(time.perf_counter() - started, 4),
    }
    return write_artifact(final_dir, estimator, metadata)


def _estimator(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))


def fit_description(dataset: str) -> dict[str, Any]:
    """Return what the metadata says about the data set and the algorithm (for the server and readers)."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{dataset}")()
    return {
        "dataset": dataset,
        "algorithm": "StandardScaler + LogisticRegression",
        "n_features": int(bunch.data.shape[1]),
        "feature_names": [str(name) for name in bunch.feature_names],
        "target_names": [str(name) for name in bunch.target_names],
    }


def write_artifact(final_dir: Path, estimator: Any, metadata: dict[str, Any]) -> Path:
    """Write ``model.joblib`` and ``metadata.json`` into ``final_dir`` atomically; return its path."""
    import joblib

    output_dir = final_dir.parent
    output_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        **metadata,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "sklearn": _sklearn_version(),
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}-", dir=output_dir))
    try:
        joblib.dump(estimator, staging / MODEL_FILE)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private; a server may run as another user
        staging.rename(final_dir)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if final_dir.exists():  # another process wrote the same version between our check and the rename
            raise ArtifactError(
                f"artifact {str(final_dir)!r} was written concurrently; pick another version"
            ) from error
        raise
    return final_dir.resolve()


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, train, print the metrics and, last, the artifact path."""
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", required=True, type=Path, help="parent directory of the versioned artifacts"
    )
    parser.add_argument("--version", help="artifact version (default: next vN in --output)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--dataset", choices=DATASETS, default="iris", help="bundled data set (default iris)")
    args = parser.parse_args(argv)
    try:
        artifact_dir = train(args.output, args.version, args.seed, args.dataset)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metadata = json.loads((artifact_dir / METADATA_FILE).read_text())
    print(
        f"trained {metadata['algorithm']} on {metadata['dataset']} (seed {metadata['seed']}) "
        f"in {metadata['training_seconds']:.3f}s, version {metadata['version']}"
    )
    for name, value in metadata["metrics"].items():
        print(f"  {name}: {value:.4f}" if isinstance(value, float) else f"  {name}: {value}")
    print(artifact_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
