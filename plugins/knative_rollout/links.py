"""Operator extra links: a button on the task in the Airflow UI that opens the Knative Service's URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

SERVICE_URL_XCOM_KEY = "knative_service_url"
TAG_URL_XCOM_KEY = "knative_tag_url"


class KnativeServiceLink(BaseOperatorLink):
    """Link to the URL of the Knative Service the task worked on."""

    name = "Knative Service"
    xcom_key = SERVICE_URL_XCOM_KEY

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """Return the URL the task pushed, or an empty string when it has none yet."""
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return value if isinstance(value, str) else ""


class KnativeTagLink(KnativeServiceLink):
    """Link to the tag URL (e.g. the candidate's) the task deployed."""

    name = "Knative Tag URL"
    xcom_key = TAG_URL_XCOM_KEY
