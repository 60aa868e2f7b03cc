"""Provider metadata that Airflow's ProvidersManager reads via the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

INTEGRATION = "Knative Serving"


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow shows and uses for discovery.

    No new connection type: the provider uses Airflow's ``kubernetes`` connection (and the google
    provider's for GKE).
    """
    return {
        "package-name": "knative-rollout",
        "name": "Knative Rollout",
        "description": "Progressive delivery of model-serving APIs on Knative Serving.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://knative.dev/docs/serving/",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["knative_rollout.hooks"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "knative_rollout.operators.rollout",
                    "knative_rollout.operators.lock",
                    "knative_rollout.operators.teardown",
                    "knative_rollout.operators.loadtest",
                    "knative_rollout.operators.analysis",
                    "knative_rollout.operators.canary",
                    "knative_rollout.operators.baseline",
                    # KnativeRolloutOutcomeOperator lives next to the task group builder that uses it.
                    "knative_rollout.task_groups",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["knative_rollout.sensors"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["knative_rollout.triggers"]}],
        "notifications": ["knative_rollout.notifiers.KnativeRolloutWebhookNotifier"],
        "extra-links": ["knative_rollout.links.KnativeServiceLink", "knative_rollout.links.KnativeTagLink"],
    }
