"""Rewards: what an attempt's outcome or a person's score is worth, stored against the routing decision, and
handed to the tenant's policy as a lesson (orchestrator/tenant_policies.py)."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.errors import Conflict
from agent_lightning.core.events import EventBus
from agent_lightning.core.logging import get_logger
from agent_lightning.orchestrator.events import publish
from agent_lightning.orchestrator.learning import Lesson
from agent_lightning.orchestrator.reads import latest_decision, task_row
from agent_lightning.orchestrator.schemas import FeedbackRequest, FeedbackResponse, PolicyRef, TaskStatus
from agent_lightning.orchestrator.tables import RewardRow, TaskRow
from agent_lightning.orchestrator.tenant_policies import TenantPolicies
from agent_lightning.validation.schemas import MAX_TEXT, ValidateRequest, Validator

log = get_logger(__name__)


def outcome_reward(*, success: bool, latency_s: float, latency_target_s: float) -> float:
    """Reward of an attempt's outcome: 0 on failure; on success 1, less up to 0.3 for slowness."""
    if not success:
        return 0.0
    return round(1.0 - 0.3 * min(latency_s / latency_target_s, 1.0), 4)


def outcome_cost(
    *, latency_s: float, latency_target_s: float, tokens: int = 0, token_budget: int = 4096
) -> float:
    """Cost of an attempt in [0, 1]: half its share of the latency target, half its share of a token
    budget."""
    return round(0.5 * min(latency_s / latency_target_s, 1.0) + 0.5 * min(tokens / token_budget, 1.0), 4)


def feedback_reward(score: float) -> float:
    """A person's 0–10 score as a reward in [0, 1]."""
    return round(score / 10.0, 4)


class Rewards:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        bus: EventBus,
        policies: TenantPolicies,
        validator: Validator | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.policies = policies
        self.validator = validator

    async def feedback(self, task_id: str, body: FeedbackRequest) -> FeedbackResponse:
        """A person's score for a finished task: stored, and the policy learns from it."""
        async with self.db.session() as session:
            row = await task_row(session, task_id)
            if row.status not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
                raise Conflict(
                    f"Task '{task_id}' is {row.status}; feedback needs a finished task.",
                    code="task_not_finished",
                )
            reward = feedback_reward(body.score)
            lesson = await self._add(
                session, row, source="feedback", reward=reward, score=body.score, comment=body.comment
            )
            agent_id = row.agent_id
        await publish(
            self.bus, "feedback.received", task_id, agent_id=agent_id, score=body.score, reward=reward
        )
        policy = await self.policies.learn(lesson)
        return FeedbackResponse(
            task_id=task_id,
            agent_id=agent_id,
            reward=reward,
            policy=PolicyRef(name=policy.name, version=policy.version),
        )

    async def add_outcome(
        self,
        session: AsyncSession,
        row: TaskRow,
        *,
        success: bool,
        latency_s: float,
        factor: float = 1.0,
        cost: float = 0.0,
    ) -> tuple[Lesson | None, float]:
        """Store the reward (and cost) of an attempt's outcome in the caller's transaction (the one that
        finishes the task, so a finished task always has its reward, and the policy learns it exactly once).
        Call `TenantPolicies.learn` with the lesson after the commit. `factor` scales the reward (the share of
        the validator's result checks the answer passed)."""
        reward = outcome_reward(
            success=success, latency_s=latency_s, latency_target_s=self.settings.latency_target_s
        )
        reward = round(reward * factor, 4)
        return await self._add(session, row, source="outcome", reward=reward, cost=cost), reward

    async def _add(
        self,
        session: AsyncSession,
        row: TaskRow,
        *,
        source: str,
        reward: float,
        cost: float = 0.0,
        score: float | None = None,
        comment: str = "",
    ) -> Lesson | None:
        """Store a reward for the task's latest decision; when the tenant's policy learns from it, it is a
        lesson and takes its place in the policy's log, last in the transaction (orchestrator/learning.py).
        Late rewards count the same as prompt ones: the decision row carries the features it was made on."""
        decision = await latest_decision(session, row.id)
        policy = (await self.policies.choice(row.tenant_id, session))[0]
        learns = decision is not None and decision.policy in (policy, "explicit", "review")
        values = dict(
            tenant_id=row.tenant_id,
            task_id=row.id,
            decision_id=decision.id if decision else None,
            agent_id=row.agent_id,
            source=source,
            score=score,
            reward=reward,
            comment=comment,
            cost=cost,
        )
        if learns:  # rewards of another policy's decisions are kept for offline evaluation only
            values.update(
                policy=policy, seq=await self.policies.learned.log.take_place(session, row.tenant_id, policy)
            )
        await session.execute(insert(RewardRow), [values])
        if not learns:
            return None
        return Lesson.of(
            policy=policy,
            seq=values["seq"],
            task_id=row.id,
            correlation_id=row.correlation_id or "",
            agent_id=row.agent_id,
            reward=reward,
            cost=cost,
            state=decision.state,
            features=decision.features,
        )

    async def result_factor(self, row: TaskRow, answer: str) -> float:
        """The validator's result checks on an answer (stored as the task's validation report), as the factor
        on its outcome reward: the share of result checks passed; 1 when the checks are off or cannot run."""
        if self.validator is None or not self.settings.validation_result_checks:
            return 1.0
        try:
            report = await self.validator.validate(
                ValidateRequest(task=row.description, task_id=row.id, result=answer[:MAX_TEXT])
            )
        except Exception as exc:  # the task is done: a validator outage does not undo it
            log.warning("result_validation_failed", task_id=row.id, error=type(exc).__name__)
            return 1.0
        results = [c for c in report.checks if c.name.startswith("result_")]
        return sum(c.passed for c in results) / len(results) if results else 1.0
