"""Kubernetes RBAC rule matching, pure: who may do what, from Roles, ClusterRoles and their bindings.

The same semantics as kube-apiserver's RBAC authorizer (``plugin/pkg/auth/authorizer/rbac``): a request
is allowed when any rule of any role bound to the user (a ClusterRoleBinding anywhere, a RoleBinding in
the request's namespace) matches its verb, API group, resource (``pods``, ``pods/log``, ``*``, ``*/log``,
``pods/*``) and, when the rule names them, its resourceNames; ``*`` matches any verb, group or resource.
Nothing denies: RBAC only adds permissions. Members of ``system:masters`` are allowed everything, as the
API server's privileged-group authorizer does before RBAC is asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MASTERS = "system:masters"
SERVICEACCOUNT_PREFIX = "system:serviceaccount:"

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class User:
    """An authenticated identity: user name, uid and groups (``system:authenticated`` included)."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Request:
    """What is asked of the API: a resource request (``resource`` set) or a non-resource path."""

    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        """Return whether this addresses a resource (not a path such as ``/healthz``)."""
        return bool(self.resource)


@dataclass(frozen=True)
class Policy:
    """The RBAC objects in force: every Role, ClusterRole, RoleBinding and ClusterRoleBinding."""

    roles: Sequence[Obj] = ()
    cluster_roles: Sequence[Obj] = ()
    role_bindings: Sequence[Obj] = ()
    cluster_role_bindings: Sequence[Obj] = ()
    _index: dict[tuple[str, str, str], Obj] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        for kind, objects in (("Role", self.roles), ("ClusterRole", self.cluster_roles)):
            for obj in objects:
                meta = obj.get("metadata") or {}
                namespace = meta.get("namespace", "") if kind == "Role" else ""
                self._index[(kind, namespace, meta.get("name", ""))] = obj

    def role_rules(self, role_ref: Obj, namespace: str) -> list[Obj]:
        """Return the rules of the role a binding refers to (none when that role does not exist)."""
        kind = role_ref.get("kind", "")
        role = self._index.get((kind, namespace if kind == "Role" else "", role_ref.get("name", "")))
        return list((role or {}).get("rules") or [])


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(value in ("*", wanted) for value in values)


def _resource_matches(resources: Iterable[str], request: Request) -> bool:
    combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    for resource in resources:
        if resource in ("*", combined):
            return True
        if request.subresource and resource in (f"*/{request.subresource}", f"{request.resource}/*"):
            return True
    return False


def _path_matches(urls: Iterable[str], path: str) -> bool:
    return any(url == path or (url.endswith("*") and path.startswith(url[:-1])) for url in urls)


