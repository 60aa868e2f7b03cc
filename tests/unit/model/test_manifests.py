"""The manifests in include/manifests: they parse, agree with each other and pass Knative admission."""

from __future__ import annotations

import copy
import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_knative import kinds
from local_knative.admission import admit
from local_knative.errors import ApiError

MANIFESTS = Path(__file__).resolve().parents[3] / "include" / "manifests"
CATALOG = MANIFESTS.parent / "local_knative" / "images.yaml"
# kustomization.yaml files are kustomize's, not objects: test_manifests_kustomize.py covers them.
YAML_FILES = sorted(path for path in MANIFESTS.rglob("*.yaml") if path.name != "kustomization.yaml")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc is not None]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


@pytest.fixture
def service() -> dict[str, Any]:
    (ksvc,) = documents("knative-service.yaml")
    return ksvc


def test_every_manifest_file_is_covered() -> None:
    names = {str(path.relative_to(MANIFESTS)) for path in YAML_FILES}
    assert names == {
        "rbac.yaml",
        "knative-service.yaml",
        "production/request-authentication.yaml",
        "production/authorization-policy.yaml",
        "production/pod-monitoring.yaml",
        "production/pod-monitor.yaml",
    }
    readme = (MANIFESTS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names), "README.md must say what each file is for"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(MANIFESTS)))
def test_yaml_parses_into_well_formed_objects(path: Path) -> None:
    docs = documents(str(path.relative_to(MANIFESTS)))
    assert docs, f"{path} holds no object"
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), doc
        metadata = doc["metadata"]
        assert metadata["name"]
        if doc["kind"] not in CLUSTER_SCOPED:
            assert metadata.get("namespace") == "models", f"{doc['kind']} {metadata['name']} outside 'models'"
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "knative-rollout"


def role_allows(role: dict[str, Any], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in role["rules"]
    )


# What KnativeServingHook / AsyncKnativeServingHook call, and nothing more (least privilege).
REQUIRED = (
    [
        ("serving.knative.dev", "services", verb)
        for verb in ("get", "list", "watch", "create", "update", "patch", "delete")
    ]
    + [("serving.knative.dev", "revisions", verb) for verb in ("get", "list", "watch", "delete")]
    + [
        ("serving.knative.dev", resource, verb)
        for resource in ("configurations", "routes")
        for verb in ("get", "list")
    ]
    + [("", "events", "create")]
    + [("", "pods", "list"), ("", "pods/log", "get")]
)
FORBIDDEN = [
    ("serving.knative.dev", "revisions", "create"),
    ("serving.knative.dev", "routes", "update"),
    ("serving.knative.dev", "configurations", "delete"),
    ("", "secrets", "get"),
    ("", "pods", "delete"),
    ("", "events", "delete"),
]


def test_role_grants_what_the_hook_needs_and_no_more() -> None:
    role = find(documents("rbac.yaml"), "Role", "knative-rollout")
    missing = [needed for needed in REQUIRED if not role_allows(role, *needed)]
    assert not missing
    excessive = [forbidden for forbidden in FORBIDDEN if role_allows(role, *forbidden)]
    assert not excessive
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in role["rules"])


def test_role_binding_binds_the_role_to_accounts_defined_here() -> None:
    docs = documents("rbac.yaml")
    binding = find(docs, "RoleBinding", "knative-rollout")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "knative-rollout",
    }
    accounts = [subject for subject in binding["subjects"] if subject["kind"] == "ServiceAccount"]
    for account in accounts:
        find(docs, "ServiceAccount", account["name"])
    users = [subject["name"] for subject in binding["subjects"] if subject["kind"] == "User"]
    assert users and all(user.endswith(".iam.gserviceaccount.com") for user in users)  # Composer's identity


def test_service_template_fits_the_model_server_and_the_catalog(service: dict[str, Any]) -> None:
    template = service["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}

    assert template["metadata"]["name"].startswith(service["metadata"]["name"] + "-")
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{env['MODEL_NAME']}"
    assert env["MODEL_URI"].startswith("gs://")
    catalog = yaml.safe_load(CATALOG.read_text())["images"]
    patterns = [pattern for pattern in catalog if fnmatch.fnmatchcase(container["image"], pattern)]
    assert patterns and catalog[patterns[0]]["entrypoint"] == ["python", "-m", "model.serve"]
    find(documents("rbac.yaml"), "ServiceAccount", template["spec"]["serviceAccountName"])
    annotations = template["metadata"]["annotations"]
    for key in ("class", "metric", "target", "min-scale", "max-scale", "initial-scale"):
        assert f"autoscaling.knative.dev/{key}" in annotations
    assert service["spec"]["traffic"] == [
        {"revisionName": template["metadata"]["name"], "percent": 100, "tag": "stable"}
    ]


@pytest.mark.parametrize(
    "name",
    [
        "production/request-authentication.yaml",
        "production/authorization-policy.yaml",
        "production/pod-monitoring.yaml",
        "production/pod-monitor.yaml",
    ],
)
def test_production_add_ons_select_the_services_pods(service: dict[str, Any], name: str) -> None:
    (doc,) = documents(name)
    assert doc["spec"]["selector"]["matchLabels"] == {
        "serving.knative.dev/service": service["metadata"]["name"]
    }


def test_service_template_passes_knative_admission(service: dict[str, Any]) -> None:
    admitted = admit(kinds.KSVC, "CREATE", service, None)
    (container,) = admitted["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "user-container"  # defaulted, nothing else rewritten
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/iris-classifier"}
    assert admitted["spec"]["traffic"][0]["latestRevision"] is False


def test_changing_the_template_requires_a_new_revision_name(service: dict[str, Any]) -> None:
    # The template's header comment says so; Knative's webhook (as local_knative enforces it) agrees.
    stored = admit(kinds.KSVC, "CREATE", service, None)
    changed = copy.deepcopy(service)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "registry.example.com/knative-rollout/model-server:v2"
    )
    with pytest.raises(ApiError, match="Saw the following changes without a name change"):
        admit(kinds.KSVC, "UPDATE", changed, stored)
    changed["spec"]["template"]["metadata"]["name"] = "iris-classifier-v2"
    admit(kinds.KSVC, "UPDATE", changed, stored)
