"""HTTP routes of the model service: the OpenAI-compatible `/v1` API, the model registry (`/models`),
usage (`/model-usage`) and the service-to-service inference routes (`/inference`) used by `ModelsClient`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from agent_lightning.core.auth import Principal, authenticate, has_role, require
from agent_lightning.core.errors import AppError, Forbidden
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.core.logging import get_logger
from agent_lightning.models.openai_wire import (
    ChatCompletion,
    ChatCompletionRequest,
    ChunkWriter,
    EmbeddingList,
    EmbeddingsRequest,
    WireError,
    WireModel,
    WireModelList,
    completion_body,
    embeddings_body,
    error_body,
    model_body,
)
from agent_lightning.models.schemas import (
    AliasScope,
    ChatDelta,
    ChatRequest,
    ChatResult,
    ComponentHealth,
    EmbeddingRequest,
    EmbeddingResult,
    ModelCreate,
    ModelInfo,
    ModelStats,
    ModelStatus,
    ModelUpdate,
    UsageSummary,
)
from agent_lightning.models.service import ModelService

log = get_logger(__name__)


class ModelList(BaseModel):
    items: list[ModelInfo]


class OpenAIErrorRoute(APIRoute):
    """Answers errors of the `/v1` routes in OpenAI's error shape (the rest of the API keeps ours)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_error(exc)
            except HTTPException as exc:  # a body that cannot be parsed
                message = "The request body is not valid JSON." if exc.status_code == 400 else str(exc.detail)
                code = "invalid_json" if exc.status_code == 400 else None
                return JSONResponse(
                    error_body(exc.status_code, message, code),
                    status_code=exc.status_code,
                    headers=exc.headers,
                )
            except AppError as exc:
                status = 400 if exc.status == 422 else exc.status  # OpenAI answers invalid requests with 400
                return JSONResponse(
                    error_body(status, exc.message, exc.code, _param(exc)),
                    status_code=status,
                    headers=exc.headers,
                )

        return route


def _param(exc: AppError) -> str | None:
    return exc.details.get("param") if isinstance(exc.details, dict) else None


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return JSONResponse(
            error_body(400, "The request body is not valid JSON.", "invalid_json"), status_code=400
        )
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = (
        f"Invalid value for '{param}': {first.get('msg', 'invalid')}."
        if param
        else str(first.get("msg", "Invalid request."))
    )
    code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
    return JSONResponse(error_body(400, message, code, param), status_code=400)


