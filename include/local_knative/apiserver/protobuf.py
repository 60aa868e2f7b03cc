"""Decode the protobuf request bodies kubectl sends for a few core kinds.

kubectl's typed clients (``kubectl create namespace|configmap|secret|serviceaccount``) send
``application/vnd.kubernetes.protobuf`` bodies; they accept JSON answers. Only what those commands send is
decoded: Namespace, ConfigMap, Secret, ServiceAccount and the RBAC kinds with the common ObjectMeta
fields, and the TokenRequest and self reviews of ``kubectl create token`` and ``kubectl auth
can-i|whoami``. Anything else is refused with 415 and a message that says to send JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from local_knative.errors import ApiError, unsupported_media_type

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A schema maps a field number to (json name, decoder); decoders take the raw field value.
Decoder = Callable[[Any], Any]
Schema = dict[int, tuple[str, Decoder, bool]]  # bool: repeated


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """Split a protobuf message into (field number, raw value): ints for varints, bytes for the rest."""
    fields: list[tuple[int, Any]] = []
    position = 0

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            if position >= len(data):
                raise _malformed()
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    while position < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.append((number, varint()))
        elif wire_type == 2:
            length = varint()
            fields.append((number, data[position : position + length]))
            position += length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            fields.append((number, data[position : position + size]))
            position += size
        else:
            raise _malformed()
    return fields


def _malformed() -> ApiError:
    return ApiError(
        400, "BadRequest", "the protobuf request body is malformed: send the object as JSON instead"
    )


def _string(raw: bytes) -> str:
    return raw.decode()


def _bytes_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _bool(raw: int) -> bool:
    return bool(raw)


def _map(value_decoder: Decoder) -> Decoder:
    def decode(raw: bytes) -> tuple[str, Any]:
        entry = dict(_fields(raw))
        return _string(entry.get(1, b"")), value_decoder(entry.get(2, b""))

    return decode


def _message(schema: Schema) -> Decoder:
    def decode(raw: bytes) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for number, value in _fields(raw):
            if number not in schema:
                continue
            name, decoder, repeated = schema[number]
            decoded = decoder(value)
            if decoded == "" and not repeated:
                continue  # gogo-protobuf writes unset strings as empty ones; JSON omits them
            if decoder in _MAP_DECODERS:
                obj.setdefault(name, {})[decoded[0]] = decoded[1]
            elif repeated:
                obj.setdefault(name, []).append(decoded)
            else:
                obj[name] = decoded
        return obj

    return decode


_STRING_MAP = _map(_string)
_BYTES_MAP = _map(_bytes_b64)
_MAP_DECODERS = (_STRING_MAP, _BYTES_MAP)

_OWNER_REFERENCE = _message(
    {
        1: ("kind", _string, False),
        3: ("name", _string, False),
        4: ("uid", _string, False),
        5: ("apiVersion", _string, False),
        6: ("controller", _bool, False),
        7: ("blockOwnerDeletion", _bool, False),
    }
)
_OBJECT_META = _message(
    {
        1: ("name", _string, False),
        2: ("generateName", _string, False),
        3: ("namespace", _string, False),
        6: ("resourceVersion", _string, False),
        11: ("labels", _STRING_MAP, False),
        12: ("annotations", _STRING_MAP, False),
        13: ("ownerReferences", _OWNER_REFERENCE, True),
        14: ("finalizers", _string, True),
    }
)
_RESOURCE_ATTRIBUTES = _message(
    {
        1: ("namespace", _string, False),
        2: ("verb", _string, False),
        3: ("group", _string, False),
        4: ("version", _string, False),
        5: ("resource", _string, False),
        6: ("subresource", _string, False),
        7: ("name", _string, False),
    }
)
_NON_RESOURCE_ATTRIBUTES = _message({1: ("path", _string, False), 2: ("verb", _string, False)})
_POLICY_RULE = _message(
    {
        1: ("verbs", _string, True),
        2: ("apiGroups", _string, True),
        3: ("resources", _string, True),
        4: ("resourceNames", _string, True),
        5: ("nonResourceURLs", _string, True),
    }
)
_ROLE = _message({1: ("metadata", _OBJECT_META, False), 2: ("rules", _POLICY_RULE, True)})
_BINDING = _message(
    {
        1: ("metadata", _OBJECT_META, False),
        2: (
            "subjects",
            _message(
                {
                    1: ("kind", _string, False),
                    2: ("apiGroup", _string, False),
                    3: ("name", _string, False),
                    4: ("namespace", _string, False),
                }
            ),
            True,
        ),
        3: (
            "roleRef",
            _message(
                {1: ("apiGroup", _string, False), 2: ("kind", _string, False), 3: ("name", _string, False)}
            ),
            False,
        ),
    }
)
_KINDS: dict[str, Decoder] = {
    # What kubectl create role|clusterrole|rolebinding|clusterrolebinding send.
    "rbac.authorization.k8s.io/v1/Role": _ROLE,
    "rbac.authorization.k8s.io/v1/ClusterRole": _ROLE,
    "rbac.authorization.k8s.io/v1/RoleBinding": _BINDING,
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding": _BINDING,
    # What kubectl create token, auth can-i and auth whoami send (authentication/authorization v1).
    "authentication.k8s.io/v1/TokenRequest": _message(
        {
            1: ("metadata", _OBJECT_META, False),
            2: (
                "spec",
                _message({1: ("audiences", _string, True), 4: ("expirationSeconds", int, False)}),
                False,
            ),
        }
    ),
    "authentication.k8s.io/v1/SelfSubjectReview": _message({1: ("metadata", _OBJECT_META, False)}),
    "authorization.k8s.io/v1/SelfSubjectAccessReview": _message(
        {
            1: ("metadata", _OBJECT_META, False),
            2: (
                "spec",
                _message(
                    {
                        1: ("resourceAttributes", _RESOURCE_ATTRIBUTES, False),
                        2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES, False),
                    }
                ),
                False,
            ),
        }
    ),
    "authorization.k8s.io/v1/SelfSubjectRulesReview": _message(
        {
            1: ("metadata", _OBJECT_META, False),
            2: ("spec", _message({1: ("namespace", _string, False)}), False),
        }
    ),
    "v1/ServiceAccount": _message(
        {1: ("metadata", _OBJECT_META, False), 4: ("automountServiceAccountToken", _bool, False)}
    ),
    "v1/Namespace": _message(
        {
            1: ("metadata", _OBJECT_META, False),
            2: ("spec", _message({1: ("finalizers", _string, True)}), False),
        }
    ),
    "v1/ConfigMap": _message(
        {
            1: ("metadata", _OBJECT_META, False),
            2: ("data", _STRING_MAP, False),
            3: ("binaryData", _BYTES_MAP, False),
            4: ("immutable", _bool, False),
        }
    ),
    "v1/Secret": _message(
        {
            1: ("metadata", _OBJECT_META, False),
            2: ("data", _BYTES_MAP, False),
            3: ("type", _string, False),
            4: ("stringData", _STRING_MAP, False),
            5: ("immutable", _bool, False),
        }
    ),
}


def decode(body: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\0``-framed protobuf body into the JSON form of the object.

    :raises ApiError: 415 for a kind this server cannot decode, 400 for a malformed body.
    """
    if not body.startswith(_MAGIC):
        raise _malformed()
    envelope = dict(_fields(body[len(_MAGIC) :]))
    type_meta = dict(_fields(envelope.get(1, b"")))
    api_version = _string(type_meta.get(1, b""))
    kind = _string(type_meta.get(2, b""))
    decoder = _KINDS.get(f"{api_version}/{kind}")
    if decoder is None:
        raise unsupported_media_type(
            f"this server decodes protobuf only for {', '.join(_KINDS)}, not {api_version}/{kind}: "
            "send the object as application/json"
        )
    obj = decoder(envelope.get(2, b""))
    return {"apiVersion": api_version, "kind": kind, **obj}
