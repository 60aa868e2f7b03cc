"""The provider under exactly rbac.yaml on local_knative --auth: the rollout works, the rest is refused."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from loadtest_dag_runner import run_dag

from knative_rollout.exceptions import KnativeApiRejectedError
from knative_rollout.hooks import KnativeServingHook
from local_knative.runtime import FAST_SCALING_ARGS
from local_knative.testing import LocalKnative
from tests.conftest import REPO_ROOT, require_binary

pytestmark = pytest.mark.integration

NAMESPACE = "models"  # the namespace rbac.yaml grants the Role in
SUBJECT = "system:serviceaccount:models:knative-rollout"
ECHO = "registry.example.com/knative-rollout/echo"

DAG = f"""
import pendulum
from airflow.sdk import DAG, chain
from knative_rollout.operators import KnativeDeployRevisionOperator, KnativeTeardownOperator
from knative_rollout.task_groups import progressive_rollout

target = dict(service_name="echo", namespace="models", wait_timeout=90)
gate = dict(rate=20, duration="2s", timeout="5s", expect_json_field="revision", slo="error_rate<=0.01")

with DAG("rbac_rollout", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         default_args={{"retries": 0}}) as dag:
    chain(
        KnativeDeployRevisionOperator(task_id="deploy_stable", image="{ECHO}:v1", **target),
        progressive_rollout(group_id="rollout", image="{ECHO}:v2", load_test=gate, **target),
        KnativeTeardownOperator(task_id="teardown_revisions", keep=0, **target),
        KnativeTeardownOperator(task_id="teardown_service", delete_service=True, **target),
    )
"""


class Cluster:
    """A local_knative --auth with rbac.yaml applied, and a kubeconfig of the Role's ServiceAccount."""

    def __init__(self, server: LocalKnative, kubectl: str, workdir: Path) -> None:
        self.server = server
        self.kubectl_binary = kubectl
        admin = yaml.safe_load(server.kubeconfig.read_text())
        self.admin_token = admin["users"][0]["user"]["token"]
        self.kubectl("apply", "-f", str(REPO_ROOT / "include/manifests/rbac.yaml"))
        self.token = self.kubectl("create", "token", "knative-rollout", "-n", NAMESPACE).strip()
        admin["users"][0]["user"]["token"] = self.token
        admin["contexts"][0]["context"]["namespace"] = NAMESPACE
        self.kubeconfig = workdir / "serviceaccount-kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(admin))

    def kubectl(self, *args: str, token: str | None = None, check: bool = True) -> str:
        """Run kubectl with the admin kubeconfig (``token`` acts as someone else); return its stdout."""
        command = [self.kubectl_binary, "--kubeconfig", str(self.server.kubeconfig)]
        command += ["--token", token] if token else []
        done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done.stdout if check else done.stdout + done.stderr

    def status_of(self, method: str, path: str, token: str, body: bytes | None = None) -> int:
        """Send one raw request with ``token`` and return its HTTP status."""
        request = urllib.request.Request(
            self.server.api_url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=self.server.ca_file)
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def refusals(self) -> list[str]:
        """Return the 403s the server logged so far."""
        return [line for line in self.server.output(last_lines=100_000).splitlines() if " 403 " in line]

    def api(self, kubeconfig: Path) -> client.ApiClient:
        """Return a kubernetes client of ``kubeconfig``."""
        return config.new_client_from_config(str(kubeconfig))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Run a local_knative of this module's own with --auth, rbac.yaml applied."""
    kubectl = require_binary("kubectl")
    server = LocalKnative.start(
        tmp_path_factory.mktemp("rbac-local-knative"), extra_args=(*FAST_SCALING_ARGS, "--auth")
    )
    try:
        yield Cluster(server, kubectl, tmp_path_factory.mktemp("rbac"))
    finally:
        server.stop()


