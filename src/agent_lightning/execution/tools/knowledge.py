"""`knowledge_search`: the agent searches the knowledge base itself (besides what the context builder
injected)."""

from __future__ import annotations

from typing import Any

from agent_lightning.core.errors import AppError
from agent_lightning.execution.tools.base import ToolContext, ToolOutage, ToolSpec, object_schema
from agent_lightning.knowledge.schemas import Filters, KnowledgeBase, SearchRequest

SNIPPET_CHARS = 800


class KnowledgeSearch:
    spec = ToolSpec(
        name="knowledge_search",
        description="Search the knowledge base (documents the team stored) for passages about a question. "
        "Returns the best passages with their titles.",
        parameters=object_schema(
            {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1000,
                    "description": "What to look for.",
                },
                "k": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 10,
                    "description": "How many passages (default 3).",
                },
            },
            ["query"],
        ),
    )

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        request = SearchRequest(
            query=arguments["query"], k=arguments.get("k", 3), filters=Filters(agent_id=context.agent_id)
        )
        try:
            result = await self.knowledge.search(request)
        except AppError as exc:
            raise ToolOutage(f"The knowledge base cannot search now ({exc.code}).") from exc
        except Exception as exc:
            raise ToolOutage(f"The knowledge base cannot search now ({type(exc).__name__}).") from exc
        if not result.hits:
            return "No passage matches."
        return "\n\n".join(
            f"[{n}] {hit.title}{' — ' + hit.heading if hit.heading else ''}\n{hit.text[:SNIPPET_CHARS]}"
            for n, hit in enumerate(result.hits, start=1)
        )
