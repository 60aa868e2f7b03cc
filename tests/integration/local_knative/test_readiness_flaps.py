"""Fault kind "readiness flaps": a revision's pods go NotReady and Ready in turn, seen in the Pod's conditions
and by the ingress (a NotReady pod gets no request), for the rule's duration and not after it is cleared."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import kubernetes
import pytest

from local_knative.faults.client import FaultClientError
from tests.integration.local_knative.test_dataplane import apply_ready, service_manifest

pytestmark = pytest.mark.integration


def ingress_status(local_knative, host: str, timeout: float) -> int | None:
    """GET / through the ingress; None when nothing answered within ``timeout`` (no ready pod took it)."""
    request = urllib.request.Request(local_knative.ingress_url + "/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except TimeoutError:
        return None


def pod_ready(core, namespace: str) -> str:
    (pod,) = core.list_namespaced_pod(namespace).items
    return next(c.status for c in pod.status.conditions if c.type == "Ready")


def wait_for_ready(core, namespace: str, status: str, deadline: float = 30) -> float:
    """Wait until the one pod's Ready condition is ``status``; return when (monotonic)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if pod_ready(core, namespace) == status:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"the pod's Ready condition did not become {status} within {deadline:g}s")


def test_readiness_flaps_then_stops_when_cleared(local_knative, kube_namespace) -> None:
    faults = local_knative.faults
    faults.clear()
    api_client = kubernetes.config.new_client_from_config(str(local_knative.kubeconfig))
    core = kubernetes.client.CoreV1Api(api_client)
    custom = kubernetes.client.CustomObjectsApi(api_client)
    manifest = service_manifest(
        "flappy", kube_namespace, annotations={"autoscaling.knative.dev/min-scale": "1"}
    )
    apply_ready(local_knative, manifest, "flappy", kube_namespace)
    host = f"flappy.{kube_namespace}.{local_knative.domain}"
    assert ingress_status(local_knative, host, 30) == 200
    try:
        with pytest.raises(FaultClientError, match="period"):
            faults.add(layer="readiness", namespaces=[kube_namespace])
        rule = faults.add(
            layer="readiness", namespaces=[kube_namespace], revisions=["flappy-00001"], period=2
        )
        # Down first: the pod turns NotReady and the ingress holds requests, no pod takes them.
        down = wait_for_ready(core, kube_namespace, "False", deadline=5)
        assert ingress_status(local_knative, host, 0.5) is None
        # The Revision stays Ready (as in Knative) but counts no ready replica and says it takes no traffic.
        revision = custom.get_namespaced_custom_object(
            "serving.knative.dev", "v1", kube_namespace, "revisions", "flappy-00001"
        )
        active = next(c for c in revision["status"]["conditions"] if c["type"] == "Active")
        assert (revision["status"]["actualReplicas"], active["status"]) == (0, "False")
        # Then up again within the period, and down again: it flaps.
        up = wait_for_ready(core, kube_namespace, "True", deadline=5)
        assert 1 <= up - down <= 3.5
        assert ingress_status(local_knative, host, 30) == 200
        wait_for_ready(core, kube_namespace, "False", deadline=5)
        assert faults.rule(rule["id"])["fired"] >= 2
        fired = [event for event in faults.status()["fired"] if event["rule"] == rule["id"]]
        assert fired[0]["revision"] == "flappy-00001"
        faults.remove(rule["id"])
        wait_for_ready(core, kube_namespace, "True", deadline=5)
        assert ingress_status(local_knative, host, 30) == 200
        time.sleep(2.5)  # longer than a period: nothing flips it again
        assert pod_ready(core, kube_namespace) == "True"

        # A duration ends the flapping by itself.
        faults.add(layer="readiness", namespaces=[kube_namespace], period=0.5, duration=1.2)
        wait_for_ready(core, kube_namespace, "False", deadline=5)
        time.sleep(1.5)
        assert pod_ready(core, kube_namespace) == "True"
        assert ingress_status(local_knative, host, 30) == 200
    finally:
        faults.clear()
