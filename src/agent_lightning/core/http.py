"""HTTP glue shared by every service: the error body, body-size limit and correlation ids."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_lightning.core import nul, tracing
from agent_lightning.core.db import UNAVAILABLE_TYPES, unavailable
from agent_lightning.core.errors import AppError, DatabaseUnavailable, PayloadTooLarge
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
    status: {"model": ErrorBody} for status in (400, 404, 409, 413, 415, 422, 429, 502, 503)
}
"""Pass to routers so every documented error status shows the error body in OpenAPI (502: a model or another
service answered with something unusable, e.g. an agent run that ended without an answer)."""


def as_json(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """The same responses documented as `application/json`, for a route whose success is a stream: FastAPI
    would document them in the stream's media type, and they are JSON error bodies."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status, spec in responses.items():
        spec = dict(spec)
        model = spec.pop("model", None)
        if model is not None:
            spec["content"] = {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            }
        documented[status] = spec
    return documented


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    """A JSON response in the one error shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


_HTTP_CODES = {
    400: "bad_request",
    404: "route_not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


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
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = allowed_methods(request)
        return response

    async def _storage(_: Request, exc: Exception) -> JSONResponse:
        """A database outage is a 503 with Retry-After; other storage errors are crashes. Either way the
        answer is complete and the connection stays open (an error past these handlers closes it)."""
        if unavailable(exc):
            log.warning("database_unavailable", error=type(exc).__name__)
            outage = DatabaseUnavailable("The database is unavailable; retry shortly.")
            response = error_response(outage.status, outage.code, outage.message)
            response.headers.update(outage.headers)
            return response
        log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "An internal error occurred.")

    for kind in UNAVAILABLE_TYPES:
        app.add_exception_handler(kind, _storage)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "An internal error occurred.")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path: the framework's own `Allow` names only the
    methods of the route it found first, and a path is often served by several (GET and POST
    /memory/sessions)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


async def reject_nul_characters(connection: HTTPConnection) -> None:
    """Refuse NUL (U+0000) in the URL and in a JSON or form body with 422 `nul_character` (see `core.nul`).

    An application-wide dependency, so it sees the route: raw bodies (a PDF upload) are left to the route,
    which checks the text it extracts. WebSockets (their query holds only filters) are let through.
    """
    if not isinstance(connection, Request):
        return
    request = connection
    query = request.scope.get("query_string", b"")
    if "\x00" in request.url.path or b"%00" in query or b"\x00" in query:
        raise nul.refused("url")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type or not _parses_body(request.scope.get("route"), content_type):
        return
    if content_type == "application/json" or content_type.endswith("+json"):
        if nul.in_json(await request.body()):
            raise nul.refused("body")
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        if any(isinstance(value, str) and "\x00" in value for _, value in form.multi_items()):
            raise nul.refused("body")


def _parses_body(route: Any, content_type: str) -> bool:
    """Whether the route reads the body as JSON or a form (a declared body model, or a request body declared
    in its OpenAPI) rather than as raw bytes."""
    if getattr(route, "body_field", None) is not None:
        return True
    declared = ((getattr(route, "openapi_extra", None) or {}).get("requestBody") or {}).get("content", {})
    return content_type in declared


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
