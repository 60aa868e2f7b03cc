"""Istio access control at a real local_knative's ingress: RequestAuthentication and AuthorizationPolicy.

The objects go in with the real kubectl; requests go over loopback to the ingress with real tokens signed
by RSA and EC keys, whose JWKS the ingress reads inline, from a file and from an HTTP server.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_knative.testing import LocalKnative
from tests.conftest import require_binary
from tests.integration.local_knative.test_dataplane import apply_ready, kubectl, service_manifest
from tests.jwt_keys import AUDIENCE, ISSUER, SigningKey, ec_key, jwks, rsa_key

pytestmark = pytest.mark.integration

FILE_ISSUER = "https://file-issuer.example.com"
INLINE_ISSUER = "https://inline-issuer.example.com"


class Cluster:
    """The module's two namespaces with an echo Service each, the keys and how to call the ingress."""

    def __init__(self, local_knative: LocalKnative, namespace: str, other: str, keys: dict[str, SigningKey]):
        self.local_knative, self.namespace, self.other, self.keys = local_knative, namespace, other, keys

    def call(
        self,
        token: str | None = None,
        *,
        path: str = "/v1/models/echo:predict",
        namespace: str | None = None,
        host_prefix: str = "",
    ) -> tuple[int, str, dict[str, str]]:
        """Send one POST through the ingress; return (status, body, headers)."""
        host = f"{host_prefix}echo.{namespace or self.namespace}.{self.local_knative.domain}"
        headers = {"Host": host, "Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.local_knative.ingress_url + path, data=b"{}", method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)

    def apply(self, obj: dict[str, Any], *, check: bool = True) -> str:
        return kubectl(self.local_knative, "apply", "-f", "-", stdin=json.dumps(obj), check=check)


def kubectl_error(cluster: Cluster, obj: dict[str, Any]) -> str:
    """Apply an object kubectl must refuse; return its error output."""
    done = subprocess.run(
        [require_binary("kubectl"), "apply", "-f", "-"],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(cluster.local_knative.kubeconfig)},
    )
    assert done.returncode != 0, done.stdout
    return done.stderr


def istio(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _namespace(local_knative: LocalKnative) -> str:
    name = f"istio-{uuid.uuid4().hex[:8]}"
    status, body = local_knative.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert status == 201, body
    return name


@pytest.fixture(scope="module")
def cluster(local_knative: LocalKnative, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    keys = {"http": rsa_key("http-1"), "file": rsa_key("file-1"), "inline": ec_key("inline-1")}
    served = jwks(keys["http"]).encode()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(served)))
            self.end_headers()
            self.wfile.write(served)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key_file = tmp_path_factory.mktemp("jwks") / "keys.json"
    key_file.write_text(jwks(keys["file"]))
    namespace, other = _namespace(local_knative), _namespace(local_knative)
    for name in (namespace, other):
        traffic = [
            {"latestRevision": True, "percent": 100},
            {"latestRevision": True, "percent": 0, "tag": "latest"},
        ]
        apply_ready(local_knative, service_manifest("echo", name, traffic=traffic), "echo", name)
    handle = Cluster(local_knative, namespace, other, keys)
    selector = {"matchLabels": {"serving.knative.dev/service": "echo"}}
    handle.apply(
        istio(
            "RequestAuthentication",
            "echo-jwt",
            namespace,
            {
                "selector": selector,
                "jwtRules": [
                    {
                        "issuer": ISSUER,
                        "jwksUri": f"http://127.0.0.1:{server.server_port}/certs",
                        "audiences": [AUDIENCE],
                    },
                    {"issuer": FILE_ISSUER, "jwksUri": Path(key_file).as_uri()},
                    {"issuer": INLINE_ISSUER, "jwks": jwks(keys["inline"]), "audiences": [AUDIENCE]},
                ],
            },
        )
    )
    handle.apply(
        istio(
            "AuthorizationPolicy",
            "echo-require-jwt",
            namespace,
            {
                "selector": selector,
                "action": "ALLOW",
                "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
            },
        )
    )
    handle.apply(
        istio(
            "AuthorizationPolicy",
            "echo-no-admin",
            namespace,
            {
                "action": "DENY",  # no selector: the whole namespace
                "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}],
            },
        )
    )
    yield handle
    server.shutdown()
    for name in (namespace, other):
        local_knative.request("DELETE", f"/api/v1/namespaces/{name}")