def openai_router(models: ModelService) -> APIRouter:
    """`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`: what any OpenAI client expects."""
    errors = {status: {"model": WireError} for status in (400, 404, 429, 502, 503)}
    api = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIErrorRoute, responses=errors)

    @api.post(
        "/chat/completions",
        summary="Chat completion (OpenAI-compatible, streaming with SSE)",
        response_model=None,
        responses={200: {"model": ChatCompletion, "content": {"text/event-stream": {}}}},
    )
    async def chat_completions(body: ChatCompletionRequest) -> Response:
        request = body.to_internal()
        if not body.stream:
            result = await models.chat(request)
            return Response(orjson.dumps(completion_body(result)), media_type="application/json")
        deltas = await models.open_stream(request)  # errors before the first piece are plain HTTP errors
        return StreamingResponse(
            _sse(deltas, ChunkWriter(body.model, body.include_usage)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.post(
        "/embeddings",
        summary="Embeddings (OpenAI-compatible)",
        response_model=None,
        responses={200: {"model": EmbeddingList}},
    )
    async def embeddings(body: EmbeddingsRequest) -> Response:
        metadata = dict(body.metadata or {})
        result = await models.embed(EmbeddingRequest(model=body.model, input=body.texts(), metadata=metadata))
        if body.dimensions and result.vectors and body.dimensions != len(result.vectors[0]):
            raise AppError(
                f"The model '{body.model}' has {len(result.vectors[0])} dimensions.",
                code="invalid_value",
                details={"param": "dimensions"},
            )
        return JSONResponse(embeddings_body(result, body.encoding_format))

    @api.get(
        "/models",
        summary="Models (OpenAI-compatible)",
        response_model=None,
        responses={200: {"model": WireModelList}},
    )
    async def list_models() -> Response:
        items = [m for m in await models.list_models() if m.status == ModelStatus.ACTIVE]
        return JSONResponse({"object": "list", "data": [model_body(m) for m in items]})

    @api.get(
        "/models/{model:path}",
        summary="One model (OpenAI-compatible)",
        response_model=None,
        responses={200: {"model": WireModel}},
    )
    async def get_model(model: str) -> Response:
        return JSONResponse(model_body(await models.get_model(model)))

    return api


async def _sse(deltas: AsyncIterator[ChatDelta], writer: ChunkWriter) -> AsyncIterator[bytes]:
    yield writer.role()
    prompt = completion = 0
    try:
        async for delta in deltas:
            if delta.content or delta.tool_calls:
                yield writer.delta(delta)
            if delta.finish_reason:
                prompt, completion = delta.prompt_tokens or 0, delta.completion_tokens or 0
                yield writer.finish(delta.finish_reason)
    except AppError as exc:
        yield writer.error(exc)
        return
    except Exception as exc:  # the status line is sent already: report in the stream
        log.exception("stream_failed", error_type=type(exc).__name__)
        error = AppError("The model failed while streaming.", code=getattr(exc, "code", "stream_failed"))
        error.status = 502
        yield writer.error(error)
        return
    if writer.include_usage:
        yield writer.usage(prompt, completion)
    yield writer.done()


def _platform_scope(scope: AliasScope, principal: Principal) -> bool:
    """Whether a change acts on the platform-wide alias; that needs the platform_admin role."""
    if scope == "platform" and not has_role(principal, "platform_admin"):
        raise Forbidden(
            "Platform-wide aliases need the platform_admin role.",
            details={"required": "platform_admin", "role": principal.role},
        )
    return scope == "platform"


def management_router(models: ModelService) -> APIRouter:
    """The model registry (your tenant's aliases and the platform's), statistics and usage."""
    api = APIRouter(tags=["models"], responses=ERROR_RESPONSES)
    admin = require("admin")
    scope_query = Query("tenant", description="platform: act on the platform-wide alias (platform admin).")

    @api.get(
        "/models", response_model=ModelList, summary="Model aliases you can name: yours and the platform's"
    )
    async def list_models() -> ModelList:
        return ModelList(items=await models.list_models())

    @api.post(
        "/models",
        response_model=ModelInfo,
        status_code=201,
        summary="Register a model alias for your tenant (admin), or platform-wide (platform admin)",
    )
    async def create_model(spec: ModelCreate, principal: Principal = Depends(admin)) -> ModelInfo:
        _platform_scope(spec.scope, principal)
        return await models.create_model(spec)

    @api.get(
        "/models/{alias:path}/stats", response_model=ModelStats, summary="Latency, throughput, errors, cost"
    )
    async def model_stats(alias: str) -> ModelStats:
        return await models.stats(alias)

    @api.post(
        "/models/{alias:path}/default",
        response_model=ModelInfo,
        dependencies=[Depends(require("platform_admin"))],
        summary="Make this platform alias every tenant's default model (platform admin)",
    )
    async def set_default(alias: str) -> ModelInfo:
        return await models.set_default(alias)

    @api.get("/models/{alias:path}", response_model=ModelInfo, summary="One model alias")
    async def get_model(alias: str) -> ModelInfo:
        return await models.get_model(alias)

    @api.patch(
        "/models/{alias:path}",
        response_model=ModelInfo,
        summary="Change deployments, fallbacks, params, status of your alias (admin) or a platform one",
    )
    async def update_model(
        alias: str,
        change: ModelUpdate,
        scope: AliasScope = scope_query,
        principal: Principal = Depends(admin),
    ) -> ModelInfo:
        return await models.update_model(alias, change, platform=_platform_scope(scope, principal))

    @api.delete(
        "/models/{alias:path}",
        response_model=ModelInfo,
        summary="Delete your alias (admin) or a platform one; returns what was deleted",
    )
    async def delete_model(
        alias: str, scope: AliasScope = scope_query, principal: Principal = Depends(admin)
    ) -> ModelInfo:
        return await models.delete_model(alias, platform=_platform_scope(scope, principal))

    @api.get(
        "/model-usage",
        response_model=UsageSummary,
        summary="Requests, tokens and cost by task/agent/tenant/model",
    )
    async def usage(
        group_by: Literal["task", "agent", "tenant", "model"] = Query("model"),
        tenant_id: str | None = Query(None),
        principal: Principal = Depends(authenticate),
    ) -> UsageSummary:
        if principal.kind != "anonymous":  # with auth, a caller sees only their own tenant's usage
            tenant_id = principal.tenant_id
        return UsageSummary(group_by=group_by, rows=await models.usage_summary(group_by, tenant_id=tenant_id))

    return api


def inference_router(models: ModelService) -> APIRouter:
    """The `ModelGateway` over HTTP, in the service's own schemas (used by `ModelsClient` in split mode)."""
    api = APIRouter(prefix="/inference", tags=["models"], responses=ERROR_RESPONSES)

    @api.post("/chat", response_model=ChatResult, summary="Chat (service-to-service)")
    async def chat(request: ChatRequest) -> ChatResult:
        return await models.chat(request)

    @api.post("/embeddings", response_model=EmbeddingResult, summary="Embeddings (service-to-service)")
    async def embed(request: EmbeddingRequest) -> EmbeddingResult:
        return await models.embed(request)

    @api.get("/ready", response_model=ComponentHealth, summary="Whether the default model can answer")
    async def ready() -> ComponentHealth:
        return await models.ready()

    return api


def router(models: ModelService) -> APIRouter:
    """Every route of the model service."""
    api = APIRouter()
    api.include_router(openai_router(models))
    api.include_router(management_router(models))
    api.include_router(inference_router(models))
    return api
