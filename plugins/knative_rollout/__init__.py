"""knative-rollout: progressive delivery of model-serving APIs on Knative Serving, driven from Airflow."""

from __future__ import annotations

__version__ = "0.1.0"
