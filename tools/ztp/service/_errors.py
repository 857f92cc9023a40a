"""Errors the service answers with: each carries its HTTP status, a code and a reason."""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServiceError",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
]


class ServiceError(Exception):
    """Base of the service's client errors; ``str(exc)`` is the reason given to the caller."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class BadRequest(ServiceError):
    status = 400
    code = "invalid_request"


class Unauthorized(ServiceError):
    """No, unknown, expired or revoked token; bad client credentials."""

    status = 401
    code = "invalid_token"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(ServiceError):
    """Throttled; the answer carries ``Retry-After: retry_after_s``."""

    status = 429
    code = "too_many_requests"

    def __init__(self, detail: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after_s = retry_after_s
