"""Training data that changes from run to run, drawn from a data set bundled with scikit-learn.

A retraining example needs something real to decide: every run gets a new *batch* (a sample of the
bundled data chosen by its batch number), optionally with label noise (a share of labels replaced at
random, like a broken labelling job) and drift (features shifted, like a sensor recalibrated), so some
retrains are better than the model serving now, some equal and some worse.

Every model is judged on the same *holdout*: a fixed split of the bundled data that no batch ever
contains, so the metrics of two models trained on different batches can be compared.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model.artifact import ArtifactError

HOLDOUT_FRACTION = 0.3
HOLDOUT_SEED = 2026
BATCH_FRACTION = 0.8


@dataclass(frozen=True)
class BatchSpec:
    """Which batch to draw: the same spec always gives the same rows and labels.

    :param dataset: ``iris`` or ``breast_cancer``
    :param batch: batch number; it seeds which rows are drawn and which labels are replaced
    :param label_noise: share of labels (0..1) replaced by a random class
    :param drift: shift of every feature, in standard deviations of that feature
    """

    dataset: str = "iris"
    batch: int = 0
    label_noise: float = 0.0
    drift: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_noise <= 1.0:
            raise ArtifactError(f"label_noise must be between 0 and 1, got {self.label_noise}")
        if self.batch < 0:
            raise ArtifactError(f"batch must be a number >= 0, got {self.batch}")

    @property
    def name(self) -> str:
        """Return a readable name that tells the batch's settings, usable in a version string."""
        return f"{self.dataset}-b{self.batch}-n{round(self.label_noise * 100)}-d{round(self.drift * 100)}"


def _load(dataset: str) -> Any:
    from sklearn import datasets

    if dataset not in ("iris", "breast_cancer"):
        raise ArtifactError(f"unknown data set {dataset!r}: choose iris or breast_cancer")
    return getattr(datasets, f"load_{dataset}")()


def _split(dataset: str) -> tuple[Any, Any, Any, Any]:
    """Return ``(pool_x, pool_y, holdout_x, holdout_y)``: the fixed split batches never cross."""
    from sklearn.model_selection import train_test_split

    bunch = _load(dataset)
    pool_x, holdout_x, pool_y, holdout_y = train_test_split(
        bunch.data,
        bunch.target,
        test_size=HOLDOUT_FRACTION,
        random_state=HOLDOUT_SEED,
        stratify=bunch.target,
    )
    return pool_x, pool_y, holdout_x, holdout_y


def holdout(dataset: str) -> tuple[Any, Any]:
    """Return the holdout rows and labels of ``dataset`` that every model is judged on."""
    _, _, x, y = _split(dataset)
    return x, y


def draw_batch(spec: BatchSpec) -> tuple[Any, Any]:
    """Return the rows and labels of one training batch (never a holdout row)."""
    import numpy as np

    pool_x, pool_y, _, _ = _split(spec.dataset)
    rng = np.random.default_rng(spec.batch)
    rows = rng.choice(len(pool_y), size=int(BATCH_FRACTION * len(pool_y)), replace=False)
    x, y = pool_x[rows].copy(), pool_y[rows].copy()
    if spec.drift:
        x = x + spec.drift * pool_x.std(axis=0)
    replaced = rng.random(len(y)) < spec.label_noise
    y[replaced] = rng.integers(0, int(pool_y.max()) + 1, int(replaced.sum()))
    return x, y


def write_batch(spec: BatchSpec, directory: Path) -> Path:
    """Write the batch as ``<name>.json`` (rows, labels and the spec) in ``directory``; return its path.

    Writing the same spec again leaves the existing file (the content would be the same).
    """
    path = directory / f"{spec.name}.json"
    if path.exists():
        return path
    x, y = draw_batch(spec)
    directory.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps({"spec": asdict(spec), "x": x.tolist(), "y": y.tolist()}))
    staging.replace(path)
    return path


def read_batch(path: Path) -> tuple[BatchSpec, Any, Any]:
    """Return the spec, rows and labels of a batch file written by :func:`write_batch`."""
    import numpy as np

    content = json.loads(path.read_text())
    return BatchSpec(**content["spec"]), np.asarray(content["x"]), np.asarray(content["y"])


def score(model: Any, dataset: str) -> dict[str, float]:
    """Return the offline metrics of ``model`` on the holdout of ``dataset``."""
    from sklearn.metrics import accuracy_score, f1_score

    x, y = holdout(dataset)
    predicted = model.predict(x)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
        "holdout_samples": len(y),
    }