def test_the_rollout_and_teardown_succeed_under_exactly_the_role(cluster: Cluster, tmp_path: Path) -> None:
    extra = {"kube_config_path": str(cluster.kubeconfig), "ingress_address": cluster.server.ingress_url}
    connection = json.dumps({"conn_type": "kubernetes", "extra": extra})
    refusals_before = cluster.refusals()
    outcome = run_dag(tmp_path, "rbac_rollout", DAG, {"AIRFLOW_CONN_KUBERNETES_DEFAULT": connection})

    states = {task_id: task["state"] for task_id, task in outcome["tasks"].items()}
    assert outcome["state"] == "success", (states, outcome["log"][-4000:])
    assert states["rollout.promote"] == "success" and states["rollout.rollback"] == "skipped", states
    xcom = outcome["xcom"]
    candidate = xcom["rollout.deploy_candidate"]["return_value"]["revision"]
    assert xcom["rollout.traffic_100"]["return_value"]["traffic"][candidate] == 100
    assert xcom["teardown_service"]["return_value"]["deleted_service"] is True
    gone = cluster.kubectl("-n", NAMESPACE, "get", "ksvc/echo", check=False)
    assert "NotFound" in gone, gone
    # The rollout's Events were written as the ServiceAccount, which the Role allows.
    events = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "events", "-o", "json"))["items"]
    assert any(e["involvedObject"]["name"] == "echo" for e in events)
    # Nothing the rollout asked was refused (not even a refusal it would tolerate): the Role is enough.
    assert cluster.refusals() == refusals_before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda core, rbac: core.delete_namespace(NAMESPACE),
            f'namespaces "{NAMESPACE}" is forbidden: User "{SUBJECT}" cannot delete resource "namespaces" in '
            f'API group "" in the namespace "{NAMESPACE}"',
        ),
        (
            lambda core, rbac: rbac.create_namespaced_role(
                NAMESPACE,
                {
                    "metadata": {"name": "more"},
                    "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                },
            ),
            f'roles.rbac.authorization.k8s.io is forbidden: User "{SUBJECT}" cannot create resource "roles" '
            f'in API group "rbac.authorization.k8s.io" in the namespace "{NAMESPACE}"',
        ),
        (
            lambda core, rbac: core.list_namespaced_secret(NAMESPACE),
            f'secrets is forbidden: User "{SUBJECT}" cannot list resource "secrets" in API group "" in the '
            f'namespace "{NAMESPACE}"',
        ),
        (
            lambda core, rbac: core.list_namespaced_pod("default"),
            f'pods is forbidden: User "{SUBJECT}" cannot list resource "pods" in API group "" in the '
            'namespace "default"',
        ),
    ],
    ids=["delete-namespace", "create-role", "list-secrets", "pods-elsewhere"],
)
def test_verbs_the_role_lacks_are_refused_with_the_api_servers_403(
    cluster: Cluster, call: Any, message: str
) -> None:
    api = cluster.api(cluster.kubeconfig)
    with pytest.raises(ApiException) as refused:
        call(client.CoreV1Api(api), client.RbacAuthorizationV1Api(api))
    assert refused.value.status == 403
    status = json.loads(refused.value.body)
    assert (status["kind"], status["reason"], status["code"], status["message"]) == (
        "Status",
        "Forbidden",
        403,
        message,
    )
    assert any(message in line for line in cluster.refusals())


def test_a_write_outside_the_role_fails_the_hook_with_a_permanent_error(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = {"kube_config_path": str(cluster.kubeconfig)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_RBAC", json.dumps({"conn_type": "kubernetes", "extra": extra})
    )
    hook = KnativeServingHook(kubernetes_conn_id="kubernetes_rbac")
    body = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"image": f"{ECHO}:v1"}]}}},
    }
    with pytest.raises(KnativeApiRejectedError) as refused:
        hook.create_service(body)
    text = str(refused.value)
    assert "HTTP 403" in text, text
    assert f'User "{SUBJECT}" cannot create resource "services" in API group "serving.knative.dev"' in text
    assert 'in the namespace "default"' in text
    assert "grant that verb to the identity of connection 'kubernetes_rbac'" in text


