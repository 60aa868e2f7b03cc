"""composer_deploy's RBAC step, its exact kubectl command, run against local_knative: the overlay applies."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from local_knative.testing import LocalKnative
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "composer-env@my-project.iam.gserviceaccount.com"


def test_the_rbac_step_applies_the_overlay_bound_to_the_account(
    local_knative: LocalKnative, tmp_path: Path
) -> None:
    kubectl = require_binary("kubectl")
    namespace = f"composer-{uuid.uuid4().hex[:8]}"
    args = [
        *("--environment", "rollout-prod", "--location", "europe-west1", "--project", "my-project"),
        *("--cluster", "models-gke", "--service-account", ACCOUNT, "--namespace", namespace),
        *("--work-dir", str(tmp_path / "work"), "--dry-run", "--from", f"rbac-{namespace}"),
    ]
    out = subprocess.run(
        [sys.executable, str(ROOT / "include" / "composer_deploy.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    apply = shlex.split(out.stdout.splitlines()[0])
    assert apply[:2] == ["kubectl", "apply"], apply
    # The context get-credentials would have written, here naming local_knative.
    config = yaml.safe_load(local_knative.kubeconfig.read_text())
    context = next(arg.split("=", 1)[1] for arg in apply if arg.startswith("--context="))
    config["contexts"][0]["name"] = config["current-context"] = context
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    try:
        done = subprocess.run(
            [kubectl, *apply[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stderr
        assert f"namespace/{namespace} created" in done.stdout
        binding = subprocess.run(
            [kubectl, "get", "rolebinding", "knative-rollout", "-n", namespace, "-o", "yaml"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        subjects = yaml.safe_load(binding.stdout)["subjects"]
        assert {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": ACCOUNT} in subjects
        assert {"kind": "ServiceAccount", "name": "knative-rollout", "namespace": namespace} in subjects
    finally:
        subprocess.run(
            [kubectl, "delete", "namespace", namespace, "--wait=false"], env=env, timeout=60, check=False
        )
