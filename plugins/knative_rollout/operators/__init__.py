"""Airflow operators of the Knative rollout provider."""

from __future__ import annotations

from knative_rollout.operators.loadtest import LoadTestGateOperator
from knative_rollout.operators.rollout import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
    KnativeTeardownOperator,
)

__all__ = [
    "KnativeDeployRevisionOperator",
    "KnativePromoteOperator",
    "KnativeRollbackOperator",
    "KnativeSetTrafficOperator",
    "KnativeTeardownOperator",
    "LoadTestGateOperator",
]
