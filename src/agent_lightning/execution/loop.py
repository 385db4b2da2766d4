"""The agent loop: the model proposes tool calls, the platform runs them and feeds the results back, until
the model answers or the run is out of steps or tokens.

Every model call and tool call is a step (stored and announced by the `StepLog`). A call to a tool that
needs a person's approval is stored as `awaiting_approval` and the run pauses; `resume` continues it from
its stored steps once every waiting call is approved or denied.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from agent_lightning.agents.schemas import Agent
from agent_lightning.core.db import utcnow
from agent_lightning.core.logging import get_logger
from agent_lightning.execution.schemas import Step, StepCounts, StepStatus
from agent_lightning.execution.steps import StepLog
from agent_lightning.execution.tools.base import ToolContext
from agent_lightning.execution.tools.toolbox import Toolbox, ToolOutcome
from agent_lightning.models.schemas import ChatMessage, ChatRequest, ChatResult, ModelGateway

log = get_logger(__name__)

FINAL_TURN = (
    "You have used every step this task allows. Answer now with what you have found; "
    "do not call any more tools."
)
DENIED = "The operator denied this call. Do not try it again; answer without it or with another tool."


@dataclass
class AgentRun:
    """One run of an agent on a task: its conversation so far and the tools it may call."""

    agent: Agent
    execution_id: str
    task_id: str
    messages: list[ChatMessage]
    toolbox: Toolbox
    context: ToolContext
    timeout_s: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class LoopOutcome:
    """The final answer (or the steps that wait for approval) and what the run took."""

    content: str = ""
    model: str = ""
    provider: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    counts: StepCounts = field(default_factory=StepCounts)
    pending: list[int] = field(default_factory=list)
    last_tool_error: str | None = None  # the kind of the last failed tool call, if the last calls failed


class AgentLoop:
    def __init__(self, models: ModelGateway, steps: StepLog, *, token_budget: int) -> None:
        self.models = models
        self.steps = steps
        self.token_budget = token_budget

    async def run(self, run: AgentRun, *, resume: list[Step] | None = None) -> LoopOutcome:
        """Run (or, with the execution's stored steps, resume) until an answer or a pause."""
        outcome = LoopOutcome()
        numbers = itertools.count(await self.steps.next_number(run.task_id))
        if resume:
            await self._replay(run, resume, outcome)
            if outcome.pending:
                return outcome
        while outcome.counts.model_calls < run.agent.max_steps and self._tokens(outcome) < self.token_budget:
            first = outcome.counts.model_calls == 0
            choice = "required" if first and run.agent.tool_choice == "required" and run.toolbox else None
            chat = await self._model(run, outcome, next(numbers), tool_choice=choice)
            if not chat.tool_calls:
                outcome.content = chat.content
                return outcome
            outcome.pending = await self._calls(run, chat.tool_calls, outcome, numbers)
            if outcome.pending:
                return outcome
        run.messages.append(ChatMessage(role="user", content=FINAL_TURN))
        chat = await self._model(run, outcome, next(numbers), tool_choice="none")
        outcome.content = chat.content
        return outcome

    @staticmethod
    def _tokens(outcome: LoopOutcome) -> int:
        return outcome.prompt_tokens + outcome.completion_tokens

    async def _model(
        self, run: AgentRun, outcome: LoopOutcome, number: int, *, tool_choice: str | None
    ) -> ChatResult:
        """One model call, stored as a step; its tool calls join the conversation."""
        started, at = time.perf_counter(), utcnow()
        request = ChatRequest(
            model=run.agent.model,
            messages=list(run.messages),
            temperature=run.agent.temperature,
            max_tokens=run.agent.max_tokens,
            timeout_s=run.timeout_s,
            metadata=run.metadata,
            tools=run.toolbox.definitions() or None,
            tool_choice=tool_choice if run.toolbox else None,
        )
        try:
            chat = await self.models.chat(request)
        except Exception as exc:
            await self.steps.add(
                execution_id=run.execution_id,
                task_id=run.task_id,
                number=number,
                kind="model",
                name=run.agent.model,
                status=StepStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
                started_at=at,
                finished_at=utcnow(),
            )
            raise
        calls = [self._with_id(call, number, i) for i, call in enumerate(chat.tool_calls or [])] or None
        if tool_choice == "none":
            calls = None  # a model that calls tools anyway on its last turn is not obeyed
        chat = chat.model_copy(update={"tool_calls": calls})
        outcome.counts.model_calls += 1
        outcome.prompt_tokens += chat.prompt_tokens
        outcome.completion_tokens += chat.completion_tokens
        outcome.model, outcome.provider = chat.model, chat.provider
        await self.steps.add(
            execution_id=run.execution_id,
            task_id=run.task_id,
            number=number,
            kind="model",
            name=chat.model,
            output=chat.content,
            tool_calls=calls,
            status=StepStatus.SUCCEEDED,
            prompt_tokens=chat.prompt_tokens,
            completion_tokens=chat.completion_tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
            started_at=at,
            finished_at=utcnow(),
        )
        if calls:
            run.messages.append(ChatMessage(role="assistant", content=chat.content, tool_calls=calls))
        return chat

    @staticmethod
    def _with_id(call: dict[str, Any], number: int, index: int) -> dict[str, Any]:
        function = call.get("function") or {}
        return {
            "id": call.get("id") or f"call_{number}_{index}",
            "type": "function",
            "function": {"name": function.get("name", ""), "arguments": function.get("arguments") or "{}"},
        }

    async def _calls(
        self, run: AgentRun, calls: list[dict[str, Any]], outcome: LoopOutcome, numbers
    ) -> list[int]:
        """Run the calls of one model turn, in parallel; those that need approval are stored and returned."""
        planned = [(next(numbers), call) for call in calls]
        waiting: list[int] = []
        runnable = []
        for number, call in planned:
            name, raw = call["function"]["name"], call["function"]["arguments"]
            if run.toolbox.needs_approval(name):
                try:
                    arguments = run.toolbox.parse(name, raw)
                except Exception:
                    runnable.append((number, call))  # a malformed call fails as it is, with no one asked
                    continue
                await self.steps.add(
                    execution_id=run.execution_id,
                    task_id=run.task_id,
                    number=number,
                    kind="tool",
                    name=name,
                    call_id=call["id"],
                    arguments=arguments,
                    status=StepStatus.AWAITING_APPROVAL,
                )
                waiting.append(number)
            else:
                runnable.append((number, call))
        results = await asyncio.gather(*(self._tool(run, number, call, outcome) for number, call in runnable))
        by_number = dict(zip([n for n, _ in runnable], results, strict=True))
        if waiting:
            return waiting  # the messages are rebuilt from the stored steps when the run resumes
        for number, call in planned:
            run.messages.append(
                self._tool_message(call["id"], call["function"]["name"], by_number[number].output)
            )
        return []

    async def _tool(
        self, run: AgentRun, number: int, call: dict[str, Any], outcome: LoopOutcome
    ) -> ToolOutcome:
        name, at = call["function"]["name"], utcnow()
        result = await run.toolbox.call(name, call["function"]["arguments"], run.context)
        self._count(outcome, name, result.kind)
        arguments = (
            result.arguments
            if result.arguments is not None
            else {"raw": str(call["function"]["arguments"])[:2000]}
        )
        await self.steps.add(
            execution_id=run.execution_id,
            task_id=run.task_id,
            number=number,
            kind="tool",
            name=name,
            call_id=call["id"],
            arguments=arguments,
            output=result.output,
            status=StepStatus.SUCCEEDED if result.ok else StepStatus.FAILED,
            error=result.error,
            error_kind=result.kind,
            latency_ms=result.latency_ms,
            started_at=at,
            finished_at=utcnow(),
        )
        return result

    @staticmethod
    def _count(outcome: LoopOutcome, name: str, kind: str | None) -> None:
        counts = outcome.counts
        counts.tool_calls += 1
        if name not in counts.tools and kind != "denied":
            counts.tools.append(name)
        if kind == "misuse":
            counts.misuse += 1
        elif kind in ("outage", "timeout"):
            counts.outage += 1
        outcome.last_tool_error = kind

    @staticmethod
    def _tool_message(call_id: str, name: str, output: str) -> ChatMessage:
        return ChatMessage(role="tool", tool_call_id=call_id, name=name, content=output)

    async def _replay(self, run: AgentRun, steps: list[Step], outcome: LoopOutcome) -> None:
        """Rebuild the conversation from a paused run's steps, running the calls approved since."""
        for step in steps:
            if step.kind == "model":
                if step.status != StepStatus.SUCCEEDED:
                    continue
                outcome.counts.model_calls += 1
                outcome.prompt_tokens += step.prompt_tokens
                outcome.completion_tokens += step.completion_tokens
                if step.tool_calls:
                    run.messages.append(
                        ChatMessage(role="assistant", content=step.output, tool_calls=step.tool_calls)
                    )
                continue
            if step.status == StepStatus.AWAITING_APPROVAL:
                outcome.pending.append(step.number)
                continue
            output = step.output
            if step.status == StepStatus.APPROVED:
                result = await run.toolbox.call(step.name, step.arguments, run.context)
                self._count(outcome, step.name, result.kind)
                await self.steps.finish(
                    run.execution_id,
                    step.number,
                    output=result.output,
                    error=result.error,
                    error_kind=result.kind,
                    latency_ms=result.latency_ms,
                    status=StepStatus.SUCCEEDED if result.ok else StepStatus.FAILED,
                )
                output = result.output
            elif step.status == StepStatus.DENIED and not step.finished_at:
                await self.steps.finish(
                    run.execution_id,
                    step.number,
                    output=f"Error: {DENIED}",
                    error=DENIED,
                    error_kind="denied",
                )
                output = f"Error: {DENIED}"
                self._count(outcome, step.name, "denied")
            else:
                self._count(outcome, step.name, step.error_kind)
            run.messages.append(self._tool_message(step.call_id or f"call_{step.number}", step.name, output))
