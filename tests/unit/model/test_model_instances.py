"""Validation of KServe v1 predict bodies: what the model server accepts and what it explains back."""

from __future__ import annotations

import pytest

from model.serve import BadInstances, model_name_from_env, parse_instances


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"instances": [[1, 2.5, 3, 4]]}', [[1, 2.5, 3, 4]]),
        (
            b'{"instances": [[0, 0, 0, 0], [-1e3, 1e-3, 7, 8]], "extra": 1}',
            [[0, 0, 0, 0], [-1e3, 1e-3, 7, 8]],
        ),
    ],
)
def test_valid_bodies(body: bytes, expected: list[list[float]]) -> None:
    assert parse_instances(body, 4) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "request body is not valid JSON"),
        (b"{instances: []}", "request body is not valid JSON"),
        (b"\xff\xfe", "request body is not valid JSON"),
        (b"[[1, 2, 3, 4]]", "must be a JSON object with an 'instances' list"),
        (b'{"inputs": [[1, 2, 3, 4]]}', "must be a JSON object with an 'instances' list"),
        (b'{"instances": []}', "'instances' must be a non-empty list of rows"),
        (b'{"instances": [1, 2, 3, 4]}', "instances[0] must be a list of 4 numbers (one per feature), got 1"),
        (b'{"instances": [[1, 2, 3, 4], [1, 2, 3]]}', "instances[1] must be a list of 4 numbers"),
        (b'{"instances": [[1, 2, "3", 4]]}', 'instances[0][2] = "3" is not a finite number'),
        (b'{"instances": [[1, 2, 3, true]]}', "instances[0][3] = true is not a finite number"),
        (b'{"instances": [[1, NaN, 3, 4]]}', "instances[0][1] = NaN is not a finite number"),
        (b'{"instances": [[1, 2, null, 4]]}', "instances[0][2] = null is not a finite number"),
    ],
)
def test_invalid_bodies_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(BadInstances) as raised:
        parse_instances(body, 4)
    assert message in str(raised.value)
    if "instances[" not in message:  # structural errors show a body that would work
        assert '{"instances": [[0.0, 0.0, 0.0, 0.0]]}' in str(raised.value)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "model"),
        ({"K_SERVICE": "iris"}, "iris"),
        ({"K_SERVICE": "iris", "MODEL_NAME": "classifier"}, "classifier"),
        ({"MODEL_NAME": ""}, "model"),
    ],
)
def test_model_name_from_env(env: dict[str, str], name: str) -> None:
    assert model_name_from_env(env) == name
