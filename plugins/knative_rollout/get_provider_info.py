"""Provider metadata that Airflow's ProvidersManager reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow shows and uses for discovery."""
    return {
        "package-name": "knative-rollout",
        "name": "Knative Rollout",
        "description": "Progressive delivery of model-serving APIs on Knative Serving.",
        "versions": ["0.1.0"],
    }
