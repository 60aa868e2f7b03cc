"""Airflow operators of the Knative rollout provider."""

from __future__ import annotations

from knative_rollout.operators.analysis import KnativeABTestOperator, KnativeCanaryAnalysisOperator
from knative_rollout.operators.canary import KnativeCanaryRolloutOperator
from knative_rollout.operators.loadtest import LoadTestGateOperator
from knative_rollout.operators.lock import KnativeLockOperator
from knative_rollout.operators.rollout import (
    KnativeDeployRevisionOperator,
    KnativePromoteOperator,
    KnativeRollbackOperator,
    KnativeSetTrafficOperator,
)
from knative_rollout.operators.teardown import KnativeTeardownOperator

__all__ = [
    "KnativeABTestOperator",
    "KnativeCanaryAnalysisOperator",
    "KnativeCanaryRolloutOperator",
    "KnativeDeployRevisionOperator",
    "KnativeLockOperator",
    "KnativePromoteOperator",
    "KnativeRollbackOperator",
    "KnativeSetTrafficOperator",
    "KnativeTeardownOperator",
    "LoadTestGateOperator",
]
