"""Discovery documents: ``/version``, ``/api``, ``/apis`` (plain and aggregated v2) and resource lists."""

from __future__ import annotations

from typing import Any

from local_knative import kinds
from local_knative.kinds import Kind

KUBERNETES_VERSION = ("1", "32", "v1.32.0")
AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
RESOURCE_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = ["get", "patch", "update"]


def version_info() -> dict[str, Any]:
    """Return the ``version.Info`` kubectl reads from ``/version``."""
    major, minor, git_version = KUBERNETES_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"{git_version}+local-knative",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def wants_aggregated(accept: str) -> bool:
    """Return whether the Accept header asks for aggregated discovery v2."""
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept and "g=apidiscovery.k8s.io" in accept


def _kinds_of(group: str, version: str) -> list[Kind]:
    return [k for k in kinds.ALL_KINDS if k.group == group and k.version == version]


def _subresources(kind: Kind) -> list[tuple[str, list[str]]]:
    subresources = []
    if kind.status_subresource:
        subresources.append(("status", SUBRESOURCE_VERBS))
    if kind == kinds.POD:
        subresources.append(("log", ["get"]))
    if kind == kinds.SERVICEACCOUNT:
        subresources.append(("token", ["create"]))
    return subresources


def api_versions(server_address: str) -> dict[str, Any]:
    """Return the plain ``APIVersions`` answer of ``/api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict[str, Any]:
    """Return the plain ``APIGroupList`` answer of ``/apis``."""
    groups = []
    for group, version in kinds.group_versions():
        if not group:
            continue
        group_version = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [group_version], "preferredVersion": group_version})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> dict[str, Any] | None:
    """Return the ``APIGroup`` answer of ``/apis/GROUP``, or None when the group is not served."""
    for group in api_group_list()["groups"]:
        if group["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **group}
    return None


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """Return the ``APIResourceList`` of one group/version, or None when it is not served."""
    served = _kinds_of(group, version)
    if not served:
        return None
    resources: list[dict[str, Any]] = []
    for kind in served:
        resource: dict[str, Any] = {
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": RESOURCE_VERBS,
        }
        if kind.short_names:
            resource["shortNames"] = list(kind.short_names)
        if kind.categories:
            resource["categories"] = list(kind.categories)
        resources.append(resource)
        for subresource, verbs in _subresources(kind):
            resources.append(
                {
                    "name": f"{kind.plural}/{subresource}",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": verbs,
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def aggregated_discovery(core: bool) -> dict[str, Any]:
    """Return the ``APIGroupDiscoveryList`` for ``/api`` (``core=True``) or ``/apis``."""
    items = []
    for group, version in kinds.group_versions():
        if bool(group) == core:
            continue
        resources = []
        for kind in _kinds_of(group, version):
            response_kind = {"group": group, "version": version, "kind": kind.kind}
            resource: dict[str, Any] = {
                "resource": kind.plural,
                "responseKind": response_kind,
                "scope": "Namespaced" if kind.namespaced else "Cluster",
                "singularResource": kind.singular,
                "verbs": RESOURCE_VERBS,
            }
            if kind.short_names:
                resource["shortNames"] = list(kind.short_names)
            if kind.categories:
                resource["categories"] = list(kind.categories)
            subresources = [
                {"subresource": name, "responseKind": response_kind, "verbs": verbs}
                for name, verbs in _subresources(kind)
            ]
            if subresources:
                resource["subresources"] = subresources
            resources.append(resource)
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
