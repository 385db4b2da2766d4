"""`memory_remember`, `memory_recall`, `memory_forget`: memory the agent manages itself (as Letta's agents
do), next to the context the memory service builds automatically.

Memories belong to the conversation's user when the task names one (`context.user_id`), else to the agent
itself (user `agent:<id>`), so an agent keeps what it learnt across tasks.
"""

from __future__ import annotations

from typing import Any

from agent_lightning.core.errors import AppError
from agent_lightning.execution.tools.base import ToolContext, ToolMisuse, ToolOutage, ToolSpec, object_schema
from agent_lightning.memory.schemas import MemoryCreate, MemorySearch, MemoryStore

PERMISSION = "memory"
FORGET_SIMILARITY = 0.5


def owner(context: ToolContext) -> str:
    return context.user_id or f"agent:{context.agent_id}"


class _MemoryTool:
    def __init__(self, memory: MemoryStore) -> None:
        self.memory = memory

    async def _guarded(self, call):
        try:
            return await call
        except AppError as exc:
            if exc.status < 500:
                raise ToolMisuse(exc.message) from exc
            raise ToolOutage(f"Memory is unavailable now ({exc.code}).") from exc
        except Exception as exc:
            raise ToolOutage(f"Memory is unavailable now ({type(exc).__name__}).") from exc


class MemoryRemember(_MemoryTool):
    spec = ToolSpec(
        name="memory_remember",
        permission=PERMISSION,
        description="Remember a fact for later tasks (one short sentence, e.g. 'The user prefers metric "
        "units').",
        parameters=object_schema({"fact": {"type": "string", "minLength": 1, "maxLength": 2000}}, ["fact"]),
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        op = await self._guarded(
            self.memory.add_memory(
                MemoryCreate(
                    user_id=owner(context),
                    kind="semantic",
                    content=arguments["fact"],
                    agent_id=context.agent_id,
                )
            )
        )
        if op.op == "ignore":
            return "Already known."
        if op.op == "update":
            return f"Updated: '{op.replaced}' is now '{arguments['fact']}'."
        return "Remembered."


class MemoryRecall(_MemoryTool):
    spec = ToolSpec(
        name="memory_recall",
        permission=PERMISSION,
        description="Recall remembered facts related to a question.",
        parameters=object_schema(
            {
                "query": {"type": "string", "minLength": 1, "maxLength": 1000},
                "k": {"type": "integer", "minimum": 1, "maximum": 20},
            },
            ["query"],
        ),
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        found = await self._guarded(
            self.memory.search(
                MemorySearch(
                    user_id=owner(context),
                    query=arguments["query"],
                    k=arguments.get("k", 5),
                    agent_id=context.agent_id,
                )
            )
        )
        if not found:
            return "Nothing remembered about that."
        return "\n".join(f"- {r.memory.content}" for r in found)


class MemoryForget(_MemoryTool):
    spec = ToolSpec(
        name="memory_forget",
        permission=PERMISSION,
        description="Forget the remembered fact that best matches a description.",
        parameters=object_schema({"fact": {"type": "string", "minLength": 1, "maxLength": 2000}}, ["fact"]),
    )

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        found = await self._guarded(
            self.memory.search(
                MemorySearch(user_id=owner(context), query=arguments["fact"], k=1, agent_id=context.agent_id)
            )
        )
        if not found or found[0].similarity < FORGET_SIMILARITY:
            return "Nothing remembered matches that; nothing was forgotten."
        await self._guarded(self.memory.delete_memory(found[0].memory.id))
        return f"Forgot: '{found[0].memory.content}'."
