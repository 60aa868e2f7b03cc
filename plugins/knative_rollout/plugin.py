"""The Airflow plugin: operator extra links, whether installed as a package or dropped into plugins/.

Installed, Airflow finds it through the ``airflow.plugins`` entry point; on Cloud Composer the
``knative_rollout`` folder is copied into the plugins folder and Airflow imports this module from there.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from knative_rollout.links import KnativeServiceLink, KnativeTagLink


class KnativeRolloutPlugin(AirflowPlugin):
    """Knative rollout: extra links to a task's Service URL and tag URL."""

    name = "knative_rollout"
    operator_extra_links = [KnativeServiceLink(), KnativeTagLink()]
