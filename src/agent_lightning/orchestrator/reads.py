"""Reading tasks: one with its attempts, decisions and rewards, or pages of them, newest first."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.core.db import Database
from agent_lightning.core.errors import AppError, NotFound
from agent_lightning.core.tenancy import tenant_get, tenant_select
from agent_lightning.orchestrator.schemas import (
    Attempt,
    Decision,
    Reward,
    Task,
    TaskDetail,
    TaskFilters,
    TaskPage,
)
from agent_lightning.orchestrator.tables import AttemptRow, DecisionRow, RewardRow, TaskRow


def aware(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC (the database stores UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def task_out(row: TaskRow) -> Task:
    """The wire form of a task row."""
    return Task(
        task_id=row.id,
        parent_task_id=row.parent_task_id,
        description=row.description,
        status=row.status,
        priority=row.priority,
        assigned_agent=row.agent_id,
        agent_version=row.agent_version,
        confidence=row.confidence,
        reason=row.reason,
        warnings=row.warnings,
        validation_passed=row.validation_passed,
        metadata=row.meta,
        idempotency_key=row.idempotency_key,
        result=row.result,
        error=row.error,
        attempts_count=row.attempts_count,
        max_attempts=row.max_attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


async def task_row(session: AsyncSession, task_id: str) -> TaskRow:
    """The current tenant's task, or `NotFound`."""
    row = await tenant_get(session, TaskRow, task_id)
    if row is None:
        raise NotFound(f"Unknown task '{task_id}'.", code="task_not_found")
    return row


async def latest_decision(session: AsyncSession, task_id: str) -> DecisionRow | None:
    """The task's last routing decision (a review may have made a second)."""
    return await session.scalar(
        tenant_select(DecisionRow)
        .where(DecisionRow.task_id == task_id)
        .order_by(DecisionRow.id.desc())
        .limit(1)
    )


def _encode_cursor(row: TaskRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), task_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise AppError("The cursor is not valid.", code="invalid_cursor") from exc


class TaskReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_task(self, task_id: str) -> TaskDetail:
        """A task with its attempts, routing decisions and rewards."""
        async with self.db.session() as session:
            row = await task_row(session, task_id)
            attempts = await session.scalars(
                tenant_select(AttemptRow).where(AttemptRow.task_id == task_id).order_by(AttemptRow.number)
            )
            decisions = await session.scalars(
                tenant_select(DecisionRow).where(DecisionRow.task_id == task_id).order_by(DecisionRow.id)
            )
            rewards = await session.scalars(
                tenant_select(RewardRow).where(RewardRow.task_id == task_id).order_by(RewardRow.id)
            )
            return TaskDetail(
                **task_out(row).model_dump(),
                attempts=[Attempt.model_validate(a) for a in attempts],
                decisions=[Decision.model_validate(d) for d in decisions],
                rewards=[Reward.model_validate(r) for r in rewards],
            )

    async def list_tasks(
        self, filters: TaskFilters, *, limit: int = 50, cursor: str | None = None
    ) -> TaskPage:
        """Tasks newest first, filtered, one page at a time (pass `next_cursor` back for the next)."""
        query = tenant_select(TaskRow)
        if filters.status:
            query = query.where(TaskRow.status.in_(filters.status))
        if filters.agent_id:
            query = query.where(TaskRow.agent_id == filters.agent_id)
        if filters.parent_task_id:
            query = query.where(TaskRow.parent_task_id == filters.parent_task_id)
        if filters.priority_min is not None:
            query = query.where(TaskRow.priority >= filters.priority_min)
        if filters.priority_max is not None:
            query = query.where(TaskRow.priority <= filters.priority_max)
        if filters.created_after:
            query = query.where(TaskRow.created_at >= filters.created_after)
        if filters.created_before:
            query = query.where(TaskRow.created_at < filters.created_before)
        if filters.text:
            escaped = filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(TaskRow.description.ilike(f"%{escaped}%", escape="\\"))
        if cursor:
            created, task_id = _decode_cursor(cursor)
            query = query.where(
                or_(TaskRow.created_at < created, and_(TaskRow.created_at == created, TaskRow.id < task_id))
            )
        query = query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit + 1)
        async with self.db.session() as session:
            rows = list(await session.scalars(query))
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return TaskPage(items=[task_out(r) for r in rows[:limit]], next_cursor=next_cursor)
