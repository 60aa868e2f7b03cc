"""Temporary (H4): dump the Rollouts page HTML for a screenshot; deleted after use."""

from pathlib import Path

from tests.integration.knative_rollout.test_rollouts_page import api  # noqa: F401


def test_dump(api, run_dag, kube_namespace) -> None:  # noqa: F811
    client, login = api
    target = {"service_name": "iris", "namespace": kube_namespace, "wait_timeout": 90}
    image = "registry.example.com/knative-rollout/echo:{}"
    run_dag(f"shot_{kube_namespace}".replace("-", "_"), [
        ("v1", "KnativeDeployRevisionOperator", {**target, "image": image.format("v1")}),
        ("v2", "KnativeDeployRevisionOperator", {**target, "image": image.format("v2"), "traffic_percent": 10}),
        ("t", "KnativeSetTrafficOperator", {**target, "traffic": {"@stable": 75, "@candidate": 25}}),
        ("e1", "KnativeDeployRevisionOperator", {**target, "service_name": "echo", "image": image.format("v1")}),
        ("e2", "KnativeDeployRevisionOperator", {**target, "service_name": "echo", "image": image.format("v2"), "traffic_percent": 10}),
        ("p", "KnativePromoteOperator", {**target, "service_name": "echo"}),
    ])
    page = client.get("/knative-rollout/", params={"namespace": [kube_namespace, "default"]}, headers=login)
    Path("/tmp/h4b_shot/page.html").write_text(page.text)
