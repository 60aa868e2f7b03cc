"""The Airflow plugin: the Rollouts page and operator extra links, as a package or dropped in plugins/.

Installed, Airflow finds it through the ``airflow.plugins`` entry point; on Cloud Composer the
``knative_rollout`` folder is copied into the plugins folder and Airflow imports this module from there.
The Rollouts page is a FastAPI app mounted in the API server (``fastapi_apps``); the external view puts
it in the UI's navigation, embedded at ``/plugin/knative-rollouts``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from knative_rollout.links import KnativeServiceLink, KnativeTagLink
from knative_rollout.rollouts_page import URL_PREFIX, create_app


class KnativeRolloutPlugin(AirflowPlugin):
    """Knative rollout: the Rollouts page, and extra links to a task's Service URL and tag URL."""

    name = "knative_rollout"
    operator_extra_links = [KnativeServiceLink(), KnativeTagLink()]
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Knative rollouts"}]
    external_views = [
        {
            "name": "Rollouts",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "knative-rollouts",
        }
    ]