# (verb, resource, namespace, allowed): kubectl auth can-i must say what enforcement does.
CAN_I = [
    ("get", "services.serving.knative.dev", NAMESPACE, True),
    ("watch", "services.serving.knative.dev", NAMESPACE, True),
    ("patch", "services.serving.knative.dev", NAMESPACE, True),
    ("deletecollection", "services.serving.knative.dev", NAMESPACE, False),
    ("delete", "revisions.serving.knative.dev", NAMESPACE, True),
    ("update", "revisions.serving.knative.dev", NAMESPACE, False),
    ("delete", "routes.serving.knative.dev", NAMESPACE, False),
    ("create", "leases.coordination.k8s.io", NAMESPACE, True),
    ("patch", "leases.coordination.k8s.io", NAMESPACE, False),
    ("get", "pods/log", NAMESPACE, True),
    ("delete", "pods", NAMESPACE, False),
    ("create", "events", NAMESPACE, True),
    ("list", "secrets", NAMESPACE, False),
    ("get", "services.serving.knative.dev", "default", False),
    ("create", "roles.rbac.authorization.k8s.io", NAMESPACE, False),
    ("delete", "namespaces", "", False),
    ("create", "serviceaccounts/token", NAMESPACE, False),
]


def _path(resource: str, namespace: str, verb: str) -> tuple[str, str, bytes | None]:
    """Return the (method, path, body) that does ``verb`` on ``resource``: nothing is really changed.

    Named verbs address an object that does not exist (404 when allowed), create sends an empty body
    (400 when allowed), so only a 403 says "refused".
    """
    plural, _, group = resource.partition(".")
    plural, _, subresource = plural.partition("/")
    base = "/api/v1" if not group else f"/apis/{group}/v1"
    base += f"/namespaces/{namespace}/{plural}" if namespace else f"/{plural}"
    named = f"{base}/nothing-here" + (f"/{subresource}" if subresource else "")
    return {
        "get": ("GET", named, None),
        "list": ("GET", base, None),
        "watch": ("GET", base + "?watch=1&timeoutSeconds=1", None),
        "create": ("POST", named, b"") if subresource else ("POST", base, b""),
        "update": ("PUT", named, b"{}"),
        "patch": ("PATCH", named, b"{}"),
        "delete": ("DELETE", named, None),
        "deletecollection": ("DELETE", base + "?labelSelector=nothing%3Dhere", None),
    }[verb]


@pytest.mark.parametrize(("verb", "resource", "namespace", "allowed"), CAN_I)
def test_kubectl_auth_can_i_agrees_with_enforcement(
    cluster: Cluster, verb: str, resource: str, namespace: str, allowed: bool
) -> None:
    scope = ["-n", namespace] if namespace else []
    plural, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, plural, *scope] + ([f"--subresource={subresource}"] if subresource else [])
    answer = cluster.kubectl(*args, token=cluster.token, check=False).strip().splitlines()[0]
    assert answer == ("yes" if allowed else "no"), (args, answer)
    method, path, body = _path(resource, namespace, verb)
    status = cluster.status_of(method, path, cluster.token, body)
    assert (status != 403) == allowed, (method, path, status)


