"""Gate a Knative revision on a load test: LoadTestGateOperator (being written by H5)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class LoadTestGateOperator(BaseOperator):
    """Run a load test against a URL or a Knative tag and fail the task when the SLO is violated."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def execute(self, context: Any) -> Any:
        raise NotImplementedError("LoadTestGateOperator is being implemented")
