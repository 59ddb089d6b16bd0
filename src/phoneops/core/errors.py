"""Errors that carry their HTTP status; one handler in app.py renders them as JSON."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An expected failure. `status_code` is what the API answers; `code` is machine-readable."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.retry_after = retry_after  # seconds; sent as the Retry-After header

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class ValidationFailed(AppError):
    status_code = 422
    code = "validation_error"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"


class ServiceBusy(AppError):
    """The server is saturated (no database connection free in time, SQLite locked): try again shortly."""

    status_code = 503
    code = "busy"


class ProviderNotConfigured(AppError):
    """A feature whose provider has no credentials in settings."""

    status_code = 503
    code = "provider_not_configured"

    def __init__(self, provider: str, variables: list[str]) -> None:
        super().__init__(
            f"{provider} is not configured: set {', '.join(variables)}",
            details={"provider": provider, "variables": variables},
        )
        self.provider = provider


class UpstreamError(AppError):
    """A provider answered with an error or could not be reached."""

    status_code = 502
    code = "upstream_error"
