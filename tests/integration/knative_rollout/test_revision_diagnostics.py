"""KnativeServingHook.revision_diagnostics never fails its caller: a revision gone, no cluster."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from knative_rollout.hooks import KnativeServingHook

pytestmark = pytest.mark.integration


def test_a_revision_that_does_not_exist_is_one_line(k8s_connection, kube_namespace) -> None:
    found = KnativeServingHook().revision_diagnostics("gone-00001", kube_namespace)
    assert (found.conditions, found.pods) == ((), ())
    assert found.errors == (f"revision {kube_namespace}/gone-00001 does not exist (any more)",)
    assert found.text() == [
        f"Diagnostics of revision {kube_namespace}/gone-00001: no conditions",
        f"  revision {kube_namespace}/gone-00001 does not exist (any more)",
    ]


def test_an_unreachable_cluster_is_reported_not_raised(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    hook = KnativeServingHook(config_file=str(kubeconfig), max_attempts=1)
    found = hook.revision_diagnostics("echo-00001", "default")
    assert found.pods == ()
    [revision, pods] = found.errors
    assert revision.startswith("reading revision default/echo-00001 failed: ") and "unreachable" in revision
    assert pods.startswith("listing the pods of revision default/echo-00001 failed: ")