def rule_allows(rule: Obj, request: Request) -> bool:
    """Return whether one PolicyRule grants ``request``."""
    if not _matches(rule.get("verbs") or [], request.verb):
        return False
    if not request.is_resource:
        return _path_matches(rule.get("nonResourceURLs") or [], request.path)
    if not _matches(rule.get("apiGroups") or [], request.api_group):
        return False
    if not _resource_matches(rule.get("resources") or [], request):
        return False
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def subject_matches(subject: Obj, user: User, binding_namespace: str) -> bool:
    """Return whether a binding's subject is ``user`` (a User, one of its Groups, or its ServiceAccount)."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"{SERVICEACCOUNT_PREFIX}{namespace}:{name}"
    return False


def rules_for(user: User, namespace: str, policy: Policy) -> list[Obj]:
    """Return every rule that applies to ``user`` in ``namespace`` ("" = cluster-scoped rules only)."""
    rules: list[Obj] = []
    for binding in policy.cluster_role_bindings:
        if any(subject_matches(s, user, "") for s in binding.get("subjects") or []):
            rules += policy.role_rules(binding.get("roleRef") or {}, "")
    if namespace:
        for binding in policy.role_bindings:
            if (binding.get("metadata") or {}).get("namespace") != namespace:
                continue
            if any(subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
                rules += policy.role_rules(binding.get("roleRef") or {}, namespace)
    return rules


def allowed(user: User, request: Request, policy: Policy) -> bool:
    """Return whether RBAC (or membership of ``system:masters``) allows ``request`` for ``user``."""
    if MASTERS in user.groups:
        return True
    namespace = request.namespace if request.is_resource else ""
    return any(rule_allows(rule, request) for rule in rules_for(user, namespace, policy))


def forbidden_message(user: User, request: Request, qualified_resource: str) -> str:
    """Return the API server's 403 message, e.g. ``pods "p" is forbidden: User "u" cannot get ...``.

    :param qualified_resource: ``services.serving.knative.dev`` (``pods`` in the core group).
    """
    if not request.is_resource:
        return f'forbidden: User "{user.name}" cannot {request.verb} path "{request.path}"'
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    scope = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    reason = (
        f'User "{user.name}" cannot {request.verb} resource "{resource}" in API group '
        f'"{request.api_group}" {scope}'
    )
    subject = f'{qualified_resource} "{request.name}"' if request.name else qualified_resource
    return f"{subject} is forbidden: {reason}"


_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def verb_of(method: str, named: bool, watch: bool) -> str:
    """Return the Kubernetes verb of an HTTP request (``get``, ``list``, ``watch``, ``deletecollection``)."""
    if not named:
        collection = {"GET": "watch" if watch else "list", "POST": "create", "DELETE": "deletecollection"}
        return collection.get(method, method.lower())
    # A POST to a named object is a create of its subresource (``serviceaccounts/NAME/token``).
    named_verbs = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    return named_verbs.get(method, method.lower())


def request_of(method: str, path: str, query: Mapping[str, str]) -> Request:
    """Return what an HTTP request asks, read from its path alone as the API server's RequestInfo does.

    ``/api/v1/namespaces/NS/pods/NAME/log`` is resource ``pods``, subresource ``log``; a list or watch
    with ``fieldSelector=metadata.name=X`` is about X; paths outside ``/api/v1/...`` and
    ``/apis/GROUP/VERSION/...`` (``/healthz``, discovery) are non-resource requests.
    """
    parts = [part for part in path.strip("/").split("/") if part]
    non_resource = Request(verb=method.lower() if method != "HEAD" else "get", path=path)
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return non_resource
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource, name, subresource = [*rest, "", ""][:3]
    watch = query.get("watch") in ("true", "True", "1")
    verb = verb_of(method, bool(name), watch)
    if verb in ("list", "watch"):
        for selector in (query.get("fieldSelector") or "").split(","):
            key, _, value = selector.partition("=")
            if key.strip() == "metadata.name" and value.lstrip("="):
                name = value.lstrip("=").strip()
    return Request(verb, group, resource, subresource, name, namespace, path)


_RBAC_GROUP = "rbac.authorization.k8s.io"
Cause = dict[str, str]


def _required(path: str, detail: str = "") -> Cause:
    message = f"Required value: {detail}" if detail else "Required value"
    return {"type": "FieldValueRequired", "message": message, "field": path}


def _not_supported(path: str, value: Any, supported: Sequence[str]) -> Cause:
    values = ", ".join(f'"{item}"' for item in supported)
    message = f"Unsupported value: {json.dumps(value)}: supported values: {values}"
    return {"type": "FieldValueNotSupported", "message": message, "field": path}


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return {
        "type": "FieldValueInvalid",
        "message": f"Invalid value: {json.dumps(value)}: {detail}",
        "field": path,
    }


def _rule_problems(rule: Any, path: str, namespaced: bool) -> list[Cause]:
    if not isinstance(rule, Mapping):
        return [_invalid(path, rule, "must be an object")]
    causes = (
        [] if rule.get("verbs") else [_required(f"{path}.verbs", "verbs must contain at least one value")]
    )
    urls = rule.get("nonResourceURLs")
    if urls:
        if namespaced:
            causes.append(
                _invalid(
                    f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"
                )
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            detail = "rules cannot apply to both regular resources and non-resource URLs"
            causes.append(_invalid(f"{path}.nonResourceURLs", urls, detail))
        return causes
    if not rule.get("apiGroups"):
        causes.append(_required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        causes.append(_required(f"{path}.resources", "resource rules must supply at least one resource"))
    return causes


def _subject_problems(subject: Any, path: str, namespaced: bool) -> list[Cause]:
    if not isinstance(subject, Mapping):
        return [_invalid(path, subject, "must be an object")]
    causes = [] if subject.get("name") else [_required(f"{path}.name")]
    kind, group = subject.get("kind"), subject.get("apiGroup", "")
    if kind == "ServiceAccount":
        if group:
            causes.append(_not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            causes.append(_required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != _RBAC_GROUP:
            causes.append(_not_supported(f"{path}.apiGroup", group, [_RBAC_GROUP]))
    else:
        causes.append(_not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return causes


def validation_problems(kind: str, obj: Obj, old: Obj | None) -> list[Cause]:
    """Return what the API server's RBAC validation refuses in ``obj`` (none for other kinds).

    :param kind: ``Role``, ``ClusterRole``, ``RoleBinding`` or ``ClusterRoleBinding``.
    :param old: the stored object on an update (a binding's ``roleRef`` may not change).
    """
    if kind in ("Role", "ClusterRole"):
        rules = obj.get("rules") or []
        if not isinstance(rules, list):
            return [_invalid("rules", rules, "must be a list")]
        return [
            c for i, rule in enumerate(rules) for c in _rule_problems(rule, f"rules[{i}]", kind == "Role")
        ]
    if kind not in ("RoleBinding", "ClusterRoleBinding"):
        return []
    causes: list[Cause] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, Mapping):
        return [_required("roleRef")]
    if ref.get("apiGroup") != _RBAC_GROUP:
        causes.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [_RBAC_GROUP]))
    supported = ["ClusterRole", "Role"] if kind == "RoleBinding" else ["ClusterRole"]
    if ref.get("kind") not in supported:
        causes.append(_not_supported("roleRef.kind", ref.get("kind", ""), supported))
    if not ref.get("name"):
        causes.append(_required("roleRef.name"))
    subjects = obj.get("subjects") or []
    if not isinstance(subjects, list):
        return [*causes, _invalid("subjects", subjects, "must be a list")]
    for i, subject in enumerate(subjects):
        causes += _subject_problems(subject, f"subjects[{i}]", kind == "RoleBinding")
    if old is not None and old.get("roleRef") != ref:
        causes.append(_invalid("roleRef", ref, "cannot change roleRef"))
    return causes
