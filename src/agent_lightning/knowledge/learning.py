"""Distilling a finished task into a reusable knowledge entry (by the model), with a plain fallback."""

from __future__ import annotations

from agent_lightning.core.logging import get_logger
from agent_lightning.models.schemas import ChatMessage, ChatRequest, ModelGateway

log = get_logger(__name__)

DISTIL_PROMPT = (
    "You maintain a team knowledge base. From the solved task below, write a short reusable entry with "
    "exactly two lines:\nProblem: <the problem in one sentence>\nSolution: <how it was solved, in at most "
    "three sentences>"
)


def fallback_entry(task: str, answer: str) -> str:
    """The entry when no model can write one: the task and the start of the answer."""
    return f"Problem: {' '.join(task.split())[:500]}\nSolution: {' '.join(answer.split())[:1500]}"


def parse_entry(text: str) -> str | None:
    """The model's entry if it has both a problem and a solution line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    problem = next((line for line in lines if line.lower().startswith("problem:")), None)
    solution = next((line for line in lines if line.lower().startswith("solution:")), None)
    if problem and solution and len(solution) > len("solution:") + 10:
        return f"{problem}\n{solution}"
    return None


async def distil(models: ModelGateway | None, model: str, task: str, answer: str) -> tuple[str, str]:
    """A problem → solution entry and who wrote it (the model alias, or `fallback`)."""
    if models is not None:
        request = ChatRequest(
            model=model,
            messages=[
                ChatMessage(role="system", content=DISTIL_PROMPT),
                ChatMessage(role="user", content=f"Task: {task[:3000]}\n\nAnswer: {answer[:4000]}"),
            ],
            temperature=0.1,
            max_tokens=200,
            metadata={"purpose": "knowledge_distillation"},
        )
        try:
            entry = parse_entry((await models.chat(request)).content)
        except Exception as exc:
            log.warning("distillation_failed", error=type(exc).__name__)
            entry = None
        if entry:
            return entry, model
    return fallback_entry(task, answer), "fallback"
