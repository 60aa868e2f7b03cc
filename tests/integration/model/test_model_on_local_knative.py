"""The Service template in include/manifests, applied with kubectl to local_knative, serving the model."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import joblib
import pytest
import yaml
from sklearn import datasets

from local_knative.testing import LocalKnative
from model.train import train
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[3] / "include" / "manifests" / "knative-service.yaml"


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [require_binary("kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def service_from_template(namespace: str, artifact: Path, **extra_env: str) -> dict[str, Any]:
    """Return the template with a local artifact instead of the gs:// placeholder, in ``namespace``."""
    service = yaml.safe_load(TEMPLATE.read_text())
    service["metadata"]["namespace"] = namespace
    container = service["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]} | {
        "MODEL_URI": str(artifact),
        **extra_env,
    }
    container["env"] = [{"name": name, "value": value} for name, value in env.items()]
    return service


def wait_for_revision(kubeconfig: Path, namespace: str, name: str, timeout: float = 60) -> dict[str, str]:
    """Wait until the Revision's Ready condition is True or False; return that condition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = kubectl(kubeconfig, "get", "revisions", "-n", namespace, "-o", "json")
        for revision in json.loads(found)["items"]:
            if revision["metadata"]["name"] != name:
                continue
            ready = [c for c in revision.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
            if ready and ready[0]["status"] in ("True", "False"):
                return ready[0]
        time.sleep(0.3)
    pytest.fail(f"revision {name} did not settle in {timeout}s")


async def predict(
    cluster: LocalKnative, host: str, instances: list[list[float]]
) -> tuple[dict, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{cluster.ingress_url}/v1/models/iris-classifier:predict",
            json={"instances": instances},
            headers={"Host": host},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json(), dict(response.headers)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("ksvc-model"), "v1", seed=0)


async def test_template_deploys_and_serves_the_models_predictions(
    local_knative: LocalKnative, kube_namespace: str, artifact: Path
) -> None:
    service = service_from_template(kube_namespace, artifact)
    kubectl(local_knative.kubeconfig, "apply", "-f", "-", stdin=json.dumps(service))
    kubectl(
        local_knative.kubeconfig,
        "wait",
        "ksvc/iris-classifier",
        "-n",
        kube_namespace,
        "--for=condition=Ready",
        "--timeout=60s",
    )

    iris = datasets.load_iris()
    expected = joblib.load(artifact / "model.joblib").predict(iris.data).tolist()
    domain = f"iris-classifier.{kube_namespace}.{local_knative.domain}"
    for host in (domain, f"stable-{domain}"):
        body, headers = await predict(local_knative, host, iris.data.tolist())
        assert body == {"predictions": expected}, host
        assert headers["X-Revision"] == "iris-classifier-v1"
        assert headers["X-Model-Version"] == "v1"


async def test_crashing_canary_fails_its_revision_and_leaves_traffic_alone(
    local_knative: LocalKnative, kube_namespace: str, artifact: Path
) -> None:
    stable = service_from_template(kube_namespace, artifact)
    kubectl(local_knative.kubeconfig, "apply", "-f", "-", stdin=json.dumps(stable))
    assert (
        wait_for_revision(local_knative.kubeconfig, kube_namespace, "iris-classifier-v1")["status"] == "True"
    )

    canary = service_from_template(kube_namespace, artifact, FAULT_CRASH_AT_START="1")
    canary["spec"]["template"]["metadata"]["name"] = "iris-classifier-v2"
    canary["spec"]["traffic"] = [
        *copy.deepcopy(stable["spec"]["traffic"]),
        {"revisionName": "iris-classifier-v2", "percent": 0, "tag": "candidate"},
    ]
    kubectl(local_knative.kubeconfig, "apply", "-f", "-", stdin=json.dumps(canary))
    condition = wait_for_revision(local_knative.kubeconfig, kube_namespace, "iris-classifier-v2")

    assert condition["status"] == "False"
    assert condition["reason"] == "ExitCode3"
    assert "FAULT_CRASH_AT_START is set" in condition["message"]
    pods = kubectl(
        local_knative.kubeconfig,
        "get",
        "pods",
        "-n",
        kube_namespace,
        "-l",
        "serving.knative.dev/revision=iris-classifier-v2",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    )
    logs = kubectl(local_knative.kubeconfig, "logs", "-n", kube_namespace, pods)
    assert "error: FAULT_CRASH_AT_START is set: exiting with status 3" in logs
    body, headers = await predict(
        local_knative, f"iris-classifier.{kube_namespace}.{local_knative.domain}", [[5.1, 3.5, 1.4, 0.2]]
    )
    assert body == {"predictions": [0]}
    assert headers["X-Revision"] == "iris-classifier-v1"
