"""The resource kinds local_knative serves, with what discovery, OpenAPI and the REST layer need to know."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One served resource (group, version, plural) and how clients address it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False

    @property
    def api_version(self) -> str:
        """Return ``apiVersion`` as objects carry it: ``v1`` for the core group, else ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """Return the qualified resource name used in messages, e.g. ``services.serving.knative.dev``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        """Return the lower-case singular name (``service``)."""
        return self.kind.lower()


NAMESPACE = Kind(
    "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), status_subresource=True
)
EVENT = Kind("", "v1", "events", "Event", short_names=("ev",))
CONFIGMAP = Kind("", "v1", "configmaps", "ConfigMap", short_names=("cm",))
SECRET = Kind("", "v1", "secrets", "Secret")
POD = Kind("", "v1", "pods", "Pod", short_names=("po",), categories=("all",), status_subresource=True)
LEASE = Kind("coordination.k8s.io", "v1", "leases", "Lease")
SERVICEACCOUNT = Kind("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",))
_RBAC = "rbac.authorization.k8s.io"
ROLE = Kind(_RBAC, "v1", "roles", "Role")
CLUSTERROLE = Kind(_RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False)
ROLEBINDING = Kind(_RBAC, "v1", "rolebindings", "RoleBinding")
CLUSTERROLEBINDING = Kind(_RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False)

_KNATIVE_CATEGORIES = ("all", "knative", "serving")
KSVC = Kind(
    "serving.knative.dev",
    "v1",
    "services",
    "Service",
    short_names=("kservice", "ksvc"),
    categories=_KNATIVE_CATEGORIES,
    status_subresource=True,
)
CONFIGURATION = Kind(
    "serving.knative.dev",
    "v1",
    "configurations",
    "Configuration",
    short_names=("config", "cfg"),
    categories=_KNATIVE_CATEGORIES,
    status_subresource=True,
)
ROUTE = Kind(
    "serving.knative.dev",
    "v1",
    "routes",
    "Route",
    short_names=("rt",),
    categories=_KNATIVE_CATEGORIES,
    status_subresource=True,
)
REVISION = Kind(
    "serving.knative.dev",
    "v1",
    "revisions",
    "Revision",
    short_names=("rev",),
    categories=_KNATIVE_CATEGORIES,
    status_subresource=True,
)

# Istio's access control for the model APIs, which the ingress enforces (local_knative.istio_auth).
_ISTIO_CATEGORIES = ("istio-io", "security-istio-io")
REQUEST_AUTHENTICATION = Kind(
    "security.istio.io",
    "v1",
    "requestauthentications",
    "RequestAuthentication",
    short_names=("ra",),
    categories=_ISTIO_CATEGORIES,
)
AUTHORIZATION_POLICY = Kind(
    "security.istio.io",
    "v1",
    "authorizationpolicies",
    "AuthorizationPolicy",
    short_names=("ap",),
    categories=_ISTIO_CATEGORIES,
)

ALL_KINDS: tuple[Kind, ...] = (
    NAMESPACE,
    EVENT,
    CONFIGMAP,
    SECRET,
    POD,
    LEASE,
    SERVICEACCOUNT,
    ROLE,
    CLUSTERROLE,
    ROLEBINDING,
    CLUSTERROLEBINDING,
    KSVC,
    CONFIGURATION,
    ROUTE,
    REVISION,
    REQUEST_AUTHENTICATION,
    AUTHORIZATION_POLICY,
)

_BY_PLURAL = {(k.group, k.version, k.plural): k for k in ALL_KINDS}
_BY_KIND = {(k.api_version, k.kind): k for k in ALL_KINDS}


def by_plural(group: str, version: str, plural: str) -> Kind | None:
    """Return the kind served at ``group/version/plural``, or None."""
    return _BY_PLURAL.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> Kind | None:
    """Return the kind an object with this ``apiVersion`` and ``kind`` belongs to, or None."""
    return _BY_KIND.get((api_version, kind))


def group_versions() -> list[tuple[str, str]]:
    """Return every served (group, version), core group first, in a stable order."""
    seen: list[tuple[str, str]] = []
    for k in ALL_KINDS:
        if (k.group, k.version) not in seen:
            seen.append((k.group, k.version))
    return seen
