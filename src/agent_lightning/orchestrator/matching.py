"""Capability matching: how well an agent's declared expertise fits a task description.

Keywords match on word boundaries (so "ci" does not match "special"), each keyword counts once,
and the score is clamped to [0, 1]:

- a specialist scores ``0.1·base`` with no expertise hit, ``0.7·base`` with one, +0.1·base per further
  hit up to ``base`` at four;
- a generalist scores ``base`` on any task;
- every weak keyword that appears costs 0.15;
- a task that needs a tool (an arithmetic expression or "calculate" needs `python`, a URL `http_fetch`, "our
  docs" `knowledge_search`, …: `TOOL_HINTS`): each needed tool an agent is granted counts as an expertise hit
  and adds up to 0.2 more, so such tasks go to agents that can act on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from agent_lightning.agents.schemas import Agent

WEAK_PENALTY = 0.15
TOOL_BONUS = 0.2
TOOL_HINTS: dict[str, tuple[re.Pattern[str], ...]] = {
    "python": (
        re.compile(r"\d\s*[-+*/×÷^%]\s*\d"),
        re.compile(
            r"(?<![a-z])(calculate|compute|sum of|average of|mean of|product of|square root|factorial|"
            r"how many days|percentage of|percent of|prime|digits of|fibonacci)(?![a-z])"
        ),
    ),
    "http_fetch": (re.compile(r"https?://"), re.compile(r"(?<![a-z])(fetch|web page|download)(?![a-z])")),
    "knowledge_search": (
        re.compile(r"(?<![a-z])(knowledge base|our docs|our documentation|runbook|look up)(?![a-z])"),
    ),
    "memory": (re.compile(r"(?<![a-z])(remember|recall|forget)(?![a-z])"),),
}


@lru_cache(maxsize=4096)
def _pattern(keyword: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(keyword.lower()) + r"(?![a-z0-9])")


def matched(keywords: list[str], text: str) -> list[str]:
    """The keywords that occur in `text` as whole words (or phrases)."""
    lowered = text.lower()
    return [k for k in keywords if _pattern(k).search(lowered)]


def needed_tools(text: str) -> list[str]:
    """The tools a task's wording says it needs."""
    lowered = text.lower()
    return [tool for tool, patterns in TOOL_HINTS.items() if any(p.search(lowered) for p in patterns)]


@dataclass(frozen=True)
class CapabilityMatch:
    score: float
    hits: list[str]
    weak: list[str]
    tools: list[str] = field(default_factory=list)

    def reason(self, agent_name: str) -> str:
        parts = [f"{agent_name}:"]
        if self.hits:
            parts.append(f"matched {len(self.hits)} expertise keyword(s) ({', '.join(self.hits[:5])})")
        else:
            parts.append("no expertise keyword matched")
        if self.tools:
            parts.append(f"can use {', '.join(self.tools)}")
        if self.weak:
            parts.append(f"penalised for {', '.join(self.weak)}")
        return " ".join(parts)


def capability_score(agent: Agent, text: str) -> CapabilityMatch:
    """Score how well `agent` fits the task `text`."""
    hits = matched(agent.expertise, text)
    weak = matched(agent.weak_keywords, text)
    needed = needed_tools(text)
    usable = [tool for tool in needed if tool in agent.tools]  # each counts as an expertise hit, and more
    fits = len(hits) + len(usable)
    if agent.generalist:
        score = agent.base_confidence
    elif not fits:
        score = 0.1 * agent.base_confidence
    else:
        score = agent.base_confidence * min(1.0, 0.7 + 0.1 * (fits - 1))
    if usable:
        score += TOOL_BONUS * len(usable) / len(needed)
    score = max(0.0, min(1.0, score - WEAK_PENALTY * len(weak)))
    return CapabilityMatch(score=round(score, 4), hits=hits, weak=weak, tools=usable)


def has_capabilities(agent: Agent, required: list[str]) -> bool:
    """Whether the agent declares every required capability."""
    return set(c.lower() for c in required) <= set(agent.capabilities)
