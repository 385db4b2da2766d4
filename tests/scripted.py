"""A scripted model provider for tests, registered through the model service's own interface.

It answers from the prompt (so different tasks get different answers), can fail a given number of
times first, and can be slow. It exists only in the test suite: the running platform never uses it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from agent_lightning.core.config import Settings
from agent_lightning.core.errors import Unavailable
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


def scripted_models(
    settings: Settings, provider: ScriptedProvider | None = None
) -> tuple[ModelService, ScriptedProvider]:
    """A model service whose `local` alias is served by a scripted provider."""
    provider = provider or ScriptedProvider()
    service = ModelService(default_model=settings.default_model, settings=settings)
    service.register_provider(provider)
    service.register_alias("local", provider=provider.name, provider_model="scripted-1")
    return service, provider


@dataclass
class ToolCallingProvider(ScriptedProvider):
    """Calls tools as told: `script[i]` is the list of calls (tool name, arguments: a dict, or a string sent
    as is) of the i-th model turn of a run that has tools. After the script (or when told not to call tools)
    it answers with the results it got: "Tool results: …"."""

    name: str = "toolcaller"
    script: list[list[tuple[str, dict | str]]] = field(default_factory=list)

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failures > 0:
            self.failures -= 1
            raise Unavailable("scripted failure", code="model_error")
        turn = sum(1 for m in request.messages if m.role == "assistant" and m.tool_calls)
        usage = {
            "prompt_tokens": sum(len(m.content.split()) for m in request.messages),
            "completion_tokens": 5,
        }
        if request.tools and request.tool_choice != "none" and turn < len(self.script):
            calls = [
                {
                    "id": f"call_{turn}_{i}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": args if isinstance(args, str) else json.dumps(args),
                    },
                }
                for i, (name, args) in enumerate(self.script[turn])
            ]
            return ChatResult(
                content="",
                tool_calls=calls,
                finish_reason="tool_calls",
                model=request.model,
                provider=self.name,
                provider_model=provider_model,
                **usage,
            )
        results = [m.content for m in request.messages if m.role == "tool"]
        content = (
            "Tool results: " + " | ".join(results)
            if results
            else f"answer to: {request.messages[-1].content}"
        )
        return ChatResult(
            content=content, model=request.model, provider=self.name, provider_model=provider_model, **usage
        )
