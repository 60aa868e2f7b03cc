"""The provider's errors, in two kinds: permanent ones fail the task at once, temporary ones may be retried.

Permanent errors subclass :class:`AirflowFailException`, so Airflow does not retry what can never work
(bad input, a guardrail, a failed revision, an API that rejects the request). Temporary errors (409
conflicts, 5xx, timeouts) are first retried with backoff inside the hook; when that runs out they become
:class:`KnativeTemporaryError`, an :class:`AirflowException` that the task's own retries may pick up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from knative_rollout.resources import GuardrailViolation, RolloutInputError


class KnativeRolloutError(AirflowFailException):
    """A permanent failure: retrying the task will not help."""


class KnativeInputError(KnativeRolloutError):
    """The task's input cannot work; the message says what to change."""


class KnativeGuardrailError(KnativeInputError):
    """The input is outside the platform's guardrails."""


class KnativeNotFoundError(KnativeRolloutError):
    """A Service or Revision the task needs does not exist."""


class KnativeApiRejectedError(KnativeRolloutError):
    """The Kubernetes API refused the request (validation, admission webhook, permissions)."""


class KnativeWatchRefusedError(KnativeApiRejectedError):
    """The API refused a watch for good: no permission (403), no such resource type (404).

    :param reason: the Kubernetes reason (``Forbidden``, ``NotFound``), passed on in the trigger's event.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class KnativeRevisionFailedError(KnativeRolloutError):
    """A revision did not become Ready; Knative's reason is in the message."""


class KnativeLockHeldError(KnativeRolloutError):
    """Another rollout holds the Service's rollout lock; nothing was changed."""


class KnativeRolloutConflictError(KnativeRolloutError):
    """The Service's rollout record names another rollout: this one may no longer change it."""


class KnativeAnalysisFailedError(KnativeRolloutError):
    """The metric analysis judged the candidate worse than allowed, or could not decide (never a pass)."""


class KnativeTemporaryError(AirflowException):
    """The API kept answering with conflicts, server errors or timeouts; a later retry may succeed."""


def error_text(error: BaseException) -> str:
    """Return an error's message, or its type name when the message is empty (a bare ``TimeoutError()``)."""
    return str(error) or type(error).__name__


@contextmanager
def permanent_input_errors() -> Iterator[None]:
    """Turn the pure modules' input errors into permanent task failures."""
    try:
        yield
    except GuardrailViolation as error:
        raise KnativeGuardrailError(str(error)) from error
    except RolloutInputError as error:
        raise KnativeInputError(str(error)) from error
