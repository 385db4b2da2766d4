"""The tools one agent run may use: their definitions for the model, and calling one safely.

A call's arguments are parsed and checked against the tool's JSON schema before it runs, it runs with a
timeout, and whatever happens comes back as text for the model: a result, or an error it can act on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from agent_lightning.agents.schemas import ToolPolicy
from agent_lightning.core.logging import get_logger
from agent_lightning.execution.tools.base import Tool, ToolContext, ToolDenied, ToolError, ToolErrorKind

log = get_logger(__name__)


@dataclass
class ToolOutcome:
    """What one call gave: its output as the model sees it, and the error (with its kind) if it failed."""

    output: str
    arguments: dict[str, Any] | None
    latency_ms: float = 0.0
    error: str | None = None
    kind: ToolErrorKind | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit} more characters cut]"


class Toolbox:
    """The tools granted to one run, by the name the model calls them."""

    def __init__(
        self,
        tools: list[Tool],
        *,
        timeout_s: float,
        result_chars: int,
        approval: frozenset[str] = frozenset(),
        policy: Callable[[], Awaitable[ToolPolicy]] | None = None,
        denied: frozenset[str] = frozenset(),
    ) -> None:
        self.tools = {tool.spec.name: tool for tool in tools}
        self.policy = policy  # the tenant's tool policy, read again at every call
        self.denied = denied  # tools the policy denied when the run began: not offered to the model
        self.timeout_s = timeout_s
        self.result_chars = result_chars
        self.approval = approval  # permission names whose calls wait for a person
        self._validators = {
            name: Draft202012Validator(tool.spec.parameters) for name, tool in self.tools.items()
        }

    def __bool__(self) -> bool:
        return bool(self.tools.keys() - self.denied)

    def definitions(self) -> list[dict[str, Any]]:
        """The OpenAI `tools` list (without the tools the tenant's policy denies)."""
        return [tool.spec.definition() for name, tool in self.tools.items() if name not in self.denied]

    def names(self) -> list[str]:
        return list(self.tools)

    def needs_approval(self, name: str) -> bool:
        tool = self.tools.get(name)
        if tool is None or name in self.denied:
            return False  # a denied call is refused, not put to a person
        permission = tool.spec.permission
        return tool.spec.requires_approval or bool(
            {permission, permission.split("/", 1)[0], name} & self.approval
        )

    def parse(self, name: str, raw: str | dict[str, Any] | None) -> dict[str, Any]:
        """The call's arguments as an object that fits the tool's schema, or `ToolError` saying why not."""
        if name not in self.tools:
            raise ToolError(f"There is no tool named '{name}'. Available: {', '.join(self.tools) or 'none'}.")
        if isinstance(raw, dict):
            arguments = raw
        else:
            try:
                arguments = json.loads(raw or "{}")
            except ValueError as exc:
                raise ToolError(f"The arguments are not valid JSON ({exc.msg}).") from None
        if not isinstance(arguments, dict):
            raise ToolError("The arguments must be a JSON object.")
        problems = sorted(self._validators[name].iter_errors(arguments), key=lambda e: list(e.path))
        if problems:
            where = lambda e: "/".join(str(p) for p in e.path) or "arguments"  # noqa: E731
            raise ToolError(
                "Invalid arguments: " + "; ".join(f"{where(e)}: {e.message}" for e in problems[:5])
            )
        return arguments

    async def call(self, name: str, raw: str | dict[str, Any] | None, context: ToolContext) -> ToolOutcome:
        """Run one call; never raises for the tool's own failures."""
        started = time.perf_counter()
        arguments: dict[str, Any] | None = None
        try:
            arguments = self.parse(name, raw)
            tool = self.tools[name]
            if self.policy is not None and not (await self.policy()).allows(tool.spec.names):
                raise ToolDenied(f"Your tenant's tool policy does not allow '{name}'. Answer without it.")
            timeout = tool.spec.timeout_s or self.timeout_s
            try:
                output = await asyncio.wait_for(tool.run(arguments, context), timeout)
            except TimeoutError:
                return self._failed(
                    arguments, started, f"The tool did not finish within {timeout:g} s.", "timeout"
                )
        except ToolError as exc:
            return self._failed(arguments, started, exc.message, exc.kind)
        except Exception as exc:  # a bug in a tool: the model is told, the agent is not blamed
            log.exception("tool_crashed", tool=name)
            return self._failed(arguments, started, f"The tool failed ({type(exc).__name__}).", "outage")
        return ToolOutcome(
            output=clip(str(output), self.result_chars),
            arguments=arguments,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _failed(
        self, arguments: dict[str, Any] | None, started: float, message: str, kind: ToolErrorKind
    ) -> ToolOutcome:
        return ToolOutcome(
            output=f"Error: {message}",
            arguments=arguments,
            error=message,
            kind=kind,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
