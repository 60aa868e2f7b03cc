"""Patch formats the API server accepts: JSON merge patch (RFC 7386) and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from local_knative.errors import ApiError

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def patch_error(message: str) -> ApiError:
    """Return the 422 a real server answers for a patch that cannot be applied."""
    return ApiError(422, "Invalid", message)


def merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with the RFC 7386 merge ``patch`` applied (``null`` removes a key; lists replace)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise patch_error(f"invalid JSON pointer {path!r}: it must be empty or start with '/'")
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_insert: bool) -> int:
    if for_insert and token == "-":
        return len(container)
    if not token.isdigit():
        raise patch_error(f"invalid array index {token!r} in JSON patch path")
    index = int(token)
    limit = len(container) if for_insert else len(container) - 1
    if index > limit:
        raise patch_error(f"array index {index} is out of range (length {len(container)}) in JSON patch path")
    return index


def _parent(document: Any, tokens: list[str], path: str) -> Any:
    current = document
    for token in tokens[:-1]:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, for_insert=False)]
        else:
            raise patch_error(f"JSON patch path {path!r} does not exist: no {token!r}")
    return current


def _get(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return document
    parent = _parent(document, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise patch_error(f"JSON patch path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_insert=False)]
    raise patch_error(f"JSON patch path {path!r} does not exist")


def _add(document: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(document, tokens, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], for_insert=True), value)
    else:
        raise patch_error(f"cannot add at {path!r}: its parent is neither an object nor an array")
    return document


def _remove(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise patch_error("cannot remove the whole document")
    _get(document, path)
    parent = _parent(document, tokens, path)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[_index(parent, tokens[-1], for_insert=False)]
    return document


def json_patch(document: Any, operations: Any) -> Any:
    """Return ``document`` with the RFC 6902 ``operations`` applied (add, remove, replace, move, copy, test).

    :raises ApiError: 422 when an operation is malformed or does not apply (a failed ``test`` included).
    """
    if not isinstance(operations, list):
        raise patch_error('a JSON patch must be a JSON array of operations like {"op": "add", ...}')
    result = copy.deepcopy(document)
    for number, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise patch_error(f"JSON patch operation {number} must be an object with 'op' and 'path'")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise patch_error(f"JSON patch operation {number} ({op} {path}) has no 'value'")
        if op == "add":
            result = _add(result, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            result = _add(_remove(result, path), path, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            if "from" not in operation:
                raise patch_error(f"JSON patch operation {number} ({op} {path}) has no 'from'")
            value = copy.deepcopy(_get(result, operation["from"]))
            if op == "move":
                result = _remove(result, operation["from"])
            result = _add(result, path, value)
        elif op == "test":
            if _get(result, path) != operation["value"]:
                raise patch_error(
                    f"JSON patch test operation {number} failed: the value at {path!r} is not "
                    f"{operation['value']!r}"
                )
        else:
            raise patch_error(f"JSON patch operation {number} has unknown op {op!r}")
    return result
