"""A scripted model provider for tests, registered through the model service's own interface.

It answers from the prompt (so different tasks get different answers), can fail a given number of
times first, and can be slow. It exists only in the test suite: the running platform never uses it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agent_lightning.core.errors import Unavailable
from agent_lightning.core.config import Settings
from agent_lightning.models.schemas import ChatRequest, ChatResult
from agent_lightning.models.service import ModelService


@dataclass
class ScriptedProvider:
    name: str = "scripted"
    failures: int = 0
    delay_s: float = 0.0
    up: bool = True
    calls: list[ChatRequest] = field(default_factory=list)

    def available(self) -> tuple[bool, str]:
        return (True, "scripted") if self.up else (False, "scripted provider switched off")

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failures > 0:
            self.failures -= 1
            raise Unavailable("scripted failure", code="model_error")
        system = request.messages[0].content
        task = request.messages[-1].content
        return ChatResult(
            content=f"answer to: {task.splitlines()[0]} (as {system.split('.')[0]})",
            model=request.model,
            provider=self.name,
            provider_model=provider_model,
            prompt_tokens=sum(len(m.content.split()) for m in request.messages),
            completion_tokens=7,
        )


def scripted_models(settings: Settings, provider: ScriptedProvider | None = None) -> tuple[ModelService, ScriptedProvider]:
    """A model service whose `local` alias is served by a scripted provider."""
    provider = provider or ScriptedProvider()
    service = ModelService(default_model=settings.default_model)
    service.register_provider(provider)
    service.register_alias("local", provider=provider.name, provider_model="scripted-1")
    return service, provider
