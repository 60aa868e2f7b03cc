"""Error texts in the provider's messages are never empty, and errors keep their permanent/temporary kind."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowFailException

from knative_rollout.exceptions import (
    KnativeGuardrailError,
    KnativeInputError,
    KnativeTemporaryError,
    error_text,
    permanent_input_errors,
)
from knative_rollout.resources import GuardrailViolation, RolloutInputError


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (TimeoutError(), "TimeoutError"),  # what a client-side timeout of an aiohttp stream raises
        (asyncio.CancelledError(), "CancelledError"),
        (ConnectionResetError(), "ConnectionResetError"),
        (OSError(111, "Connection refused"), "[Errno 111] Connection refused"),
        (ValueError("bad value"), "bad value"),
    ],
)
def test_error_text_names_the_type_when_the_message_is_empty(error: BaseException, text: str) -> None:
    assert error_text(error) == text


def test_input_errors_become_permanent_and_temporary_ones_stay_retryable() -> None:
    with pytest.raises(KnativeGuardrailError, match="too big"), permanent_input_errors():
        raise GuardrailViolation("too big")
    with pytest.raises(KnativeInputError, match="bad name"), permanent_input_errors():
        raise RolloutInputError("bad name")
    assert issubclass(KnativeInputError, AirflowFailException)
    assert not issubclass(KnativeTemporaryError, AirflowFailException)
