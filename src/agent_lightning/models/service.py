"""The model service: a registry of aliases, each served by one or more deployments on providers, and
inference through them with fallback, retries, cooldown, an optional cache and usage accounting."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from agent_lightning.core import tracing
from agent_lightning.core.config import Settings
from agent_lightning.core.crypto import SecretCipher, cipher_from_settings
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.egress import EgressDenied, EgressGuard
from agent_lightning.core.errors import AppError, Conflict, Forbidden, Invalid, NotFound, Unavailable
from agent_lightning.core.logging import get_logger
from agent_lightning.core.pii import mask_pii
from agent_lightning.core.tenancy import PLATFORM, current_tenant
from agent_lightning.models.cache import ResponseCache, cache_key
from agent_lightning.models.credentials import SECRET_CACHE_S, CredentialError, Credentials
from agent_lightning.models.embeddings import MODEL_NAME as EMBEDDING_MODEL
from agent_lightning.models.embeddings import LocalEmbedder
from agent_lightning.models.providers import (
    AnthropicProvider,
    EmbeddingProvider,
    LocalLlamaProvider,
    OpenAIProvider,
    Provider,
    StreamingProvider,
)
from agent_lightning.models.registry import Registry, model_info
from agent_lightning.models.routing import Cooldowns, Router, Target
from agent_lightning.models.schemas import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    ComponentHealth,
    Deployment,
    DeploymentHealth,
    EmbeddingRequest,
    EmbeddingResult,
    ModelCreate,
    ModelInfo,
    ModelStats,
    ModelStatus,
    ModelUpdate,
)
from agent_lightning.models.shared_embeddings import SharedEmbedder
from agent_lightning.models.usage import Usage, UsageRecorder, cost_of, price_of
from agent_lightning.secrets.schemas import SecretResolver

log = get_logger(__name__)

EXTERNAL_PROVIDERS = frozenset({"openai", "anthropic", "openai-compatible"})
"""Upstreams outside this deployment: prompts to them are masked with ALP_PII_MASK_PROVIDERS."""

KINDS = ("local", "openai", "anthropic", "openai-compatible")
PARAM_FIELDS = ("temperature", "max_tokens", "top_p", "stop")


class ModelService:
    """Resolves a model alias to its deployments and calls them, in order, until one answers.

    Aliases are per tenant, with platform-wide ones every tenant sees (models/registry.py); keys come from the
    sources models/credentials.py allows; upstream URLs pass the egress guard (core/egress.py)."""

    def __init__(
        self,
        default_model: str = "local",
        *,
        settings: Settings | None = None,
        db: Database | None = None,
        secrets: SecretResolver | None = None,
        cipher: SecretCipher | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.db = db
        self.embedder: EmbeddingProvider | None = None  # the local one (a SharedEmbedder over LocalEmbedder)
        self._providers: dict[str, Provider] = {}
        self._owned: dict[str, Provider] = {}  # providers built here from deployments (closed on close())
        self._resolved: dict[
            int, tuple[Deployment, Provider, float]
        ] = {}  # deployment object -> provider, until
        s = self.settings
        self.registry = Registry(db, cipher or cipher_from_settings(s), default_model)
        self.credentials = Credentials(s, secrets)
        self.cooldowns = Cooldowns(s.model_cooldown_failures, s.model_cooldown_s)
        self.router = Router(
            self.cooldowns,
            retries=s.model_retries,
            backoff_s=s.model_retry_backoff_s,
            timeout_s=s.model_timeout_s,
        )
        self.usage = UsageRecorder(
            db, flush_s=s.usage_flush_s, default_tenant=s.tenant_id, journal_dir=s.data_dir / "usage-journal"
        )
        self.cache = ResponseCache(s.model_cache_size, s.model_cache_ttl_s) if s.model_cache else None
        # Upstream URLs reach only public addresses, the operator's ALP_EGRESS_ALLOW and the base URLs the
        # operator configured (settings and the models file).
        self.egress = EgressGuard(s.egress_allow)
        self.egress.allow_url(s.openai_base_url)
        self.egress.allow_url(s.anthropic_base_url)

    @property
    def default_model(self) -> str:
        return self.registry.default_model

    # --- registry -------------------------------------------------------------------------------------

    def register_provider(self, provider: Provider) -> None:
        """Make a provider available under its name."""
        self._providers[provider.name] = provider

    def register_alias(
        self, alias: str, provider: str, provider_model: str, *, kind: str = "chat", **extra: Any
    ) -> ModelInfo:
        """Map a platform-wide alias (what agents name) to a provider's model, in memory (built-in
        aliases)."""
        info = ModelInfo(
            id=alias,
            provider=provider,
            provider_model=provider_model,
            kind=kind,
            deployments=[Deployment(provider=provider, model=provider_model)],
            **extra,
        )
        self.registry.put(PLATFORM, info)
        return info

    def register_model(self, spec: ModelCreate) -> ModelInfo:
        """Register a platform-wide alias with its deployments in memory (from the operator's models file)."""
        self._validate(spec.deployments, spec.fallbacks, spec.kind, spec.id, PLATFORM)
        for deployment in spec.deployments:
            if deployment.base_url:
                self.egress.allow_url(deployment.base_url)  # the operator's own file
        info = model_info(
            spec.id,
            spec.kind,
            spec.status,
            1,
            spec.description,
            spec.deployments,
            spec.fallbacks,
            spec.params,
        )
        self.registry.put(PLATFORM, info)
        return info

    async def list_models(self) -> list[ModelInfo]:
        """Every alias the current tenant can name: its own and the platform's."""
        await self.registry.ensure_loaded()
        return self.registry.visible(current_tenant())

    async def get_model(self, alias: str) -> ModelInfo:
        """One alias as the current tenant sees it, or NotFound."""
        return (await self._find(alias))[1]

    async def _find(self, alias: str) -> tuple[str, ModelInfo]:
        await self.registry.ensure_loaded()
        found = self.registry.find(alias, current_tenant())
        if found is None:
            raise NotFound(f"The model '{alias}' does not exist.", code="model_not_found")
        return found

    async def _changeable(self, alias: str, platform: bool) -> tuple[str, ModelInfo]:
        """The alias a change acts on: the tenant's own, or with `platform` the platform's."""
        await self.registry.ensure_loaded()
        owner = PLATFORM if platform else current_tenant()
        info = self.registry.owned(owner, alias)
        if info is not None:
            return owner, info
        if not platform and self.registry.owned(PLATFORM, alias) is not None:
            raise Forbidden(
                f"The model '{alias}' is platform-wide: only a platform admin changes it (with "
                "scope=platform). Register your own alias of that name to use another deployment in your "
                "tenant.",
                code="platform_alias",
                details={"alias": alias},
            )
        raise NotFound(f"The model '{alias}' does not exist.", code="model_not_found")

    async def create_model(self, spec: ModelCreate) -> ModelInfo:
        """Register a new alias of the current tenant (or, with scope platform, of every tenant) and store
        it."""
        await self.registry.ensure_loaded()
        owner = PLATFORM if spec.scope == "platform" else current_tenant()
        if self.registry.owned(owner, spec.id) is not None:
            raise Conflict(f"The model '{spec.id}' already exists.", code="model_exists")
        self._validate(spec.deployments, spec.fallbacks, spec.kind, spec.id, owner)
        await self._check_deployments(spec.deployments, owner)
        info = model_info(
            spec.id,
            spec.kind,
            spec.status,
            1,
            spec.description,
            spec.deployments,
            spec.fallbacks,
            spec.params,
        )
        info.created_at = info.updated_at = utcnow()
        await self.registry.save(owner, info, new=True)
        log.info("model_registered", alias=spec.id, scope=info.scope, tenant_id=owner)
        return info

    async def update_model(self, alias: str, change: ModelUpdate, *, platform: bool = False) -> ModelInfo:
        """Change an alias; agents naming it use the new deployments from their next request on."""
        owner, current = await self._changeable(alias, platform)
        data = change.model_dump(exclude_unset=True)
        deployments = change.deployments if change.deployments is not None else current.deployments
        fallbacks = change.fallbacks if change.fallbacks is not None else current.fallbacks
        self._validate(deployments, fallbacks, current.kind, alias, owner)
        if change.deployments is not None:
            await self._check_deployments(change.deployments, owner)
        versioned = any(key in data for key in ("deployments", "params"))
        info = model_info(
            alias,
            current.kind,
            data.get("status", current.status),
            current.version + (1 if versioned else 0),
            data.get("description", current.description),
            deployments,
            fallbacks,
            change.params if change.params is not None else current.params,
        )
        info.created_at, info.updated_at = current.created_at, utcnow()
        if current.is_default and info.status == ModelStatus.DISABLED:
            raise Conflict(
                "The default model cannot be disabled; choose another default first.", code="model_is_default"
            )
        await self.registry.save(owner, info, new=current.created_at is None)
        return info

    async def delete_model(self, alias: str, *, platform: bool = False) -> ModelInfo:
        """Remove a stored alias (a tenant's own alias: the platform's of that name is seen again)."""
        owner, info = await self._changeable(alias, platform)
        if info.created_at is None:
            raise Conflict(
                f"The model '{alias}' is built in or from the models file; disable it instead.",
                code="model_not_stored",
            )
        if info.is_default:
            raise Conflict(
                "The default model cannot be deleted; choose another default first.", code="model_is_default"
            )
        await self.registry.remove(owner, alias)
        return info

    async def set_default(self, alias: str) -> ModelInfo:
        """Make the platform alias `alias` every tenant's default model (stored, so it survives a restart)."""
        await self.registry.ensure_loaded()
        if (
            self.registry.owned(PLATFORM, alias) is None
            and self.registry.find(alias, current_tenant()) is not None
        ):
            raise Conflict(
                f"The model '{alias}' is your tenant's own alias: only a platform alias can be the default.",
                code="model_not_eligible",
            )
        owner, info = await self._changeable(alias, True)
        if info.kind != "chat" or info.status != ModelStatus.ACTIVE:
            raise Conflict(
                f"The model '{alias}' cannot be the default (it must be an active chat model).",
                code="model_not_eligible",
            )
        if info.created_at is None and self.db is not None:
            info.created_at = info.updated_at = utcnow()
            await self.registry.save(owner, info, new=True)
        await self.registry.store_default(alias)
        return info

    def _validate(
        self, deployments: list[Deployment], fallbacks: list[str], kind: str, alias: str, owner: str
    ) -> None:
        for deployment in deployments:
            if deployment.provider not in KINDS and deployment.provider not in self._providers:
                raise Invalid(f"Unknown provider '{deployment.provider}'.", code="unknown_provider")
            if deployment.provider == "openai-compatible" and not deployment.base_url:
                raise Invalid("An openai-compatible deployment needs a base_url.", code="base_url_required")
            if kind == "embedding" and deployment.provider == "anthropic":
                raise Invalid("Anthropic has no embeddings API.", code="embeddings_unsupported")
            self.credentials.check(deployment, owner)
        for fallback in fallbacks:
            if fallback == alias:
                raise Invalid("A model cannot fall back to itself.", code="fallback_cycle")
            found = self.registry.find(
                fallback, owner
            )  # a platform alias falls back to platform aliases only
            if found is None:
                raise Invalid(f"Unknown fallback model '{fallback}'.", code="unknown_fallback")
            if found[1].kind != kind:
                raise Invalid(f"Fallback '{fallback}' is not a {kind} model.", code="fallback_kind_mismatch")

    async def _check_deployments(self, deployments: list[Deployment], owner: str) -> None:
        """Refuse base URLs that aim at private, loopback or link-local addresses the operator has not allowed
        (checked again at every connection, against the address actually connected to), and secrets that the
        owner does not have."""
        for deployment in deployments:
            if deployment.base_url:
                try:
                    await self.egress.check(deployment.base_url)
                except EgressDenied as exc:
                    raise Invalid(exc.message, code=exc.code, details=exc.details) from exc
            if deployment.api_key_secret:
                try:
                    await self.credentials.key(deployment, owner)
                except CredentialError as exc:
                    raise Invalid(
                        f"api_key_secret {deployment.api_key_secret!r}: {exc}",
                        code="secret_not_found",
                        details={"api_key_secret": deployment.api_key_secret},
                    ) from exc

    # --- providers and targets ------------------------------------------------------------------------

    async def _provider_for(self, deployment: Deployment, owner: str) -> tuple[Provider | None, str]:
        """The provider instance that serves a deployment (built on first use for keys and base URLs), or why
        there is none."""
        known = self._resolved.get(id(deployment))
        if known is not None and known[0] is deployment and known[2] > time.monotonic():
            return known[1], ""
        try:
            provider = await self._build_provider(deployment, owner)
        except CredentialError as exc:
            return None, f"{deployment.id}: {exc}"
        if provider is None:
            return None, f"{deployment.id}: no provider"
        keep = float("inf") if self.credentials.cached(deployment) else time.monotonic() + SECRET_CACHE_S
        self._resolved[id(deployment)] = (deployment, provider, keep)
        return provider, ""

    async def _build_provider(self, deployment: Deployment, owner: str) -> Provider | None:
        custom = (
            deployment.base_url or deployment.api_key or deployment.api_key_env or deployment.api_key_secret
        )
        if not custom and deployment.provider in self._providers:
            return self._providers[deployment.provider]
        key = await self.credentials.key(deployment, owner)
        cache_id = json.dumps([deployment.provider, deployment.base_url, key], default=str)
        provider = self._owned.get(cache_id)
        if provider is not None:
            return provider
        s = self.settings
        timeout = s.model_timeout_s  # per-deployment and per-request timeouts are enforced by the router
        if deployment.provider == "anthropic":
            provider = AnthropicProvider(
                "anthropic",
                deployment.base_url or s.anthropic_base_url,
                key,
                timeout_s=timeout,
                guard=self.egress,
            )
        elif deployment.provider in ("openai", "openai-compatible"):
            provider = OpenAIProvider(
                deployment.provider,
                deployment.base_url or s.openai_base_url,
                key,
                timeout_s=timeout,
                requires_key=deployment.provider == "openai",
                guard=self.egress,
            )
        else:
            return None
        self._owned[cache_id] = provider
        return provider

    def _chain(self, alias: str, tenant: str) -> list[tuple[str, ModelInfo]]:
        """The alias and its fallback aliases as `tenant` sees them, breadth first, each once, active ones
        only."""
        chain: list[tuple[str, ModelInfo]] = []
        queue, seen = [alias], set()
        while queue:
            name = queue.pop(0)
            found = self.registry.find(name, tenant)
            if name in seen or found is None:
                continue
            seen.add(name)
            if found[1].status == ModelStatus.ACTIVE:
                chain.append(found)
            queue.extend(found[1].fallbacks)
        return chain

    async def _targets(self, alias: str, kind: str) -> tuple[ModelInfo, list[Target]]:
        _, info = await self._find(alias)
        if info.status != ModelStatus.ACTIVE:
            raise NotFound(f"The model '{alias}' is disabled.", code="model_disabled")
        if info.kind != kind:
            raise AppError(
                f"The model '{alias}' is not a {kind} model (it is a {info.kind} model).",
                code="model_kind_mismatch",
            )
        targets: list[Target] = []
        reasons: list[str] = []
        for owner, member in self._chain(alias, current_tenant()):
            for deployment in member.deployments:
                provider, why = await self._deployment_provider(deployment, owner, kind)
                if provider is None:
                    reasons.append(why)
                    continue
                ok, why = provider.available()
                if ok:
                    targets.append(Target(member, deployment, provider))
                else:
                    reasons.append(why)
        if not targets:
            raise Unavailable(
                f"Model '{alias}' is unavailable: {'; '.join(reasons)}.",
                code="model_unavailable",
                details=reasons,
            )
        return info, targets

    async def _deployment_provider(self, deployment: Deployment, owner: str, kind: str) -> tuple[Any, str]:
        """The provider of a chat or embedding deployment, or why there is none."""
        if kind != "embedding":
            return await self._provider_for(deployment, owner)
        if deployment.provider == "local" and not deployment.base_url:
            return (
                (self.embedder, "") if self.embedder is not None else (None, f"{deployment.id}: no provider")
            )
        provider, why = await self._provider_for(deployment, owner)
        if provider is not None and not isinstance(provider, EmbeddingProvider):
            return None, f"{deployment.id}: no embeddings"
        return provider, why

    # --- inference ------------------------------------------------------------------------------------

    def _prepare(self, request: ChatRequest, info: ModelInfo) -> ChatRequest:
        defaults = {
            k: v for k, v in info.params.items() if k in PARAM_FIELDS and k not in request.model_fields_set
        }
        return request.model_copy(update=defaults) if defaults else request

    def _for_deployment(self, request: ChatRequest, deployment: Deployment) -> ChatRequest:
        if deployment.max_tokens and request.max_tokens > deployment.max_tokens:
            request = request.model_copy(update={"max_tokens": deployment.max_tokens})
        if (
            self.settings.pii_mask_providers and deployment.provider in EXTERNAL_PROVIDERS
        ):  # ALP_PII_MASK_PROVIDERS
            messages = [m.model_copy(update={"content": mask_pii(m.content)}) for m in request.messages]
            request = request.model_copy(update={"messages": messages})
        return request

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Run a chat completion on the alias's deployments, falling back in order."""
        started = time.perf_counter()
        try:
            info, targets = await self._targets(request.model, "chat")
        except AppError as exc:
            self._record_error(request, exc, started)
            raise
        request = self._prepare(request, info)
        key = cache_key(request) if self.cache is not None else None
        if key is not None and (hit := self.cache.get(key)) is not None:
            hit.latency_ms = (time.perf_counter() - started) * 1000
            self.usage.record(_usage(request, hit, cached=True))
            return hit

        async def call(target: Target) -> ChatResult:
            sent = self._for_deployment(request, target.deployment)
            with tracing.inference(
                operation="chat",
                system=target.deployment.provider,
                model=target.deployment.model,
                alias=request.model,
                max_tokens=sent.max_tokens,
                temperature=sent.temperature,
            ) as span:
                result = await target.provider.chat(sent, target.deployment.model)
                tracing.inference_usage(
                    span,
                    input_tokens=result.prompt_tokens,
                    output_tokens=result.completion_tokens,
                    response_model=result.provider_model,
                )
                return result

        try:
            outcome = await self.router.run(targets, call, timeout_s=request.timeout_s)
        except AppError as exc:
            self._record_error(request, exc, started, attempts=len(targets))
            raise
        result = outcome.value
        generation_ms = result.latency_ms
        result.model = request.model
        result.deployment = outcome.target.id
        result.cost_usd = cost_of(
            result.prompt_tokens,
            result.completion_tokens,
            price_of(outcome.target.deployment, self.settings.model_prices),
        )
        result.latency_ms = (time.perf_counter() - started) * 1000
        self.usage.record(_usage(request, result, attempts=outcome.attempts, generation_ms=generation_ms))
        if key is not None:
            self.cache.put(key, result)
        return result

    async def open_stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Start a streamed completion: routing and fallback happen until the first piece arrives, so an
        unknown model or an exhausted chain raises here, before anything is sent to the client."""
        started = time.perf_counter()
        try:
            info, targets = await self._targets(request.model, "chat")
        except AppError as exc:
            self._record_error(request, exc, started, stream=True)
            raise
        request = self._prepare(request, info)

        async def open_one(target: Target) -> tuple[ChatDelta, AsyncIterator[ChatDelta]]:
            iterator = _deltas(
                target.provider, self._for_deployment(request, target.deployment), target.deployment.model
            )
            try:
                first = await anext(iterator)
            except StopAsyncIteration:
                first = ChatDelta(finish_reason="stop")
            return first, iterator

        try:
            outcome = await self.router.run(targets, open_one, timeout_s=request.timeout_s)
        except AppError as exc:
            self._record_error(request, exc, started, attempts=len(targets), stream=True)
            raise
        first, rest = outcome.value
        return self._relay(request, outcome.target, outcome.attempts, first, rest, started)

    async def _relay(
        self,
        request: ChatRequest,
        target: Target,
        attempts: int,
        first: ChatDelta,
        rest: AsyncIterator[ChatDelta],
        started: float,
    ) -> AsyncIterator[ChatDelta]:
        prompt = completion = 0
        pieces = 0
        status, error_code = "ok", None
        first_at = time.perf_counter()
        deadline = started + request.timeout_s if request.timeout_s else None
        try:
            delta: ChatDelta | None = first
            while delta is not None:
                if delta.content or delta.tool_calls:
                    pieces += 1
                if delta.prompt_tokens is not None:
                    prompt = delta.prompt_tokens
                if delta.completion_tokens is not None:
                    completion = delta.completion_tokens
                if delta.finish_reason and not completion:
                    completion = pieces
                yield delta
                try:
                    if deadline is None:
                        delta = await anext(rest)
                    else:
                        async with asyncio.timeout(max(0.001, deadline - time.perf_counter())):
                            delta = await anext(rest)
                except StopAsyncIteration:
                    delta = None
        except BaseException as exc:
            status, error_code = "error", getattr(exc, "code", type(exc).__name__)
            raise
        finally:
            cost = cost_of(prompt, completion, price_of(target.deployment, self.settings.model_prices))
            self.usage.record(
                Usage(
                    model=request.model,
                    status=status,
                    error_code=error_code,
                    provider=target.provider.name,
                    provider_model=target.deployment.model,
                    deployment=target.id,
                    metadata=request.metadata,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cost_usd=cost,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    generation_ms=(time.perf_counter() - first_at) * 1000,
                    attempts=attempts,
                    stream=True,
                )
            )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed texts with the alias's deployments (falling back in order)."""
        started = time.perf_counter()
        _, targets = await self._targets(request.model, "embedding")

        async def call(target: Target) -> tuple[list[list[float]], int]:
            with tracing.inference(
                operation="embeddings",
                system=target.deployment.provider,
                model=target.deployment.model,
                alias=request.model,
            ) as span:
                vectors, tokens = await target.provider.embed(request.input, target.deployment.model)
                tracing.inference_usage(span, input_tokens=tokens)
                return vectors, tokens

        try:
            outcome = await self.router.run(targets, call)
        except AppError as exc:
            self.usage.record(
                Usage(
                    model=request.model,
                    kind="embedding",
                    status="error",
                    error_code=exc.code,
                    metadata=request.metadata,
                )
            )
            raise
        vectors, tokens = outcome.value
        deployment = outcome.target.deployment
        result = EmbeddingResult(
            model=request.model,
            provider=deployment.provider,
            provider_model=deployment.model,
            vectors=vectors,
            prompt_tokens=tokens,
            cost_usd=cost_of(tokens, 0, price_of(deployment, self.settings.model_prices)),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        self.usage.record(
            Usage(
                model=request.model,
                kind="embedding",
                status="ok",
                provider=deployment.provider,
                provider_model=deployment.model,
                deployment=deployment.id,
                metadata=request.metadata,
                prompt_tokens=tokens,
                cost_usd=result.cost_usd,
                latency_ms=result.latency_ms,
                attempts=outcome.attempts,
            )
        )
        return result

    def _record_error(
        self, request: ChatRequest, exc: AppError, started: float, attempts: int = 0, stream: bool = False
    ) -> None:
        if exc.code in ("model_not_found", "model_disabled", "model_kind_mismatch"):
            return  # not a request to a model we serve
        self.usage.record(
            Usage(
                model=request.model,
                status="error",
                error_code=exc.code,
                metadata=request.metadata,
                latency_ms=(time.perf_counter() - started) * 1000,
                attempts=max(1, attempts),
                stream=stream,
            )
        )

    # --- health and statistics ------------------------------------------------------------------------

    async def stats(self, alias: str) -> ModelStats:
        """Live statistics of an alias and the health of each of its deployments."""
        owner, info = await self._find(alias)
        stats = self.usage.stats(alias)
        for deployment in info.deployments:
            provider, why = await self._deployment_provider(deployment, owner, info.kind)
            ok, why = provider.available() if provider is not None else (False, why)
            cooling = self.cooldowns.remaining(deployment.id)
            stats.deployments.append(
                DeploymentHealth(
                    deployment=deployment.id,
                    available=ok and not cooling,
                    detail=why,
                    consecutive_failures=self.cooldowns.consecutive_failures(deployment.id),
                    cooling_down_s=round(cooling, 3),
                    queue=provider.queue_stats() if hasattr(provider, "queue_stats") else None,
                )
            )
        return stats

    async def usage_summary(self, group_by: str, *, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests, tokens and cost grouped by task, agent, tenant or model."""
        return await self.usage.summary(group_by, tenant_id=tenant_id)

    async def ready(self) -> ComponentHealth:
        """Whether the default model can answer."""
        await self.registry.ensure_loaded()
        found = self.registry.find(self.default_model, current_tenant())
        info = found[1] if found else None
        if info is None:
            return ComponentHealth(ok=False, detail=f"default model '{self.default_model}' is not configured")
        try:
            _, targets = await self._targets(info.id, info.kind)
        except AppError as exc:
            return ComponentHealth(ok=False, detail=exc.message)
        ok, why = targets[0].provider.available()
        return ComponentHealth(ok=ok, detail=why)

    async def close(self) -> None:
        """Write pending usage and close upstream connections."""
        await self.usage.close()
        for provider in self._owned.values():
            await provider.close()
        self._owned.clear()


async def _deltas(provider: Any, request: ChatRequest, provider_model: str) -> AsyncIterator[ChatDelta]:
    """A provider's stream, or its one-shot answer as a stream when it cannot stream."""
    if isinstance(provider, StreamingProvider):
        async for delta in provider.stream(request, provider_model):
            yield delta
        return
    result = await provider.chat(request, provider_model)
    if result.content or result.tool_calls:
        calls = [{"index": i, **call} for i, call in enumerate(result.tool_calls or [])] or None
        yield ChatDelta(content=result.content, tool_calls=calls)
    yield ChatDelta(
        finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )


def _usage(
    request: ChatRequest,
    result: ChatResult,
    *,
    attempts: int = 1,
    generation_ms: float = 0.0,
    cached: bool = False,
) -> Usage:
    return Usage(
        model=request.model,
        status="ok",
        provider=result.provider,
        provider_model=result.provider_model,
        deployment=result.deployment,
        metadata=request.metadata,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost_usd=0.0 if cached else result.cost_usd,
        latency_ms=result.latency_ms,
        generation_ms=generation_ms,
        attempts=attempts,
        cached=cached,
    )


def build_model_service(
    settings: Settings,
    db: Database | None = None,
    *,
    secrets: SecretResolver | None = None,
    cipher: SecretCipher | None = None,
) -> ModelService:
    """The model service with the local chat model and local embeddings built in, plus the aliases of
    ``ALP_MODELS_FILE``; aliases created through the API are loaded from the database on first use."""
    service = ModelService(
        default_model=settings.default_model, settings=settings, db=db, secrets=secrets, cipher=cipher
    )
    local = LocalLlamaProvider(
        settings.local_model_path,
        threads=settings.local_threads,
        context=settings.local_context,
        concurrency=settings.local_concurrency,
        queue_size=settings.local_queue_size,
        extra_buffers=settings.local_extra_buffers,
        flash_attn=settings.local_flash_attn,
        repeat_penalty=settings.local_repeat_penalty,
    )
    service.register_provider(local)
    service.register_alias(
        "local",
        provider="local",
        provider_model=local.model_name,
        description="SmolLM2-135M-Instruct, in-process",
    )
    service.embedder = SharedEmbedder(  # one embedding per text for routing, knowledge and memory
        LocalEmbedder(
            settings.embedding_model_path,
            threads=settings.embedding_threads,
            batch_size=settings.embedding_batch_size,
        ),
        cache_size=settings.embedding_cache_size,
    )
    service.register_alias(
        EMBEDDING_MODEL.lower(),
        provider="local",
        provider_model=EMBEDDING_MODEL,
        kind="embedding",
        description="all-MiniLM-L6-v2 (384 dimensions), ONNX int8, in-process",
    )
    if settings.models_file:
        for spec in json.loads(settings.models_file.read_text()):
            service.register_model(ModelCreate.model_validate(spec))
    return service
