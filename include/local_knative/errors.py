"""Kubernetes API errors, raised anywhere in local_knative and answered as ``Status`` objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_knative.kinds import Kind

WEBHOOK_NAME = "validation.webhook.serving.knative.dev"


class ApiError(Exception):
    """An API failure with the code, reason and message a real API server would answer.

    :param code: HTTP status code.
    :param reason: machine-readable ``StatusReason`` (``NotFound``, ``Conflict`` ...).
    :param message: human-readable message, worded like the real server's.
    :param details: ``Status.details`` (``name``, ``group``, ``kind``, ``causes``).
    :param headers: extra response headers (``Retry-After`` on a 429).
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def to_status(self) -> dict[str, Any]:
        """Return the error as a ``v1 Status`` object."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def _details(kind: Kind, name: str) -> dict[str, Any]:
    return {"name": name, "group": kind.group, "kind": kind.plural}


def not_found(kind: Kind, name: str) -> ApiError:
    """Return the 404 answered for a missing object."""
    return ApiError(404, "NotFound", f'{kind.resource} "{name}" not found', details=_details(kind, name))


def already_exists(kind: Kind, name: str) -> ApiError:
    """Return the 409 answered when a create names an existing object."""
    return ApiError(
        409, "AlreadyExists", f'{kind.resource} "{name}" already exists', details=_details(kind, name)
    )


def conflict(kind: Kind, name: str) -> ApiError:
    """Return the 409 answered when a write carries a stale ``metadata.resourceVersion``."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details=_details(kind, name),
    )


def invalid(kind: Kind, name: str, causes: list[dict[str, Any]]) -> ApiError:
    """Return the 422 answered for a schema error; each cause is ``{type, message, field}``."""
    qualified_kind = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    summary = ", ".join(
        f"{cause['field']}: {cause['message']}" if cause.get("field") else str(cause.get("message", ""))
        for cause in causes
    )
    details = {"name": name, "group": kind.group, "kind": kind.kind, "causes": causes}
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details=details)


def bad_request(message: str) -> ApiError:
    """Return a 400 with ``message``."""
    return ApiError(400, "BadRequest", message)


def webhook_denied(message: str) -> ApiError:
    """Return the 400 the Knative validation webhook answers when it denies a request."""
    return bad_request(f'admission webhook "{WEBHOOK_NAME}" denied the request: validation failed: {message}')


def expired(message: str) -> ApiError:
    """Return the 410 answered for a watch or list from a resourceVersion no longer kept."""
    return ApiError(410, "Expired", message)


def unsupported_media_type(message: str) -> ApiError:
    """Return the 415 answered for a body or patch type the resource does not accept."""
    return ApiError(415, "UnsupportedMediaType", message)


def method_not_allowed(message: str) -> ApiError:
    """Return the 405 answered for a verb the resource does not serve."""
    return ApiError(405, "MethodNotAllowed", message)
