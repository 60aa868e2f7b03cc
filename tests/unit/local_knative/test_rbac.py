"""RBAC rule matching, bindings, the 403 message, request attributes from paths, and the static token file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local_knative.auth import TokenFileError, read_token_file
from local_knative.rbac import (
    Policy,
    Request,
    User,
    allowed,
    forbidden_message,
    request_of,
    rule_allows,
    rules_for,
    validation_problems,
)

SA = User("system:serviceaccount:models:deployer", "u1", ("system:serviceaccounts", "system:authenticated"))
ALICE = User("alice", "a1", ("devs", "system:authenticated"))


def rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> Any:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names or []}


KSVC_GET = Request("get", "serving.knative.dev", "services", name="echo", namespace="models")


@pytest.mark.parametrize(
    ("policy_rule", "request_", "expected"),
    [
        (rule(["get"], ["serving.knative.dev"], ["services"]), KSVC_GET, True),
        (rule(["*"], ["*"], ["*"]), KSVC_GET, True),
        (rule(["list"], ["serving.knative.dev"], ["services"]), KSVC_GET, False),
        (rule(["get"], [""], ["services"]), KSVC_GET, False),
        (rule(["get"], ["serving.knative.dev"], ["revisions"]), KSVC_GET, False),
        (rule(["get"], ["serving.knative.dev"], ["services"], ["echo"]), KSVC_GET, True),
        (rule(["get"], ["serving.knative.dev"], ["services"], ["other"]), KSVC_GET, False),
        # A list has no name: a rule limited to names never grants it.
        (
            rule(["list"], ["*"], ["services"], ["echo"]),
            Request("list", "serving.knative.dev", "services"),
            False,
        ),
        # Subresources are named resource/subresource; the resource alone does not grant them.
        (rule(["get"], [""], ["pods"]), Request("get", "", "pods", "log", "p", "models"), False),
        (rule(["get"], [""], ["pods/log"]), Request("get", "", "pods", "log", "p", "models"), True),
        (rule(["get"], [""], ["pods/*"]), Request("get", "", "pods", "log", "p", "models"), True),
        (rule(["get"], [""], ["*/log"]), Request("get", "", "pods", "log", "p", "models"), True),
        (rule(["get"], [""], ["pods/log"]), Request("get", "", "pods", "", "p", "models"), False),
        (
            rule(["update"], ["serving.knative.dev"], ["services/status"]),
            Request("update", "serving.knative.dev", "services", "status", "echo", "models"),
            True,
        ),
        (
            rule(["watch"], ["coordination.k8s.io"], ["leases"]),
            Request("watch", "coordination.k8s.io", "leases"),
            True,
        ),
        (rule(["deletecollection"], [""], ["pods"]), Request("delete", "", "pods", name="p"), False),
        ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, Request("get", path="/healthz"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, Request("get", path="/apis/x/v1"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, Request("get", path="/api"), False),
        # A resource rule never grants a path, nor a path rule a resource.
        (rule(["get"], ["*"], ["*"]), Request("get", path="/healthz"), False),
        ({"verbs": ["*"], "nonResourceURLs": ["*"]}, KSVC_GET, False),
    ],
)
def test_rule_allows(policy_rule: Any, request_: Request, expected: bool) -> None:
    assert rule_allows(policy_rule, request_) is expected


def binding(kind: str, namespace: str | None, role_kind: str, role: str, subjects: list[Any]) -> Any:
    meta = {"name": f"{role}-binding", **({"namespace": namespace} if namespace else {})}
    return {
        "kind": kind,
        "metadata": meta,
        "roleRef": {"kind": role_kind, "name": role},
        "subjects": subjects,
    }


POLICY = Policy(
    roles=[
        {
            "metadata": {"name": "deployer", "namespace": "models"},
            "rules": [rule(["*"], ["serving.knative.dev"], ["services"])],
        }
    ],
    cluster_roles=[{"metadata": {"name": "pod-reader"}, "rules": [rule(["get", "list"], [""], ["pods"])]}],
    role_bindings=[
        binding(
            "RoleBinding", "models", "Role", "deployer", [{"kind": "ServiceAccount", "name": "deployer"}]
        ),
        # A RoleBinding of a ClusterRole grants it in the binding's namespace only.
        binding("RoleBinding", "models", "ClusterRole", "pod-reader", [{"kind": "Group", "name": "devs"}]),
        # A binding of a role that does not exist grants nothing.
        binding("RoleBinding", "models", "Role", "missing", [{"kind": "User", "name": "alice"}]),
    ],
    cluster_role_bindings=[
        binding(
            "ClusterRoleBinding",
            None,
            "ClusterRole",
            "pod-reader",
            [{"kind": "ServiceAccount", "name": "deployer", "namespace": "models"}],
        ),
    ],
)


@pytest.mark.parametrize(
    ("user", "request_", "expected"),
    [
        (SA, Request("delete", "serving.knative.dev", "services", name="x", namespace="models"), True),
        (SA, Request("delete", "serving.knative.dev", "services", name="x", namespace="other"), False),
        (
            SA,
            Request("list", "", "pods", namespace="other"),
            True,
        ),  # cluster-wide through the ClusterRoleBinding
        (SA, Request("list", "", "pods"), True),
        (ALICE, Request("list", "", "pods", namespace="models"), True),
        (ALICE, Request("list", "", "pods", namespace="other"), False),
        (ALICE, Request("list", "", "pods"), False),
        (ALICE, Request("get", "serving.knative.dev", "services", name="x", namespace="models"), False),
        (
            User("system:serviceaccount:other:deployer"),
            Request("get", "serving.knative.dev", "services", namespace="models"),
            False,
        ),
        (User("root", groups=("system:masters",)), Request("delete", "", "namespaces", name="models"), True),
    ],
)
def test_allowed_follows_the_bindings(user: User, request_: Request, expected: bool) -> None:
    assert allowed(user, request_, POLICY) is expected


def test_rules_for_lists_cluster_and_namespace_rules() -> None:
    assert len(rules_for(SA, "models", POLICY)) == 2
    assert len(rules_for(SA, "", POLICY)) == 1
    assert rules_for(ALICE, "other", POLICY) == []


@pytest.mark.parametrize(
    ("request_", "qualified", "expected"),
    [
        (
            Request("delete", "serving.knative.dev", "services", name="echo", namespace="models"),
            "services.serving.knative.dev",
            'services.serving.knative.dev "echo" is forbidden: User "alice" cannot delete resource '
            '"services" in API group "serving.knative.dev" in the namespace "models"',
        ),
        (
            Request("list", "", "namespaces"),
            "namespaces",
            'namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the '
            "cluster scope",
        ),
        (
            Request("get", "", "pods", "log", "p", "models"),
            "pods",
            'pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the '
            'namespace "models"',
        ),
        (Request("get", path="/metrics"), "", 'forbidden: User "alice" cannot get path "/metrics"'),
    ],
)
def test_forbidden_message_is_the_api_servers(request_: Request, qualified: str, expected: str) -> None:
    assert forbidden_message(ALICE, request_, qualified) == expected


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/models/pods", {}, Request("list", "", "pods", namespace="models")),
        (
            "GET",
            "/api/v1/namespaces/models/pods",
            {"watch": "true"},
            Request("watch", "", "pods", namespace="models"),
        ),
        ("GET", "/api/v1/namespaces/m/pods/p/log", {}, Request("get", "", "pods", "log", "p", "m")),
        (
            "POST",
            "/apis/serving.knative.dev/v1/namespaces/m/services",
            {},
            Request("create", "serving.knative.dev", "services", namespace="m"),
        ),
        (
            "PATCH",
            "/apis/serving.knative.dev/v1/namespaces/m/services/s/status",
            {},
            Request("patch", "serving.knative.dev", "services", "status", "s", "m"),
        ),
        ("DELETE", "/api/v1/namespaces/m/pods", {}, Request("deletecollection", "", "pods", namespace="m")),
        (
            "POST",
            "/api/v1/namespaces/m/serviceaccounts/sa/token",
            {},
            Request("create", "", "serviceaccounts", "token", "sa", "m"),
        ),
        (
            "PUT",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            {},
            Request("update", "rbac.authorization.k8s.io", "clusterroles", name="admin"),
        ),
        # A namespace is addressed as itself, in its own namespace; its status is a subresource.
        ("DELETE", "/api/v1/namespaces/m", {}, Request("delete", "", "namespaces", name="m", namespace="m")),
        ("PUT", "/api/v1/namespaces/m/status", {}, Request("update", "", "namespaces", "status", "m", "m")),
        # A list or watch of one object by field selector is about that object, as resourceNames see it.
        (
            "GET",
            "/api/v1/namespaces/m/pods",
            {"fieldSelector": "metadata.name=p"},
            Request("list", "", "pods", name="p", namespace="m"),
        ),
        (
            "GET",
            "/api/v1/namespaces/m/pods",
            {"fieldSelector": "metadata.name==p", "watch": "1"},
            Request("watch", "", "pods", name="p", namespace="m"),
        ),
        (
            "GET",
            "/api/v1/namespaces/m/pods",
            {"fieldSelector": "metadata.name!=p"},
            Request("list", "", "pods", namespace="m"),
        ),
        ("GET", "/apis/serving.knative.dev/v1", {}, Request("get")),
        ("GET", "/openapi/v3", {}, Request("get")),
    ],
)
def test_request_of_reads_the_path_as_request_info_does(
    method: str, path: str, query: dict[str, str], expected: Request
) -> None:
    asked = request_of(method, path, query)
    assert asked == Request(**{**expected.__dict__, "path": path})


def test_token_file_is_read_like_kube_apiservers(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('# comment\nt1,alice,a1,"devs,ops"\nt2,bob,b2\n')
    users = read_token_file(path)
    assert users["t1"] == User("alice", "a1", ("devs", "ops", "system:authenticated"))
    assert users["t2"] == User("bob", "b2", ("system:authenticated",))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("t1,alice\n", 'line 1: expected token,user,uid[,"group1,group2"]'),
        ("t1,alice,a\n,bob,b\n", 'line 2: expected token,user,uid[,"group1,group2"]'),
        ("t1,alice,a\nt1,bob,b\n", "line 2: this token is already given on an earlier line"),
    ],
)
def test_a_bad_token_file_names_the_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(text)
    with pytest.raises(TokenFileError, match=error.replace("[", r"\[").replace("]", r"\]")):
        read_token_file(path)


REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}
SA_SUBJECT = {"kind": "ServiceAccount", "name": "deployer"}


@pytest.mark.parametrize(
    ("kind", "obj", "old", "expected"),
    [
        ("Role", {"rules": [rule(["get"], [""], ["pods"])]}, None, []),
        (
            "Role",
            {"rules": [{"apiGroups": [""], "resources": ["pods"]}]},
            None,
            ["rules[0].verbs: Required value: verbs must contain at least one value"],
        ),
        (
            "Role",
            {"rules": [{"verbs": ["get"], "resources": ["pods"]}]},
            None,
            ["rules[0].apiGroups: Required value: resource rules must supply at least one api group"],
        ),
        (
            "ClusterRole",
            {"rules": [{"verbs": ["get"], "apiGroups": [""]}]},
            None,
            ["rules[0].resources: Required value: resource rules must supply at least one resource"],
        ),
        ("ClusterRole", {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}, None, []),
        (
            "Role",
            {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
            None,
            [
                'rules[0].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to '
                "non-resource URLs"
            ],
        ),
        (
            "ClusterRole",
            {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}]},
            None,
            [
                'rules[0].nonResourceURLs: Invalid value: ["/x"]: rules cannot apply to both regular '
                "resources and non-resource URLs"
            ],
        ),
        ("RoleBinding", {"roleRef": REF, "subjects": [SA_SUBJECT]}, None, []),
        ("RoleBinding", {"subjects": []}, None, ["roleRef: Required value"]),
        (
            "RoleBinding",
            {"roleRef": {**REF, "kind": "Thing"}},
            None,
            ['roleRef.kind: Unsupported value: "Thing": supported values: "ClusterRole", "Role"'],
        ),
        (
            "ClusterRoleBinding",
            {"roleRef": REF},
            None,
            ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'],
        ),
        (
            "RoleBinding",
            {"roleRef": {**REF, "apiGroup": "", "name": ""}},
            None,
            [
                'roleRef.apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"',
                "roleRef.name: Required value",
            ],
        ),
        (
            "ClusterRoleBinding",
            {"roleRef": {**REF, "kind": "ClusterRole"}, "subjects": [SA_SUBJECT]},
            None,
            ["subjects[0].namespace: Required value"],
        ),
        (
            "RoleBinding",
            {"roleRef": REF, "subjects": [{"kind": "User", "name": "alice"}]},
            None,
            ['subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"'],
        ),
        (
            "RoleBinding",
            {"roleRef": REF, "subjects": [{"kind": "Robot", "name": "r2"}]},
            None,
            [
                'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
                '"User", "Group"'
            ],
        ),
        (
            "RoleBinding",
            {"roleRef": REF, "subjects": [{"kind": "ServiceAccount"}]},
            None,
            ["subjects[0].name: Required value"],
        ),
        (
            "RoleBinding",
            {"roleRef": {**REF, "name": "other"}},
            {"roleRef": REF},
            [
                'roleRef: Invalid value: {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", '
                '"name": "other"}: cannot change roleRef'
            ],
        ),
        ("ConfigMap", {"data": {}}, None, []),
    ],
)
def test_validation_refuses_what_the_api_server_refuses(
    kind: str, obj: Any, old: Any, expected: list[str]
) -> None:
    assert [f"{c['field']}: {c['message']}" for c in validation_problems(kind, obj, old)] == expected
