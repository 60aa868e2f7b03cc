"""``/openapi/v2`` as protobuf (gnostic's ``openapi.v2.Document``), the only form kubectl reads it in.

kubectl fetches the v2 document to validate the items of a ``List`` (``kubectl get ksvc -o yaml | kubectl
apply -f -``) and asks only for ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``. Only the
fields its validator reads are written: ``swagger``, ``info`` and the definitions (with their vendor
extensions, e.g. ``x-kubernetes-group-version-kind``); paths stay in the JSON form.
"""

from __future__ import annotations

from typing import Any

import yaml

MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
# What the real server answers with: Go's mime parser refuses the "@" of the requested type.
RESPONSE_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """Return one length-delimited field (strings and messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode())


def _named(name: str, value: bytes) -> bytes:
    return _string(1, name) + _field(2, value)


def _schema(schema: dict[str, Any]) -> bytes:
    """Encode one ``openapi.v2.Schema``."""
    out = b""
    for key, number in (("$ref", 1), ("format", 2), ("title", 3), ("description", 4)):
        if isinstance(schema.get(key), str):
            out += _string(number, schema[key])
    for name in schema.get("required") or []:
        out += _string(19, name)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out += _field(21, _field(1, _schema(extra)))
    elif isinstance(extra, bool):
        out += _field(21, _varint(2 << 3) + _varint(int(extra)))
    if isinstance(schema.get("type"), str):
        out += _field(22, _string(1, schema["type"]))
    if isinstance(schema.get("items"), dict):
        out += _field(23, _field(1, _schema(schema["items"])))
    for part in schema.get("allOf") or []:
        out += _field(24, _schema(part))
    properties = schema.get("properties")
    if isinstance(properties, dict):
        out += _field(
            25, b"".join(_field(1, _named(name, _schema(value))) for name, value in properties.items())
        )
    for key, value in schema.items():
        if key.startswith("x-"):
            # A vendor extension's value travels as YAML text in an ``Any``.
            out += _field(31, _named(key, _string(2, yaml.safe_dump(value, default_flow_style=True).strip())))
    return out


def encode(document: dict[str, Any]) -> bytes:
    """Encode a Swagger 2.0 document (as :func:`.openapi.v2_document` makes it) for kubectl."""
    info = document.get("info") or {}
    definitions = b"".join(
        _field(1, _named(name, _schema(schema))) for name, schema in document["definitions"].items()
    )
    return (
        _string(1, document["swagger"])
        + _field(2, _string(1, info.get("title", "")) + _string(2, info.get("version", "")))
        + _field(9, definitions)
    )
