"""``/openapi/v2``: a Swagger 2.0 document of every served kind, converted from the v3 schemas."""

from __future__ import annotations

import json
import re

from local_knative.apiserver import openapi


def test_v2_document_covers_every_kind_and_every_reference_resolves() -> None:
    document = openapi.v2_document()
    assert document["swagger"] == "2.0" and "#/components/" not in json.dumps(document)
    definitions = document["definitions"]
    refs = set(re.findall(r'"#/definitions/([^"]+)"', json.dumps(document)))
    assert refs and refs <= set(definitions)
    ksvc = definitions["dev.knative.serving.v1.Service"]
    assert ksvc["x-kubernetes-group-version-kind"] == [
        {"group": "serving.knative.dev", "version": "v1", "kind": "Service"}
    ]
    container = definitions["io.k8s.api.core.v1.Container"]["properties"]
    assert container["imagePullPolicy"]["type"] == "string"


def test_v2_operations_have_body_parameters_and_inline_types() -> None:
    paths = openapi.v2_document()["paths"]
    item = paths["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]
    patch = item["patch"]
    assert patch["consumes"] == list(openapi.PATCH_CONTENT_TYPES)
    body = next(param for param in patch["parameters"] if param["in"] == "body")
    assert body["schema"] == {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
    field_validation = next(param for param in patch["parameters"] if param["name"] == "fieldValidation")
    assert field_validation["type"] == "string" and "schema" not in field_validation
    assert item["parameters"][0] == {"name": "name", "in": "path", "required": True, "type": "string"}
    listing = paths["/api/v1/namespaces/{namespace}/configmaps"]["get"]
    assert listing["responses"]["200"]["schema"] == {"$ref": "#/definitions/io.k8s.api.core.v1.ConfigMapList"}
