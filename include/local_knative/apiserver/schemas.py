"""Structural schemas of the served kinds, for ``/openapi/v3``, ``kubectl explain`` and field validation.

Core kinds are derived from the typed models of the installed ``kubernetes`` client (its ``openapi_types``,
``attribute_map`` and property docstrings are generated from the upstream OpenAPI definitions), so their
schemas and descriptions follow the Kubernetes version that client was built for, with nothing copied.
Knative kinds are written here from Knative Serving's v1 API types: a Revision's spec is a PodSpec plus
``containerConcurrency``, ``timeoutSeconds``, ``responseStartTimeoutSeconds`` and ``idleTimeoutSeconds``;
Services and Configurations carry a revision template, Services and Routes a traffic list. ``status`` of
every Knative kind is left open (controllers write it; clients only read it).

:func:`check` walks an object against these schemas, which is how ``fieldValidation=Strict`` refuses a
typo such as ``imagePullPolcy`` and ``Warn`` / ``Ignore`` drop it, and how a value of the wrong type
(``containerConcurrency: "ten"``) is refused before anything is written, as a real server does.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from typing import Any

import kubernetes.client as models

from local_knative import kinds
from local_knative.kinds import Kind

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_META_MODELS = {"V1ObjectMeta", "V1ListMeta", "V1OwnerReference", "V1ManagedFieldsEntry", "V1LabelSelector"}
_META_MODELS |= {"V1LabelSelectorRequirement", "V1Status", "V1StatusDetails", "V1StatusCause", "V1Condition"}
_GROUP_PREFIX = {"V1Lease": "io.k8s.api.coordination.v1", "V1LeaseSpec": "io.k8s.api.coordination.v1"}
_RBAC_MODELS = ("V1Role", "V1ClusterRole", "V1RoleBinding", "V1ClusterRoleBinding", "V1PolicyRule")
_GROUP_PREFIX |= {model: "io.k8s.api.rbac.v1" for model in (*_RBAC_MODELS, "V1RoleRef", "V1AggregationRule")}
_INT_OR_STRING = {"port", "target_port", "max_surge", "max_unavailable", "min_available"}
_KIND_MODELS = {
    kinds.NAMESPACE: "V1Namespace",
    kinds.EVENT: "CoreV1Event",
    kinds.CONFIGMAP: "V1ConfigMap",
    kinds.SECRET: "V1Secret",
    kinds.POD: "V1Pod",
    kinds.LEASE: "V1Lease",
    kinds.SERVICEACCOUNT: "V1ServiceAccount",
    kinds.ROLE: "V1Role",
    kinds.CLUSTERROLE: "V1ClusterRole",
    kinds.ROLEBINDING: "V1RoleBinding",
    kinds.CLUSTERROLEBINDING: "V1ClusterRoleBinding",
    kinds.SERVICE: "V1Service",
    kinds.ENDPOINTS: "V1Endpoints",
    kinds.PVC: "V1PersistentVolumeClaim",
    kinds.PV: "V1PersistentVolume",
    kinds.REPLICATIONCONTROLLER: "V1ReplicationController",
    kinds.DAEMONSET: "V1DaemonSet",
    kinds.DEPLOYMENT: "V1Deployment",
    kinds.REPLICASET: "V1ReplicaSet",
    kinds.STATEFULSET: "V1StatefulSet",
    kinds.JOB: "V1Job",
    kinds.CRONJOB: "V1CronJob",
    kinds.INGRESS: "V1Ingress",
}
_INT_OR_STRING_NAME = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_SERVING = "dev.knative.serving.v1"


def component_name(model: str) -> str:
    """Return the component name of a client model (``V1Container``: ``io.k8s.api.core.v1.Container``)."""
    if model in _META_MODELS:
        return f"{META}.{model[2:]}"
    if model in _GROUP_PREFIX:
        return f"{_GROUP_PREFIX[model]}.{model[2:]}"
    if model == "RbacV1Subject":
        return "io.k8s.api.rbac.v1.Subject"
    if model.startswith("CoreV1"):
        return f"io.k8s.api.core.v1.{model[6:]}"
    match = re.match(r"V\d+(?:(?:alpha|beta)\d+)?", model)
    version = match.group(0).lower() if match else "v1"
    return f"io.k8s.api.core.{version}.{model[len(version) :]}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _description(model_class: type, attribute: str) -> str:
    doc = inspect.getdoc(getattr(model_class, attribute, None)) or ""
    paragraphs = [part.strip() for part in doc.split("\n\n")]
    if len(paragraphs) < 3:
        return ""
    return paragraphs[1].replace("  # noqa: E501", "").strip()


def _type_schema(type_text: str, attribute: str, found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if type_text.startswith("list["):
        return {"type": "array", "items": _type_schema(type_text[5:-1], attribute, found)}
    if type_text.startswith("dict["):
        value_type = type_text[5:-1].split(",", 1)[1].strip()
        return {"type": "object", "additionalProperties": _type_schema(value_type, attribute, found)}
    simple = {
        "str": {"type": "string"},
        "int": {"type": "integer", "format": "int64"},
        "bool": {"type": "boolean"},
        "float": {"type": "number", "format": "double"},
        "datetime": {"type": "string", "format": "date-time"},
        "date": {"type": "string", "format": "date"},
    }
    if type_text in simple:
        return dict(simple[type_text])
    if type_text == "object":
        if attribute in _INT_OR_STRING:
            found[_INT_OR_STRING_NAME] = {"type": "string", "format": "int-or-string"}
            return _ref(_INT_OR_STRING_NAME)
        return dict(_OPEN)
    _collect(type_text, found)
    return _ref(component_name(type_text))


def _collect(model: str, found: dict[str, dict[str, Any]]) -> None:
    """Add the schema of ``model`` and of every model it refers to into ``found``."""
    name = component_name(model)
    if name in found:
        return
    model_class = getattr(models, model)
    found[name] = {}  # claimed first: models refer to themselves (JSONSchemaProps, not served, and others)
    properties = {}
    for attribute, type_text in model_class.openapi_types.items():
        schema = _type_schema(type_text, attribute, found)
        text = _description(model_class, attribute)
        properties[model_class.attribute_map[attribute]] = _field(schema, text) if text else schema
        referred = _referred(schema)
        if text and referred in found and not found[referred].get("description"):
            # kubectl explain shows a field's type's description: the first field using a model names it.
            found[referred]["description"] = text
    # The models' own docstrings are the generator's boilerplate; a field's description says what it is.
    found[name] = _object("", properties)


def _referred(schema: dict[str, Any]) -> str | None:
    for inner in (schema, schema.get("items") or {}, schema.get("additionalProperties") or {}):
        if "$ref" in inner:
            return str(inner["$ref"]).rsplit("/", 1)[1]
    return None


def _field(schema: dict[str, Any], description: str) -> dict[str, Any]:
    if "$ref" in schema:
        return {"allOf": [schema], "description": description}
    return {**schema, "description": description}


def _object(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties}


_INT = {"type": "integer", "format": "int64"}
_STR = {"type": "string"}


def _knative_components(found: dict[str, dict[str, Any]]) -> None:
    _collect("V1PodSpec", found)
    _collect("V1ObjectMeta", found)
    request_settings = {
        "containerConcurrency": "The most requests one container serves at once (0: no limit).",
        "timeoutSeconds": "The most seconds a request may take to answer.",
        "responseStartTimeoutSeconds": "The most seconds to wait for the first byte of an answer.",
        "idleTimeoutSeconds": "The most seconds a request may stay open with no bytes flowing.",
    }
    found[f"{_SERVING}.RevisionSpec"] = _object(
        "RevisionSpec holds the desired state of the Revision: a PodSpec plus Knative's request settings.",
        {
            **found[component_name("V1PodSpec")]["properties"],
            **{name: _field(_INT, text) for name, text in request_settings.items()},
        },
    )
    found[f"{_SERVING}.TrafficTarget"] = _object(
        "TrafficTarget holds a single entry of the routing table for a Route.",
        {
            "tag": _field(_STR, "Tag exposes a dedicated URL for this target alone."),
            "revisionName": _field(_STR, "RevisionName of the revision this portion of traffic goes to."),
            "configurationName": _field(_STR, "ConfigurationName whose latest revision this target follows."),
            "latestRevision": _field(
                {"type": "boolean"}, "LatestRevision pins the target to the latest ready revision."
            ),
            "percent": _field(_INT, "Percent of the traffic that goes to this target."),
            "url": _field(_STR, "URL of a tagged target; set in status only."),
        },
    )
    found[f"{_SERVING}.RevisionTemplateSpec"] = _object(
        "RevisionTemplateSpec describes the revisions a Configuration stamps out.",
        {
            "metadata": _field(
                _ref(f"{META}.ObjectMeta"), "Metadata of the revisions made from this template."
            ),
            "spec": _field(_ref(f"{_SERVING}.RevisionSpec"), "The RevisionSpec of those revisions."),
        },
    )
    template = _field(_ref(f"{_SERVING}.RevisionTemplateSpec"), "Template of the revisions to stamp out.")
    traffic = _field(
        {"type": "array", "items": _ref(f"{_SERVING}.TrafficTarget")},
        "Traffic says how requests are split over revisions and configurations.",
    )
    found[f"{_SERVING}.ServiceSpec"] = _object(
        "ServiceSpec is a Configuration and a Route in one.", {"template": template, "traffic": traffic}
    )
    found[f"{_SERVING}.ConfigurationSpec"] = _object(
        "ConfigurationSpec holds the desired state of the Configuration.", {"template": template}
    )
    found[f"{_SERVING}.RouteSpec"] = _object(
        "RouteSpec holds the desired state of the Route.", {"traffic": traffic}
    )


_ISTIO = "io.istio.security.v1"
_STRINGS = {"type": "array", "items": _STR}


def _istio_components(found: dict[str, dict[str, Any]]) -> None:
    """Add Istio's ``security.istio.io/v1`` specs, from Istio's API reference (every field it defines)."""
    selector = _field(
        _object("", {"matchLabels": {"type": "object", "additionalProperties": _STR}}),
        "Workloads (pods) the policy applies to, by labels; none: every workload in the namespace.",
    )
    jwt_rule = _object(
        "JWTRule: how to find and validate one issuer's tokens.",
        {
            "issuer": _field(_STR, "Issuer of the JWT (its iss claim)."),
            "audiences": _field(_STRINGS, "Accepted aud values; empty: any."),
            "jwksUri": _field(_STR, "URL of the issuer's JSON Web Key Set."),
            "jwks": _field(_STR, "The JSON Web Key Set inline, as a JSON string."),
            "fromHeaders": _field(
                {"type": "array", "items": _object("", {"name": _STR, "prefix": _STR})},
                "Headers to read the token from; default Authorization with prefix 'Bearer '.",
            ),
            "fromParams": _field(_STRINGS, "Query parameters to read the token from; default access_token."),
            "fromCookies": _field(_STRINGS, "Cookies to read the token from."),
            "outputPayloadToHeader": _field(_STR, "Header to forward the verified payload in."),
            "outputClaimToHeaders": _field(
                {"type": "array", "items": _object("", {"header": _STR, "claim": _STR})},
                "Claims to copy into request headers.",
            ),
            "forwardOriginalToken": _field({"type": "boolean"}, "Keep the token in the forwarded request."),
            "timeout": _field(_STR, "How long to wait for the JWKS URI."),
        },
    )
    found[f"{_ISTIO}.RequestAuthenticationSpec"] = _object(
        "RequestAuthentication says which request credentials (JWTs) a workload accepts.",
        {"selector": selector, "jwtRules": _field({"type": "array", "items": jwt_rule}, "One per issuer.")},
    )
    source_fields = {
        "principals": "peer identities (mTLS), e.g. cluster.local/ns/NS/sa/NAME",
        "requestPrincipals": "JWT principals ISSUER/SUBJECT; * for any valid token",
        "namespaces": "namespaces of the peer (mTLS)",
        "ipBlocks": "IPs or CIDRs of the direct peer",
        "remoteIpBlocks": "IPs or CIDRs of the original client (X-Forwarded-For)",
    }
    operation_fields = {
        "hosts": "Host header values",
        "ports": "destination ports",
        "methods": "HTTP methods",
        "paths": "request paths: exact, prefix*, *suffix or *",
    }
    source: dict[str, Any] = {}
    operation: dict[str, Any] = {}
    for fields, into in ((source_fields, source), (operation_fields, operation)):
        for name, text in fields.items():
            into[name] = _field(_STRINGS, f"Matches when the request's value is one of these {text}.")
            into[_not(name)] = _field(_STRINGS, f"Matches when the request's value is none of these {text}.")
    condition = _object(
        "Condition: a request attribute (key) and the values it must or must not have.",
        {"key": _STR, "values": _STRINGS, "notValues": _STRINGS},
    )
    rule = _object(
        "Rule: matches a request when every one of from, to and when does.",
        {
            "from": _field(
                {"type": "array", "items": _object("", {"source": _object("", source)})},
                "Where the request comes from; any entry matching is enough.",
            ),
            "to": _field(
                {"type": "array", "items": _object("", {"operation": _object("", operation)})},
                "What the request does; any entry matching is enough.",
            ),
            "when": _field({"type": "array", "items": condition}, "Conditions that must all hold."),
        },
    )
    found[f"{_ISTIO}.AuthorizationPolicySpec"] = _object(
        "AuthorizationPolicy allows or denies requests to workloads.",
        {
            "selector": selector,
            "action": _field(_STR, "ALLOW (default), DENY, AUDIT or CUSTOM."),
            "provider": _field(_object("", {"name": _STR}), "Extension provider of a CUSTOM policy."),
            "rules": _field({"type": "array", "items": rule}, "Requests matching any rule get the action."),
        },
    )


def _not(field_name: str) -> str:
    return "not" + field_name[0].upper() + field_name[1:]


_KNATIVE_SPECS = {
    kinds.KSVC: "ServiceSpec",
    kinds.CONFIGURATION: "ConfigurationSpec",
    kinds.ROUTE: "RouteSpec",
    kinds.REVISION: "RevisionSpec",
}
_ISTIO_KINDS = (kinds.REQUEST_AUTHENTICATION, kinds.AUTHORIZATION_POLICY)


def kind_component(kind: Kind) -> str:
    """Return the component name of a served kind's schema."""
    if kind in _KIND_MODELS:
        return component_name(_KIND_MODELS[kind])
    reversed_group = ".".join(reversed(kind.group.split(".")))
    return f"{reversed_group}.{kind.version}.{kind.kind}"