def test_kubectl_auth_whoami_and_can_i_list(cluster: Cluster) -> None:
    whoami = cluster.kubectl("auth", "whoami", "-o", "json", token=cluster.token)
    user = json.loads(whoami)["status"]["userInfo"]
    assert user["username"] == SUBJECT
    assert "system:serviceaccounts:models" in user["groups"]
    listed = cluster.kubectl("auth", "can-i", "--list", "-n", NAMESPACE, token=cluster.token)
    assert any(
        line.split()[0] == "services.serving.knative.dev"
        and "[get list watch create update patch delete]" in line
        for line in listed.splitlines()
    ), listed
    admin = json.loads(cluster.kubectl("auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert "system:masters" in admin["groups"]


def test_the_admin_may_impersonate_the_serviceaccount_and_it_may_not_impersonate_anyone(
    cluster: Cluster,
) -> None:
    as_sa = ["--as", SUBJECT, "-n", NAMESPACE]
    assert cluster.kubectl("auth", "can-i", "create", "ksvc", *as_sa).strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "list", "secrets", *as_sa, check=False).strip() == "no"
    refused = cluster.kubectl("--as", "local-knative-admin", "get", "pods", token=cluster.token, check=False)
    assert (
        f'users "local-knative-admin" is forbidden: User "{SUBJECT}" cannot impersonate resource "users" in '
        'API group "" at the cluster scope'
    ) in refused, refused


def test_a_bad_token_is_401_for_kubectl_and_the_kubernetes_client(cluster: Cluster, tmp_path: Path) -> None:
    refused = cluster.kubectl("get", "pods", "-n", NAMESPACE, token="not-a-token", check=False)
    assert "error: You must be logged in to the server (Unauthorized)" in refused, refused

    bad = yaml.safe_load(cluster.kubeconfig.read_text())
    bad["users"][0]["user"]["token"] = cluster.token[:-4] + "AAAA"  # a signature that does not match
    path = tmp_path / "bad-kubeconfig"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ApiException) as unauthorized:
        client.CoreV1Api(cluster.api(path)).list_namespaced_pod(NAMESPACE)
    assert unauthorized.value.status == 401
    assert json.loads(unauthorized.value.body)["reason"] == "Unauthorized"
    assert cluster.status_of("GET", f"/api/v1/namespaces/{NAMESPACE}/pods", "") == 401


def test_a_deleted_serviceaccounts_tokens_stop_working(cluster: Cluster) -> None:
    cluster.kubectl("-n", NAMESPACE, "create", "serviceaccount", "short-lived")
    token = cluster.kubectl("create", "token", "short-lived", "-n", NAMESPACE).strip()
    assert cluster.status_of("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token, b"{}") == 201
    cluster.kubectl("-n", NAMESPACE, "delete", "serviceaccount", "short-lived")
    assert cluster.status_of("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token, b"{}") == 401


def test_without_auth_every_token_is_the_admin_and_the_reviews_say_so(local_knative: LocalKnative) -> None:
    kubectl = [
        require_binary("kubectl"),
        "--kubeconfig",
        str(local_knative.kubeconfig),
        "--token",
        "anything",
    ]

    def run(*args: str) -> str:
        return subprocess.run(
            [*kubectl, *args], capture_output=True, text=True, timeout=60, check=True
        ).stdout

    assert run("auth", "can-i", "delete", "namespaces").strip() == "yes"
    assert (
        json.loads(run("auth", "whoami", "-o", "json"))["status"]["userInfo"]["username"]
        == "local-knative-admin"
    )


def test_kubectl_creates_rbac_objects_and_a_bad_one_is_refused_naming_the_field(cluster: Cluster) -> None:
    ns = ["-n", NAMESPACE]
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", *ns)  # protobuf
    cluster.kubectl("create", "rolebinding", "pod-reader", "--role=pod-reader", "--user=alice", *ns)
    rules = json.loads(cluster.kubectl("get", "role", "pod-reader", "-o", "json", *ns))["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    assert cluster.kubectl("auth", "can-i", "list", "pods", "--as", "alice", *ns).strip() == "yes"

    bad = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: bad}\n"
    bad += "rules: [{resources: [pods]}]\n"
    done = subprocess.run(
        [cluster.kubectl_binary, "--kubeconfig", str(cluster.server.kubeconfig), "apply", *ns, "-f", "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert 'The Role "bad" is invalid: ' in done.stderr
    assert "rules[0].verbs: Required value: verbs must contain at least one value" in done.stderr
    assert (
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group" in done.stderr
    )
    changed = cluster.kubectl(
        "patch",
        "rolebinding",
        "pod-reader",
        *ns,
        "--type=merge",
        "-p",
        '{"roleRef":{"name":"other"}}',
        check=False,
    )
    assert "cannot change roleRef" in changed, changed


def test_a_token_shorter_than_ten_minutes_is_refused(cluster: Cluster) -> None:
    refused = cluster.kubectl(
        "create", "token", "knative-rollout", "-n", NAMESPACE, "--duration=1m", check=False
    )
    assert (
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        in refused
    )
