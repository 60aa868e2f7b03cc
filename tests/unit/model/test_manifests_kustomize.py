"""include/manifests as a kustomize base: each overlay renders in its namespace, bound to its account."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import composer_deploy
import pytest
import yaml

from tests.conftest import require_binary

MANIFESTS = Path(__file__).resolve().parents[3] / "include" / "manifests"
OVERLAYS = sorted(
    path.parent for path in (MANIFESTS.parent / "manifests-overlays").glob("*/kustomization.yaml")
)
BASE_KINDS = ["Namespace", "ServiceAccount", "ServiceAccount", "Role", "RoleBinding"]
PRODUCTION_KINDS = ["RequestAuthentication", "AuthorizationPolicy", "PodMonitoring"]


def render(directory: Path) -> list[dict[str, Any]]:
    kubectl = require_binary("kubectl")
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def rbac_role_rules() -> list[dict[str, Any]]:
    docs = yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text())
    (role,) = [doc for doc in docs if doc and doc["kind"] == "Role"]
    return role["rules"]


def check_rendered(docs: list[dict[str, Any]], namespace: str, account: str, kinds: list[str]) -> None:
    """The base's objects (and ``kinds`` beyond them) in ``namespace``, the Role as rbac.yaml has it."""
    assert sorted(doc["kind"] for doc in docs) == sorted(BASE_KINDS + kinds)
    for doc in docs:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == namespace
        else:
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]
    (role,) = [doc for doc in docs if doc["kind"] == "Role"]
    assert role["rules"] == rbac_role_rules(), "the rendered Role drifted from rbac.yaml"
    (binding,) = [doc for doc in docs if doc["kind"] == "RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "knative-rollout", "namespace": namespace},
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": account},
    ]
    assert "PROJECT_ID" not in yaml.safe_dump_all(docs), "a placeholder of the base is left"


def test_the_example_overlays_are_there() -> None:
    assert [path.name for path in OVERLAYS] == ["models", "models-staging"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.name)
def test_overlay_renders_in_its_namespace_bound_to_its_account(overlay: Path) -> None:
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    production = [c for c in kustomization.get("components", []) if Path(c).name == "production"]
    docs = render(overlay)
    check_rendered(
        docs,
        kustomization["namespace"],
        "composer-env@my-project.iam.gserviceaccount.com",
        PRODUCTION_KINDS if production else [],
    )
    if production:
        assert "_UNIQUE_ID" not in yaml.safe_dump_all(docs), "the overlay must fill in the callers"


def test_the_production_component_holds_every_production_file_but_the_alternative_scrape() -> None:
    component = yaml.safe_load((MANIFESTS / "production" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    files = {path.name for path in (MANIFESTS / "production").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(component["resources"]) == files - {"pod-monitor.yaml"}


def test_the_overlay_composer_deploy_writes_renders(tmp_path: Path) -> None:
    account = "composer-env@other-project.iam.gserviceaccount.com"
    target, _, _ = composer_deploy.parse_args(
        [
            *("--environment", "prod", "--location", "europe-west1", "--project", "other-project"),
            *("--cluster", "gke", "--service-account", account, "--namespace", "team-a"),
            *("--work-dir", str(tmp_path)),
        ]
    )
    composer_deploy.write_inputs(target)
    docs = render(composer_deploy.overlay_dirs(target)["team-a"])
    check_rendered(docs, "team-a", account, [])
    (model_server,) = [doc for doc in docs if doc["metadata"]["name"] == "model-server"]
    assert model_server["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "model-server@other-project.iam.gserviceaccount.com"
    }


def test_the_example_overlay_is_what_composer_deploy_writes() -> None:
    """The hand-written example and the script's overlay patch the same paths the same way."""
    example = yaml.safe_load(
        (MANIFESTS.parent / "manifests-overlays/models-staging/kustomization.yaml").read_text()
    )
    written = composer_deploy.overlay(
        "models-staging", "composer-env@my-project.iam.gserviceaccount.com", "my-project", "../../manifests"
    )
    for kustomization in (example, written):
        for patch in kustomization["patches"]:
            patch["patch"] = yaml.safe_load(patch["patch"])
    assert example == written
