"""Read and write the example model's versioned artifacts, locally or from Google Cloud Storage.

An artifact is a directory named after its version holding ``model.joblib`` (the fitted scikit-learn
estimator) and ``metadata.json`` (version, data set, offline metrics, feature count ...). The directory is
the unit that is copied to a bucket and named by ``MODEL_URI``, so the server never has to guess which
metadata belongs to which model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"

# A version is a directory name, a path segment in gs:// URIs and an HTTP header value: keep it plain.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class ArtifactError(Exception):
    """Raise when an artifact cannot be written, found or loaded; the message says what to do."""


@dataclass(frozen=True)
class Artifact:
    """A loaded model artifact.

    :param path: local directory the artifact was loaded from
    :param model: the fitted scikit-learn estimator
    :param metadata: the content of ``metadata.json``
    """

    path: Path
    model: Any
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        """Return the artifact's version, as written by the trainer."""
        return str(self.metadata["version"])

    @property
    def n_features(self) -> int:
        """Return how many numbers each instance sent to the model must have."""
        return int(self.metadata["n_features"])


def validate_version(version: str) -> str:
    """Return ``version`` if it is usable as a directory name and header value, else raise ArtifactError."""
    if not VERSION_PATTERN.fullmatch(version):
        raise ArtifactError(
            f"invalid model version {version!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (for example 'v3' or '2026-11-29.1')"
        )
    return version


def load_artifact(path: Path) -> Artifact:
    """Load the artifact in directory ``path`` (as written by ``python -m model.train``).

    :param path: the artifact directory, the one ``model.train`` printed
    """
    if not path.is_dir():
        raise ArtifactError(
            f"model artifact {str(path)!r} is not a directory: point MODEL_URI at the directory "
            "that 'python -m model.train --output DIR' printed"
        )
    model_file, metadata_file = path / MODEL_FILE, path / METADATA_FILE
    missing = [
        name
        for name, file in ((MODEL_FILE, model_file), (METADATA_FILE, metadata_file))
        if not file.is_file()
    ]
    if missing:
        raise ArtifactError(
            f"model artifact {str(path)!r} has no {' or '.join(missing)}: it was not written by "
            "'python -m model.train' or is incomplete; train it again"
        )
    try:
        metadata = json.loads(metadata_file.read_text())
    except json.JSONDecodeError as error:
        raise ArtifactError(
            f"{metadata_file} is not valid JSON ({error}); train the artifact again"
        ) from error
    for key in ("version", "n_features"):
        if key not in metadata:
            raise ArtifactError(
                f"{metadata_file} has no {key!r}; train the artifact again with 'python -m model.train'"
            )
    # joblib pulls in scikit-learn; imported here so that `--help` and config errors stay instant.
    import joblib

    try:
        model = joblib.load(model_file)
    # Unpickling fails in many ways (version skew, truncation, foreign file); every one means "retrain".
    except Exception as error:
        raise ArtifactError(
            f"cannot load {model_file}: {type(error).__name__}: {error}; "
            "retrain it with the installed scikit-learn"
        ) from error
    return Artifact(path=path, model=model, metadata=metadata)


def parse_gcs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/some/prefix`` into ``("bucket", "some/prefix")``."""
    match = re.fullmatch(r"gs://([^/]+)/*(.*?)/*", uri, flags=re.DOTALL)
    if not match or not match.group(1):
        raise ArtifactError(f"invalid Cloud Storage URI {uri!r}: expected gs://BUCKET/PATH/TO/ARTIFACT_DIR")
    return match.group(1), match.group(2)


def download_gcs_artifact(uri: str, destination: Path, *, client: Any = None) -> Path:
    """Copy the artifact directory at ``uri`` (``gs://bucket/path``) into ``destination`` and return its path.

    :param uri: Cloud Storage URI of the artifact directory
    :param destination: local directory to download into (created if missing)
    :param client: a ``google.cloud.storage.Client``; by default one is built from the ambient credentials
        (Workload Identity on GKE)
    """
    bucket_name, prefix = parse_gcs_uri(uri)
    if client is None:
        # Imported only for gs:// URIs: it is slow to import and local runs never need it.
        from google.cloud import storage

        client = storage.Client()
    folder = f"{prefix}/" if prefix else ""
    target = destination / (Path(prefix).name or bucket_name)
    downloaded = 0
    for blob in client.list_blobs(bucket_name, prefix=folder):
        relative = blob.name[len(folder) :]
        if not relative or relative.endswith("/"):
            continue  # "directory" placeholder objects that some tools create
        local_file = target / relative
        if target.resolve() not in local_file.resolve().parents:
            raise ArtifactError(f"refusing to download object {blob.name!r}: its name escapes {target}")
        local_file.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(local_file))
        downloaded += 1
    if not downloaded:
        raise ArtifactError(
            f"no objects under {uri!r}: upload the artifact directory written by "
            "'python -m model.train' there (for example with 'gcloud storage cp -r DIR gs://BUCKET/PATH/')"
        )
    return target


def resolve_model_uri(uri: str, cache_dir: Path) -> Path:
    """Return a local artifact directory for ``uri``: the path itself, or a download of a ``gs://`` URI.

    :param uri: a local path or a ``gs://bucket/path`` URI of an artifact directory
    :param cache_dir: where ``gs://`` artifacts are downloaded to
    """
    if uri.startswith("gs://"):
        return download_gcs_artifact(uri, cache_dir)
    if "://" in uri:
        raise ArtifactError(f"unsupported MODEL_URI scheme in {uri!r}: use a local path or gs://BUCKET/PATH")
    return Path(uri).expanduser()
