"""HTTP glue shared by every service: the error body, body-size limit and correlation ids."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_lightning.core import tracing
from agent_lightning.core.errors import AppError, PayloadTooLarge
from agent_lightning.core.logging import CORRELATION_HEADER, correlation_id, get_logger, new_correlation_id

log = get_logger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The one error shape: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 404, 409, 413, 422, 429, 503)
}
"""Pass to routers so every documented error status shows the error body in OpenAPI."""


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    """A JSON response in the one error shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


_HTTP_CODES = {400: "bad_request", 404: "route_not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    """Map typed errors, validation failures and crashes to the one error shape."""

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "The request body is not valid JSON.")
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors
        ]
        return error_response(422, "validation_error", "The request is invalid.", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "An internal error occurred.")


_CORRELATION_KEY = CORRELATION_HEADER.lower().encode()


class RequestContextMiddleware:
    """Binds a correlation id per request (from the header or new) and rejects oversized bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid, declared = None, None
        for key, value in scope.get("headers", ()):  # ASGI header names are lower-case bytes
            if key == _CORRELATION_KEY:
                cid = value.decode("latin-1")
            elif key == b"content-length":
                declared = value.decode("latin-1")
        cid = cid or new_correlation_id()
        token = correlation_id.set(cid)
        tracing.tag_correlation(cid)  # on the request's server span, with ALP_TRACING
        try:
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise PayloadTooLarge(f"The request body exceeds {self.max_body_bytes} bytes.")
                return message

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), (_CORRELATION_KEY, cid.encode())]
                await send(message)

            await self.app(scope, limited_receive, send_with_id)
        finally:
            correlation_id.reset(token)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"The request body exceeds {self.max_body_bytes} bytes."
        )
        await response(scope, receive, send)