@cache
def components() -> dict[str, dict[str, Any]]:
    """Return every component schema the served kinds need, keyed by component name."""
    found: dict[str, dict[str, Any]] = {}
    for model in _KIND_MODELS.values():
        _collect(model, found)
    _collect("V1ListMeta", found)
    _knative_components(found)
    _istio_components(found)
    specs = [(kind, f"{_SERVING}.{spec}", "a Knative Serving") for kind, spec in _KNATIVE_SPECS.items()]
    specs += [(kind, f"{_ISTIO}.{kind.kind}Spec", "an Istio") for kind in _ISTIO_KINDS]
    for kind, spec, what in specs:
        found[kind_component(kind)] = _object(
            f"{kind.kind} is {what} {kind.kind} ({kind.api_version}).",
            {
                "apiVersion": _field(_STR, "APIVersion of this representation of the object."),
                "kind": _field(_STR, "Kind of the REST resource this object represents."),
                "metadata": {
                    **_field(_ref(f"{META}.ObjectMeta"), "Standard object metadata."),
                    "default": {},
                },
                "spec": _field(_ref(spec), f"The desired state of the {kind.kind}."),
                "status": _field(_OPEN, f"The observed state of the {kind.kind}, written by the controller."),
            },
        )
    for kind in kinds.ALL_KINDS:
        found[kind_component(kind)]["x-kubernetes-group-version-kind"] = [
            {"group": kind.group, "version": kind.version, "kind": kind.kind}
        ]
    return found


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in schema:
            schema = components()[schema["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


class Findings:
    """What :func:`check` found: unknown field paths, and ``(path, expected type, value)`` of wrong types."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.wrong_types: list[tuple[str, str, Any]] = []


def check(kind: Kind, obj: dict[str, Any], *, prune: bool = False) -> Findings:
    """Walk ``obj`` against the kind's schema once: unknown fields (removed when ``prune``) and wrong types.

    :param prune: also remove unknown fields from ``obj``.
    """
    found = Findings()
    _walk(_resolve(components()[kind_component(kind)]), obj, "", found, prune)
    return found


def is_custom_resource(kind: Kind) -> bool:
    """Tell a CRD-served kind (Knative, Istio) from a built-in one: their type errors differ (422 vs 400)."""
    return kind not in _KIND_MODELS


# A JSON value's type as OpenAPI names it. Numbers pass where a string is expected: resource quantities
# (``cpu: 1``) are strings in the client models this schema is derived from, and a real server takes numbers.
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "string": (str, int, float),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def json_type(value: Any) -> str:
    """Return the OpenAPI type name of a decoded JSON value (as the API server's messages name it)."""
    for name, types in (("boolean", (bool,)), ("integer", (int,)), ("number", (float,)), ("string", (str,))):
        if isinstance(value, types):
            return name
    return "array" if isinstance(value, list) else "object"


def _type_matches(schema: dict[str, Any], value: Any) -> bool:
    expected = schema.get("type")
    if value is None or not isinstance(expected, str) or expected not in _ACCEPTS:
        return True
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (str, int)) and not isinstance(value, bool)
    if isinstance(value, bool) and expected != "boolean":
        return False
    return isinstance(value, _ACCEPTS[expected])


def _walk(schema: dict[str, Any], value: Any, path: str, found: Findings, prune: bool) -> None:
    schema = _resolve(schema)
    if path and not _type_matches(schema, value):
        found.wrong_types.append((path, str(schema["type"]), value))
        return
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{index}]", found, prune)
        return
    if not isinstance(value, dict):
        return
    if "additionalProperties" in schema:
        for key, item in value.items():
            _walk(schema["additionalProperties"], item, f"{path}[{key}]", found, prune)
        return
    properties = schema.get("properties")
    if properties is None:
        return
    for key in list(value):
        field_path = f"{path}.{key}" if path else key
        if key not in properties:
            found.unknown.append(field_path)
            if prune:
                del value[key]
            continue
        _walk(properties[key], value[key], field_path, found, prune)