def test_tokens_are_checked_and_required(cluster: Cluster) -> None:
    http_key, file_key, inline_key = cluster.keys["http"], cluster.keys["file"], cluster.keys["inline"]
    status, body, _ = cluster.call()
    assert (status, body) == (403, "RBAC: access denied")
    status, body, headers = cluster.call(http_key.token(exp=1_000_000_000))
    assert (status, body) == (401, "Jwt is expired")
    assert (
        headers["www-authenticate"].startswith('Bearer realm="http://echo.')
        and 'error="invalid_token"' in (headers["www-authenticate"])
    )
    assert cluster.call(http_key.token(audience="https://other.example.com"))[:2] == (
        401,
        "Audiences in Jwt are not allowed",
    )
    assert cluster.call(http_key.token(issuer="https://evil.example.com"))[:2] == (
        401,
        "Jwt issuer is not configured",
    )
    # A key of another issuer's set, presented under this issuer: the signature does not verify.
    assert cluster.call(inline_key.token(issuer=ISSUER))[:2] == (401, "Jwt verification fails")
    for token in (
        http_key.token(),
        file_key.token(issuer=FILE_ISSUER),
        inline_key.token(issuer=INLINE_ISSUER),
    ):
        status, body, _ = cluster.call(token)
        assert status == 200, body
        assert json.loads(body)["service"] == "echo"
    # Every host of the Service reaches the same pods, so the same policies apply on a tag's host.
    assert cluster.call(host_prefix="latest-")[0] == 403
    assert cluster.call(http_key.token(), host_prefix="latest-")[0] == 200


def test_deny_rule_policy_changes_and_other_namespaces(cluster: Cluster) -> None:
    token = cluster.keys["http"].token()
    assert cluster.call(token, path="/admin/reload")[:2] == (403, "RBAC: access denied")
    # The policies of one namespace do not apply in another.
    assert cluster.call(namespace=cluster.other)[0] == 200
    assert cluster.call(namespace=cluster.other, path="/admin/reload")[0] == 200
    # A policy whose selector matches no workload changes nothing; deleting one applies to the next request.
    cluster.apply(
        istio(
            "AuthorizationPolicy",
            "other-app",
            cluster.other,
            {
                "selector": {"matchLabels": {"app": "something-else"}},
                "action": "DENY",
                "rules": [{}],
            },
        )
    )
    assert cluster.call(namespace=cluster.other)[0] == 200
    kubectl(cluster.local_knative, "delete", "authorizationpolicy/echo-require-jwt", "-n", cluster.namespace)
    try:
        assert cluster.call()[0] == 200
        # A token that is presented is still checked when nothing requires one.
        assert cluster.call(cluster.keys["http"].token(exp=1_000_000_000))[0] == 401
    finally:
        cluster.apply(
            istio(
                "AuthorizationPolicy",
                "echo-require-jwt",
                cluster.namespace,
                {
                    "selector": {"matchLabels": {"serving.knative.dev/service": "echo"}},
                    "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
                },
            )
        )
    assert cluster.call()[0] == 403


def test_kubectl_lists_and_invalid_policies_are_refused(cluster: Cluster) -> None:
    names = kubectl(cluster.local_knative, "get", "ra,ap", "-n", cluster.namespace, "-o", "name").split()
    assert sorted(names) == [
        "authorizationpolicy.security.istio.io/echo-no-admin",
        "authorizationpolicy.security.istio.io/echo-require-jwt",
        "requestauthentication.security.istio.io/echo-jwt",
    ]
    typo = istio(
        "AuthorizationPolicy",
        "typo",
        cluster.namespace,
        {
            "rules": [{"from": [{"source": {"requestPrincipal": ["*"]}}]}],
        },
    )
    assert 'unknown field "spec.rules[0].from[0].source.requestPrincipal"' in kubectl_error(cluster, typo)
    bad_action = istio("AuthorizationPolicy", "bad", cluster.namespace, {"action": "REJECT"})
    assert (
        'admission webhook "validation.istio.io" denied the request: configuration is invalid: '
        "spec.action: 'REJECT' is not one of ALLOW, DENY, AUDIT, CUSTOM"
    ) in kubectl_error(cluster, bad_action)
    no_issuer = istio(
        "RequestAuthentication", "bad", cluster.namespace, {"jwtRules": [{"jwksUri": "keys.json"}]}
    )
    error = kubectl_error(cluster, no_issuer)
    assert "spec.jwtRules[0].issuer: issuer must be set" in error
    assert "spec.jwtRules[0].jwksUri: 'keys.json' must be an http://, https:// or file:// URL" in error
    # Nothing refused was stored.
    assert (
        len(kubectl(cluster.local_knative, "get", "ap,ra", "-n", cluster.namespace, "-o", "name").split())
        == 3
    )


def test_the_production_policies_pass_validation(cluster: Cluster) -> None:
    production = Path(__file__).resolve().parents[3] / "include" / "manifests" / "production"
    for name in ("request-authentication.yaml", "authorization-policy.yaml"):
        obj = yaml.safe_load((production / name).read_text())
        obj["metadata"]["namespace"] = cluster.namespace
        out = kubectl(cluster.local_knative, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(obj))
        assert "(server dry run)" in out
