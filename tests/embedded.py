"""The platform for knowledge and memory tests: the scripted chat provider plus the real local embedding
model (all-MiniLM-L6-v2 on onnxruntime), so retrieval is real and answers are deterministic."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from scripted import ScriptedProvider, scripted_models

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.models.embeddings import LocalEmbedder
from agent_lightning.models.schemas import ChatRequest, ChatResult
from agent_lightning.models.shared_embeddings import SharedEmbedder


@dataclass
class QuotingProvider(ScriptedProvider):
    """Answers by quoting what the prompt gave it: the first knowledge passage and the first remembered
    memory."""

    name: str = "quoting"

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        system = request.messages[0].content
        knowledge = next((line for line in system.splitlines() if line.startswith("[K1]")), None)
        lines = system.splitlines()
        at = lines.index(knowledge) + 2 if knowledge else 0  # [K1] <<<fence, then the title, then the passage
        passage = lines[at] if knowledge and at < len(lines) else ""
        memory = next((line for line in lines if line.startswith("- [M1]")), "")
        parts = [f"According to [K1]: {passage}" if knowledge else "No knowledge given."]
        if memory:
            parts.append(f"I remember: {memory[len('- [M1] ') :]}")
        return ChatResult(
            content=" ".join(parts),
            model=request.model,
            provider=self.name,
            provider_model=provider_model,
            prompt_tokens=10,
            completion_tokens=10,
        )


_LOCAL: list[LocalEmbedder] = []


def local_embedder() -> LocalEmbedder:
    """The local embedding model, loaded once per test process (0.3 s a load): it keeps nothing of a test,
    only its ONNX session and tokenizer."""
    if not _LOCAL:
        _LOCAL.append(LocalEmbedder(threads=1))
    return _LOCAL[0]


def with_embeddings(settings: Settings, provider: ScriptedProvider):
    """A scripted model service that also embeds with the local model under the configured alias."""
    models, _ = scripted_models(settings, provider)
    models.embedder = SharedEmbedder(local_embedder())  # as build_model_service wraps it
    models.register_alias(
        settings.knowledge_embedding_model,
        provider="local",
        provider_model="all-MiniLM-L6-v2",
        kind="embedding",
    )
    return models


@asynccontextmanager
async def embedded_app(settings: Settings, provider: ScriptedProvider | None = None, **kwargs):
    """The one-process platform with real embeddings, started, and an in-process HTTP client."""
    provider = provider or ScriptedProvider()
    app = create_app(settings, model_service=with_embeddings(settings, provider), **kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alp", timeout=60) as client:
            client.app = app
            yield client
