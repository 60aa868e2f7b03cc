"""Model artifacts: loading with clear errors, and gs:// downloads (Google Cloud Storage client mocked)."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest

from model.artifact import (
    ArtifactError,
    download_gcs_artifact,
    load_artifact,
    parse_gcs_uri,
    resolve_model_uri,
)
from model.serve import load_model
from model.train import train


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("artifacts"), "v4", seed=0)


class FakeBlob:
    """Stands in for google.cloud.storage.Blob: Cloud Storage cannot be reached from tests."""

    def __init__(self, name: str, content: bytes) -> None:
        self.name = name
        self.content = content

    def download_to_filename(self, filename: str) -> None:
        Path(filename).write_bytes(self.content)


def fake_client(blobs: list[FakeBlob]) -> mock.Mock:
    """Return a mocked google.cloud.storage.Client whose list_blobs filters ``blobs`` by prefix."""
    client = mock.Mock(name="storage.Client()")
    client.list_blobs.side_effect = lambda bucket, prefix: [
        blob for blob in blobs if blob.name.startswith(prefix)
    ]
    return client


def blobs_of(directory: Path, prefix: str) -> list[FakeBlob]:
    return [FakeBlob(f"{prefix}/{path.name}", path.read_bytes()) for path in directory.iterdir()]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "has no model.joblib or metadata.json"),
        ({"metadata.json": '{"version": "v1", "n_features": 4}'}, "has no model.joblib"),
        ({"model.joblib": "x", "metadata.json": "{not json"}, "metadata.json is not valid JSON"),
        ({"model.joblib": "x", "metadata.json": '{"version": "v1"}'}, "has no 'n_features'"),
        (
            {"model.joblib": "not a pickle", "metadata.json": '{"version": "v1", "n_features": 4}'},
            "cannot load",
        ),
    ],
)
def test_broken_artifacts_fail_with_a_clear_message(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(tmp_path)


def test_a_file_or_missing_path_is_not_an_artifact(tmp_path: Path, artifact_dir: Path) -> None:
    for path in (tmp_path / "missing", artifact_dir / "model.joblib"):
        with pytest.raises(ArtifactError, match="is not a directory: point MODEL_URI at the directory"):
            load_artifact(path)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://bucket/models/iris/v1", ("bucket", "models/iris/v1")),
        ("gs://bucket/models/iris/v1/", ("bucket", "models/iris/v1")),
        ("gs://bucket", ("bucket", "")),
        ("gs://bucket/", ("bucket", "")),
    ],
)
def test_parse_gcs_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_gcs_uri(uri) == expected


@pytest.mark.parametrize("uri", ["gs://", "gs:///path", "s3://bucket/x"])
def test_parse_gcs_uri_rejects_malformed(uri: str) -> None:
    with pytest.raises(ArtifactError, match="expected gs://BUCKET/PATH"):
        parse_gcs_uri(uri)


def test_gcs_artifact_downloads_and_loads(tmp_path: Path, artifact_dir: Path) -> None:
    # Cloud Storage is mocked (no network in tests); the blobs carry the bytes of a real trained artifact.
    client = fake_client(
        [
            *blobs_of(artifact_dir, "models/iris/v4"),
            FakeBlob("models/iris/v4/", b""),
            FakeBlob("models/iris/v40/model.joblib", b"other version"),
        ]
    )
    local = download_gcs_artifact("gs://ml-bucket/models/iris/v4/", tmp_path, client=client)

    client.list_blobs.assert_called_once_with("ml-bucket", prefix="models/iris/v4/")
    assert local == tmp_path / "v4"
    assert sorted(path.name for path in local.iterdir()) == ["metadata.json", "model.joblib"]
    artifact = load_artifact(local)
    assert artifact.version == "v4"
    assert artifact.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist() == [2]


def test_resolve_model_uri_builds_a_storage_client_for_gs_uris(tmp_path: Path, artifact_dir: Path) -> None:
    # google.cloud.storage.Client is mocked: the real one would look for Google credentials and the network.
    client = fake_client(blobs_of(artifact_dir, "v4"))
    with mock.patch("google.cloud.storage.Client", return_value=client) as client_class:
        local = resolve_model_uri("gs://ml-bucket/v4", tmp_path)
    client_class.assert_called_once_with()
    assert json.loads((local / "metadata.json").read_text())["version"] == "v4"


def test_empty_gcs_prefix_says_what_to_upload(tmp_path: Path) -> None:
    with pytest.raises(
        ArtifactError, match="no objects under 'gs://b/missing': upload the artifact directory"
    ):
        download_gcs_artifact("gs://b/missing", tmp_path, client=fake_client([]))


def test_gcs_object_names_cannot_escape_the_download_directory(tmp_path: Path) -> None:
    client = fake_client([FakeBlob("v1/../../../etc/evil", b"x")])
    with pytest.raises(ArtifactError, match="escapes"):
        download_gcs_artifact("gs://b/v1", tmp_path / "cache", client=client)
    assert not (tmp_path / "etc").exists()


def test_local_paths_pass_through_and_other_schemes_are_refused(tmp_path: Path) -> None:
    assert resolve_model_uri(str(tmp_path), tmp_path / "cache") == tmp_path
    with pytest.raises(ArtifactError, match="unsupported MODEL_URI scheme in 's3://b/v1'"):
        resolve_model_uri("s3://b/v1", tmp_path)


def test_model_server_loads_a_gcs_artifact(tmp_path: Path, artifact_dir: Path) -> None:
    # google.cloud.storage.Client is mocked; this is the code path `python -m model.serve` takes for gs://.
    with mock.patch(
        "google.cloud.storage.Client", return_value=fake_client(blobs_of(artifact_dir, "iris/v4"))
    ):
        artifact = load_model("gs://ml-bucket/iris/v4", tmp_path)
    assert (artifact.version, artifact.n_features, artifact.path) == ("v4", 4, tmp_path / "v4")
