"""Storage of the execution service: one row per execution it ran or queued, and the steps of each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from agent_lightning.core.db import Base, TenantMixin, UTCDateTime, utcnow
from agent_lightning.core.leases import LeaseMixin


class ExecutionRow(TenantMixin, LeaseMixin, Base):
    __tablename__ = "executions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    request: Mapped[dict] = mapped_column(default=dict)
    run_async: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # from the queue
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str | None] = mapped_column(String(120), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    knowledge_used: Mapped[list | None] = mapped_column(nullable=True)
    memory_used: Mapped[dict | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ExecutionStepRow(TenantMixin, Base):
    """One step of an agent run: a model call, or a tool call with its arguments and result.

    Numbered per task (across its executions), so that `POST /tasks/{id}/steps/{n}/approve` names one.
    A tool step's `output` is exactly what the model was given back; a model step's is what it said, with
    the calls it asked for in `tool_calls`. Together they rebuild the conversation when a paused run resumes.
    """

    __tablename__ = "execution_steps"
    __table_args__ = (
        UniqueConstraint("execution_id", "number", name="uq_execution_steps_execution_number"),
        Index("ix_execution_steps_tenant_task", "tenant_id", "task_id", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(64), index=True)
    task_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    call_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    arguments: Mapped[dict | None] = mapped_column(nullable=True)
    tool_calls: Mapped[list | None] = mapped_column(nullable=True)
    output: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
