"""Fill a Pod's container the way the API server's defaulting and Knative's pod builder would.

Typed clients (the ``kubernetes`` client's models, lightkube, Airflow's ``KubernetesHook.get_pod``) refuse
a Pod whose probe has no port, so what the server reports must be a Pod a real cluster could have made:
Knative points the user container's probes at the user port and gives a container with no readiness
probe a TCP one; the API server defaults probe timings, ``scheme``/``path``, ``imagePullPolicy`` and the
termination message fields.
"""

from __future__ import annotations

import copy
from typing import Any

_PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
_PROBE_TIMINGS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def _pull_policy(image: str) -> str:
    # The API server's rule: an untagged or ":latest" image is pulled always, a pinned one if not present.
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def pod_container(container: dict[str, Any], port: int, name: str) -> dict[str, Any]:
    """Return a defaulted copy of a Revision's container for the Pod that runs it on ``port``."""
    filled = copy.deepcopy(container)
    filled["name"] = name
    filled["ports"] = [{"name": "user-port", "containerPort": port, "protocol": "TCP"}]
    filled.setdefault("imagePullPolicy", _pull_policy(str(filled.get("image", ""))))
    filled.setdefault("terminationMessagePath", "/dev/termination-log")
    filled.setdefault("terminationMessagePolicy", "File")
    if not isinstance(filled.get("readinessProbe"), dict):
        filled["readinessProbe"] = {"tcpSocket": {}}
    for key in _PROBES:
        probe = filled.get(key)
        if not isinstance(probe, dict):
            continue
        for handler in ("httpGet", "tcpSocket", "grpc"):
            action = probe.get(handler)
            if isinstance(action, dict) and not action.get("port"):
                action["port"] = port
        http_get = probe.get("httpGet")
        if isinstance(http_get, dict):
            http_get.setdefault("path", "/")
            http_get.setdefault("scheme", "HTTP")
        for field, default in _PROBE_TIMINGS.items():
            probe.setdefault(field, default)
    return filled


def pod_spec_defaults(timeout_seconds: int) -> dict[str, Any]:
    """Return the Pod spec fields the API server and Knative set besides the containers."""
    return {
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": False,
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "terminationGracePeriodSeconds": timeout_seconds,
        "nodeName": "local-knative",
    }
