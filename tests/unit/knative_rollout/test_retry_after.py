"""Retry-After is read from 429/503 answers only, in seconds or as an HTTP date, and capped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from knative_rollout.hooks import MAX_RETRY_AFTER_SECONDS, retry_after_seconds


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"Retry-After": "2"}, 2.0),
        (503, {"Retry-After": "1.5"}, 1.5),
        (429, {"Retry-After": "0"}, 0.0),
        (429, {"Retry-After": "-4"}, 0.0),
        (503, {"Retry-After": "3600"}, MAX_RETRY_AFTER_SECONDS),
        (429, {"Retry-After": "inf"}, None),
        (429, {"Retry-After": "nan"}, None),
        (429, {"Retry-After": "soon"}, None),
        (429, {"Retry-After": ""}, None),
        (429, {}, None),
        (429, None, None),
        (500, {"Retry-After": "2"}, None),
        (409, {"Retry-After": "2"}, None),
        (None, {"Retry-After": "2"}, None),
    ],
)
def test_retry_after_seconds(status, headers, expected) -> None:
    assert retry_after_seconds(status, headers) == expected


def test_retry_after_as_an_http_date() -> None:
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8 <= (retry_after_seconds(503, {"Retry-After": in_ten}) or 0) <= 10
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=10), usegmt=True)
    assert retry_after_seconds(503, {"Retry-After": past}) == 0.0


def test_retry_after_cap_can_be_lowered() -> None:
    assert retry_after_seconds(429, {"Retry-After": "20"}, cap=5) == 5
