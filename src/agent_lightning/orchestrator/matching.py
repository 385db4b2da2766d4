"""Capability matching: how well an agent's declared expertise fits a task description.

Keywords match on word boundaries (so "ci" does not match "special"), each keyword counts once,
and the score is clamped to [0, 1]:

- a specialist scores ``0.1·base`` with no expertise hit, ``0.7·base`` with one, +0.1·base per further
  hit up to ``base`` at four;
- a generalist scores ``base`` on any task;
- every weak keyword that appears costs 0.15.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from agent_lightning.agents.schemas import Agent

WEAK_PENALTY = 0.15


@lru_cache(maxsize=4096)
def _pattern(keyword: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(keyword.lower()) + r"(?![a-z0-9])")


def matched(keywords: list[str], text: str) -> list[str]:
    """The keywords that occur in `text` as whole words (or phrases)."""
    lowered = text.lower()
    return [k for k in keywords if _pattern(k).search(lowered)]


@dataclass(frozen=True)
class CapabilityMatch:
    score: float
    hits: list[str]
    weak: list[str]

    def reason(self, agent_name: str) -> str:
        parts = [f"{agent_name}:"]
        if self.hits:
            parts.append(f"matched {len(self.hits)} expertise keyword(s) ({', '.join(self.hits[:5])})")
        else:
            parts.append("no expertise keyword matched")
        if self.weak:
            parts.append(f"penalised for {', '.join(self.weak)}")
        return " ".join(parts)


def capability_score(agent: Agent, text: str) -> CapabilityMatch:
    """Score how well `agent` fits the task `text`."""
    hits = matched(agent.expertise, text)
    weak = matched(agent.weak_keywords, text)
    if agent.generalist:
        score = agent.base_confidence
    elif not hits:
        score = 0.1 * agent.base_confidence
    else:
        score = agent.base_confidence * min(1.0, 0.7 + 0.1 * (len(hits) - 1))
    score = max(0.0, min(1.0, score - WEAK_PENALTY * len(weak)))
    return CapabilityMatch(score=round(score, 4), hits=hits, weak=weak)


def has_capabilities(agent: Agent, required: list[str]) -> bool:
    """Whether the agent declares every required capability."""
    return set(c.lower() for c in required) <= set(agent.capabilities)
