"""API server patch formats: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as tables."""

from __future__ import annotations

from typing import Any

import pytest

from local_knative.apiserver.patches import json_patch, merge_patch
from local_knative.errors import ApiError

DOC = {"metadata": {"labels": {"a": "1"}}, "spec": {"traffic": [{"percent": 100}], "x": 1}}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"metadata": {"labels": {"b": "2"}}}, {"metadata": {"labels": {"a": "1", "b": "2"}}}),
        ({"metadata": {"labels": {"a": None}}}, {"metadata": {"labels": {}}}),
        (
            {"spec": {"traffic": [{"percent": 50}, {"percent": 50}]}},
            {"spec": {"traffic": [{"percent": 50}, {"percent": 50}], "x": 1}},
        ),
        ({"spec": None}, {"metadata": {"labels": {"a": "1"}}}),
    ],
)
def test_merge_patch(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    result = merge_patch(DOC, patch)
    for key, value in expected.items():
        assert result[key] == value
    if patch.get("spec", ...) is None:
        assert "spec" not in result
    assert DOC["metadata"]["labels"] == {"a": "1"}  # the input is not modified


@pytest.mark.parametrize(
    ("operations", "path", "expected"),
    [
        (
            [{"op": "add", "path": "/metadata/labels/b", "value": "2"}],
            ("metadata", "labels"),
            {"a": "1", "b": "2"},
        ),
        (
            [{"op": "replace", "path": "/spec/traffic/0/percent", "value": 0}],
            ("spec", "traffic"),
            [{"percent": 0}],
        ),
        (
            [{"op": "add", "path": "/spec/traffic/-", "value": {"tag": "t"}}],
            ("spec", "traffic"),
            [{"percent": 100}, {"tag": "t"}],
        ),
        ([{"op": "remove", "path": "/metadata/labels/a"}], ("metadata", "labels"), {}),
        (
            [
                {"op": "test", "path": "/spec/x", "value": 1},
                {"op": "copy", "from": "/spec/x", "path": "/spec/y"},
            ],
            ("spec", "y"),
            1,
        ),
        ([{"op": "move", "from": "/spec/x", "path": "/spec/z"}], ("spec", "z"), 1),
        (
            [
                {"op": "add", "path": "/metadata/annotations", "value": {"a~b/c": "v"}},
                {"op": "replace", "path": "/metadata/annotations/a~0b~1c", "value": "w"},
            ],
            ("metadata", "annotations"),
            {"a~b/c": "w"},
        ),
    ],
)
def test_json_patch(operations: list[dict[str, Any]], path: tuple[str, ...], expected: Any) -> None:
    result: Any = json_patch(DOC, operations)
    for key in path:
        result = result[key]
    assert result == expected


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ([{"op": "test", "path": "/spec/x", "value": 2}], "test operation 0 failed"),
        ([{"op": "remove", "path": "/spec/missing"}], "does not exist"),
        ([{"op": "replace", "path": "/spec/traffic/5", "value": 1}], "out of range"),
        ([{"op": "frobnicate", "path": "/spec"}], "unknown op"),
        ([{"op": "add", "path": "/spec/y"}], "has no 'value'"),
        ({"op": "add"}, "must be a JSON array"),
    ],
)
def test_json_patch_errors_are_422_with_the_reason(operations: Any, message: str) -> None:
    with pytest.raises(ApiError) as error:
        json_patch(DOC, operations)
    assert error.value.code == 422 and message in error.value.message
