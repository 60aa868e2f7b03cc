"""Fixtures of the end-to-end tests: one real Airflow stack for the session, wired to its local_knative.

The stack is the production topology: CeleryExecutor with two Celery workers, PostgreSQL and Redis (the
services of docker-compose.yaml, run from Debian's packages). ``KNATIVE_ROLLOUT_E2E_EXECUTOR=local`` runs
the quick variant instead (SQLite + LocalExecutor) on a machine without them; in CI that variable is
ignored and a missing PostgreSQL or Redis fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_airflow import CELERY_EXECUTOR, LOCAL_EXECUTOR, AirflowStack, kubernetes_connection
from local_knative.testing import LocalKnative
from tests.conftest import IN_CI, REPO_ROOT, require
from tests.e2e.backing_services import PostgresServer, RedisServer, postgres_bin_dir, redis_server_binary

E2E_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = REPO_ROOT / "dags"


def e2e_executor() -> str:
    """Return the executor of the end-to-end stack: Celery, unless asked for the quick variant outside CI."""
    quick = os.environ.get("KNATIVE_ROLLOUT_E2E_EXECUTOR", "").lower() == "local"
    return LOCAL_EXECUTOR if quick and not IN_CI else CELERY_EXECUTOR


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Run PostgreSQL (Debian's ``postgresql``) for the session; its data is removed afterwards."""
    require(postgres_bin_dir() is not None, "PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Run Redis (Debian's ``redis-server``) for the session."""
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def airflow_stack(
    request: pytest.FixtureRequest, local_knative: LocalKnative, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStack]:
    """Run the Airflow components (and Celery workers) on tests/e2e/dags and dags/ for the session.

    ``kubernetes_default`` points at the session local_knative, exactly as a user's connection would.
    """
    executor = e2e_executor()
    backing: dict[str, str] = {}
    if executor == CELERY_EXECUTOR:
        backing = {
            "database_url": request.getfixturevalue("postgres_server").url,
            "broker_url": request.getfixturevalue("redis_server").url,
        }
    stack = AirflowStack(
        tmp_path_factory.mktemp("airflow-e2e"),
        dag_bundles={"e2e-dags": E2E_DAGS, "example-dags": EXAMPLE_DAGS},
        connections={
            "kubernetes_default": kubernetes_connection(local_knative.kubeconfig, local_knative.ingress_url)
        },
        executor=executor,
        celery_workers=2,
        worker_concurrency=4,
        # The fleet sample's limit on Services rolling out at once: below its last wave of three.
        extra_env={"KNATIVE_ROLLOUT_FLEET_MAX_AT_ONCE": "2"},
        **backing,
    )
    stack.start()
    try:
        yield stack
    finally:
        exit_codes = stack.stop()
    # SIGTERM is how a deployment stops Airflow; each component must shut down on it by itself.
    assert all(code == 0 for code in exit_codes.values()), f"unclean Airflow shutdown: {exit_codes}"
