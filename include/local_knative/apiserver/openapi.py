"""OpenAPI v3 documents for kubectl's apply, create, explain and server-side field validation (and the v2
document, converted from them, for older clients).

kubectl reads a group/version document to learn whether the PATCH operation of a kind takes the
``fieldValidation`` query parameter (then it leaves validation to the server), whether that PATCH accepts
strategic merge (it never does here, so kubectl falls back to merge patches for custom resources), and, for
``kubectl explain``, the schemas down to each field. The schemas come from :mod:`.schemas`; the server
validates against the same ones.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from local_knative import kinds
from local_knative.apiserver import openapi_pb, schemas
from local_knative.kinds import Kind

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
PATCH_CONTENT_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
)


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(kind: Kind) -> str:
    return schemas.kind_component(kind)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema_type: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": schema_type, "uniqueItems": True}}


def _json_response(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    return {code: {"description": "OK", "content": {"application/json": {"schema": schema}}}}


def _operations(kind: Kind) -> dict[str, dict[str, Any]]:
    gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    scope = "Namespaced" if kind.namespaced else ""
    suffix = "".join(part.capitalize() for part in kind.group.split(".")) + kind.version.capitalize()
    schema = _ref(_schema_name(kind))
    write_params = [_query("dryRun"), _query("fieldManager"), _query("fieldValidation")]
    prefix = "/" + _gv_path(kind.group, kind.version)
    namespace_segment = "/namespaces/{namespace}" if kind.namespaced else ""
    collection = f"{prefix}{namespace_segment}/{kind.plural}"
    item = f"{collection}/{{name}}"

    def op(action: str, verb: str, **extra: Any) -> dict[str, Any]:
        return {
            "operationId": f"{verb}{suffix}{scope}{kind.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            **extra,
        }

    body = {"content": {"*/*": {"schema": schema}}, "required": True}
    path_params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if kind.namespaced:
        namespace_param = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}
        path_params.append(namespace_param)
    paths = {
        collection: {
            "get": op(
                "list",
                "list",
                parameters=[_query("labelSelector"), _query("fieldSelector"), _query("watch", "boolean")],
                responses=_json_response(_ref(_schema_name(kind) + "List")),
            ),
            "post": op(
                "post",
                "create",
                parameters=write_params,
                requestBody=body,
                responses=_json_response(schema, "201"),
            ),
            "parameters": path_params[1:],
        },
        item: {
            "get": op("get", "read", responses=_json_response(schema)),
            "put": op(
                "put", "replace", parameters=write_params, requestBody=body, responses=_json_response(schema)
            ),
            "patch": op(
                "patch",
                "patch",
                parameters=[*write_params, _query("force", "boolean")],
                requestBody={
                    "content": {ctype: {"schema": _ref(f"{_META}.Patch")} for ctype in PATCH_CONTENT_TYPES},
                    "required": True,
                },
                responses=_json_response(schema),
            ),
            "delete": op("delete", "delete", parameters=[_query("dryRun")], responses=_json_response(schema)),
            "parameters": path_params,
        },
    }
    if kind.status_subresource:
        paths[f"{item}/status"] = {
            "get": op("get", "read", responses=_json_response(schema)),
            "put": op(
                "put", "replace", parameters=write_params, requestBody=body, responses=_json_response(schema)
            ),
            "parameters": path_params,
        }
    return paths


def _list_schema(kind: Kind) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": _ref(_schema_name(kind))},
            "metadata": {"allOf": [_ref(f"{_META}.ListMeta")], "default": {}},
        },
        "x-kubernetes-group-version-kind": [
            {"group": kind.group, "version": kind.version, "kind": kind.kind + "List"}
        ],
    }


@cache
def group_version_document(group: str, version: str) -> dict[str, Any] | None:
    """Return the OpenAPI v3 document of one group/version, or None when it is not served."""
    served = [k for k in kinds.ALL_KINDS if k.group == group and k.version == version]
    if not served:
        return None
    paths: dict[str, Any] = {}
    # Every component goes into every document: kubectl resolves references within one document only.
    components: dict[str, Any] = {
        **schemas.components(),
        f"{_META}.Patch": {"type": "object", "description": "A patch in one of the accepted patch formats."},
    }
    for kind in served:
        paths.update(_operations(kind))
        components[_schema_name(kind) + "List"] = _list_schema(kind)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": components},
    }


@cache
def _document_hash(group: str, version: str) -> str:
    document = group_version_document(group, version)
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:128].upper()


def index() -> dict[str, Any]:
    """Return the ``/openapi/v3`` index: one ``serverRelativeURL`` (with a content hash) per group/version."""
    paths = {}
    for group, version in kinds.group_versions():
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_document_hash(group, version)}"}
    return {"paths": paths}


def _v2_refs(value: Any) -> Any:
    """Return ``value`` with v3 component references rewritten to v2 definitions."""
    if isinstance(value, dict):
        return {
            key: item.replace("#/components/schemas/", "#/definitions/") if key == "$ref" else _v2_refs(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_v2_refs(item) for item in value]
    return value


def _v2_parameter(param: dict[str, Any]) -> dict[str, Any]:
    """Return a v3 parameter in v2 form: its schema's type inline."""
    return {key: value for key, value in param.items() if key != "schema"} | param.get("schema", {})


def _v2_operation(operation: dict[str, Any]) -> dict[str, Any]:
    converted = {key: value for key, value in operation.items() if key not in ("requestBody", "responses")}
    parameters = [_v2_parameter(param) for param in operation.get("parameters", [])]
    if "requestBody" in operation:
        content = operation["requestBody"]["content"]
        converted["consumes"] = list(content)
        body_schema = next(iter(content.values()))["schema"]
        parameters.append({"name": "body", "in": "body", "required": True, "schema": body_schema})
    converted["parameters"] = parameters
    converted["produces"] = ["application/json"]
    converted["responses"] = {
        code: {
            "description": response["description"],
            "schema": response["content"]["application/json"]["schema"],
        }
        for code, response in operation["responses"].items()
    }
    return converted


@cache
def v2_document() -> dict[str, Any]:
    """Return ``/openapi/v2`` (Swagger 2.0) for every served kind, from the same schemas as the v3 documents.

    Clients older than kubectl 1.27, and libraries that validate or explain from v2, read this one document.
    """
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for group, version in kinds.group_versions():
        document = group_version_document(group, version)
        assert document is not None  # every served group/version has a document
        definitions.update(document["components"]["schemas"])
        for path, item in document["paths"].items():
            paths[path] = {
                method: [_v2_parameter(param) for param in operation]
                if method == "parameters"
                else _v2_operation(operation)
                for method, operation in item.items()
            }
    return _v2_refs(
        {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "definitions": definitions,
        }
    )


@cache
def v2_protobuf() -> bytes:
    """Return :func:`v2_document` encoded as kubectl asks for it (computed once)."""
    return openapi_pb.encode(v2_document())
