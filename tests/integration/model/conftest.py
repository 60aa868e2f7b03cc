"""Fixtures for the model server tests: a trained artifact and real ``python -m model.serve`` processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from model.testing import ModelServer
from model.train import train


@pytest.fixture(scope="session")
def model_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train version v1 of the iris model once for the session."""
    return train(tmp_path_factory.mktemp("model-artifacts"), "v1", seed=0)


@pytest.fixture
def start_model_server(model_artifact: Path) -> Iterator[Callable[..., ModelServer]]:
    """Return ``start(env=None) -> ModelServer`` (serving ``model_artifact``); stop them all after."""
    servers: list[ModelServer] = []

    def start(env: Mapping[str, str] | None = None) -> ModelServer:
        server = ModelServer({"MODEL_URI": str(model_artifact), **(env or {})})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
