"""Fixtures of the end-to-end tests: one real Airflow stack per module, wired to the session local_knative."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_knative.testing import LocalKnative
from tests.conftest import REPO_ROOT
from tests.e2e.airflow_stack import AirflowStack

E2E_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = REPO_ROOT / "dags"


def kubernetes_connection(kubeconfig: Path, ingress_url: str) -> dict[str, object]:
    """Return an Airflow ``kubernetes`` connection (as JSON) to the cluster of a kubeconfig and its ingress.

    The load-test gate of dags/rollout_example.py sends its requests to the ``ingress_address`` extra:
    local_knative's Knative hosts (``*.example.com``) have no DNS. It takes ``http://host:port``, the form
    of local_knative's ``ingress`` endpoint.
    """
    return {
        "conn_type": "kubernetes",
        "extra": {"kube_config_path": str(kubeconfig), "ingress_address": ingress_url},
    }


@pytest.fixture(scope="module")
def airflow_stack(
    local_knative: LocalKnative, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStack]:
    """Run api-server, scheduler, dag-processor and triggerer on tests/e2e/dags and dags/ for the module.

    ``kubernetes_default`` points at the session local_knative, exactly as a user's connection would.
    """
    stack = AirflowStack(
        tmp_path_factory.mktemp("airflow-e2e"),
        dag_bundles={"e2e-dags": E2E_DAGS, "example-dags": EXAMPLE_DAGS},
        connections={
            "kubernetes_default": kubernetes_connection(local_knative.kubeconfig, local_knative.ingress_url)
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        exit_codes = stack.stop()
    # SIGTERM is how a deployment stops Airflow; each component must shut down on it by itself.
    assert all(code == 0 for code in exit_codes.values()), f"unclean Airflow shutdown: {exit_codes}"
