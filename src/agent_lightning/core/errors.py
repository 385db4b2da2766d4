"""Typed errors of the domain. Each carries its HTTP status and a stable code; `core.http` maps them once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AppError(Exception):
    """Base of every error a client may see (`headers` go on its response)."""

    status = 400
    code = "bad_request"
    headers: Mapping[str, str] = {}

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class Unauthenticated(AppError):
    """Missing, invalid or expired credential."""

    status = 401
    code = "unauthenticated"
    headers: Mapping[str, str] = {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    """A valid credential whose role is too low."""

    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"


class Invalid(AppError):
    status = 422
    code = "validation_error"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"


class Unavailable(AppError):
    """A dependency (model, database, another service) cannot serve right now."""

    status = 503
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached or used right now (down, restarting, unreachable, locked)."""

    code = "database_unavailable"
    headers: Mapping[str, str] = {"Retry-After": "5"}


class UpstreamError(AppError):
    """Another service answered with something we cannot use."""

    status = 502
    code = "upstream_error"
