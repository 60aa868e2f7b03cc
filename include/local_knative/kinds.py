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

# Built-in kinds nothing here runs, stored and served so that clients which list them work as on a cluster:
# `kubectl cluster-info` lists kube-system Services, `kubectl apply --prune` lists every kind of its
# default allow-list. No controller acts on them (a Deployment makes no Pods).
SERVICE = Kind("", "v1", "services", "Service", short_names=("svc",), status_subresource=True)
ENDPOINTS = Kind("", "v1", "endpoints", "Endpoints", short_names=("ep",))
PVC = Kind(
    "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), status_subresource=True
)
PV = Kind(
    "",
    "v1",
    "persistentvolumes",
    "PersistentVolume",
    namespaced=False,
    short_names=("pv",),
    status_subresource=True,
)
REPLICATIONCONTROLLER = Kind(
    "", "v1", "replicationcontrollers", "ReplicationController", short_names=("rc",), status_subresource=True
)
_APPS = "apps"
DAEMONSET = Kind(_APPS, "v1", "daemonsets", "DaemonSet", short_names=("ds",), status_subresource=True)
DEPLOYMENT = Kind(_APPS, "v1", "deployments", "Deployment", short_names=("deploy",), status_subresource=True)
REPLICASET = Kind(_APPS, "v1", "replicasets", "ReplicaSet", short_names=("rs",), status_subresource=True)
STATEFULSET = Kind(_APPS, "v1", "statefulsets", "StatefulSet", short_names=("sts",), status_subresource=True)
JOB = Kind("batch", "v1", "jobs", "Job", status_subresource=True)
CRONJOB = Kind("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), status_subresource=True)
INGRESS = Kind(
    "networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), status_subresource=True
)
STORED_ONLY: tuple[Kind, ...] = (
    SERVICE,
    ENDPOINTS,
    PVC,
    PV,
    REPLICATIONCONTROLLER,
    DAEMONSET,
    DEPLOYMENT,
    REPLICASET,
    STATEFULSET,
    JOB,
    CRONJOB,
    INGRESS,
)

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
    *STORED_ONLY,
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
