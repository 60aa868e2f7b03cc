"""The gate's hint when the model API refused the caller: only when every error is a 401 or a 403."""

from __future__ import annotations

import pytest

from knative_rollout.operators.loadtest import _refused_hint


@pytest.mark.parametrize(
    ("errors", "says"),
    [
        ({"http_403": 40}, ["403: the request carries no token"]),
        ({"http_401": 40}, ["401: the token sent is not valid"]),
        ({"http_401": 3, "http_403": 2}, ["401: the token sent is not valid", "; 403: the request carries"]),
        ({"http_403": 10, "http_500": 1}, []),  # something else failed too: no auth hint
        ({"timeout": 5}, []),
        ({}, []),  # a gate failed on latency alone
    ],
)
def test_refused_hint(errors: dict[str, int], says: list[str]) -> None:
    hint = _refused_hint(errors)
    if not says:
        assert hint == ""
        return
    assert hint.startswith(". The model API refused the load test's requests (")
    assert all(part in hint for part in says)
    assert "{{ conn.NAME.password }}" in hint
