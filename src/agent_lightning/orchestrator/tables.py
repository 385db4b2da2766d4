"""Storage of the orchestrator: tasks, their attempts, routing decisions, rewards and learned policy state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agent_lightning.core.db import Base, TenantMixin, TimestampMixin, UTCDateTime, utcnow
from agent_lightning.core.leases import LeaseMixin


class TaskRow(TenantMixin, TimestampMixin, LeaseMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_tasks_tenant_idempotency_key"),
        Index("ix_tasks_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_task_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=5, index=True)
    meta: Mapped[dict] = mapped_column("metadata", default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    agent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    required_capabilities: Mapped[list] = mapped_column(default=list)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    warnings: Mapped[list] = mapped_column(default=list)
    validation_passed: Mapped[bool] = mapped_column(Boolean, default=True)
    force_execute: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assignment: Mapped[dict] = mapped_column(default=dict)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts_count: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    timeout_s: Mapped[float] = mapped_column(Float, default=120.0)
    correlation_id: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AttemptRow(TenantMixin, Base):
    """One execution try of a task."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("task_id", "number", name="uq_attempts_task_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[str] = mapped_column(String(64))
    agent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    knowledge_used: Mapped[list | None] = mapped_column(nullable=True)
    memory_used: Mapped[dict | None] = mapped_column(nullable=True)


class DecisionRow(TenantMixin, Base):
    """A routing decision, logged so that another policy can be evaluated offline on it."""

    __tablename__ = "routing_decisions"
    __table_args__ = (Index("ix_routing_decisions_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    policy: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(120))
    features: Mapped[dict] = mapped_column(default=dict)
    candidates: Mapped[list] = mapped_column(default=list)
    chosen_agent: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RewardRow(TenantMixin, Base):
    """A reward for a decision: from the outcome of an attempt or from a person's feedback.

    A reward that a routing policy learns from is a *lesson*: `policy` names the policy and `seq` its place
    in that tenant × policy's log (orchestrator/learning.py); both are empty for a reward kept only for
    offline evaluation.
    """

    __tablename__ = "rewards"
    __table_args__ = (UniqueConstraint("tenant_id", "policy", "seq", name="uq_rewards_tenant_policy_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("routing_decisions.id"), nullable=True, index=True
    )
    agent_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    reward: Mapped[float] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    policy: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost: Mapped[float] = mapped_column(Float, default=0.0)


class PolicyHeadRow(Base):
    """The last place taken in a tenant × policy's log of lessons (taken in the lesson's own transaction)."""

    __tablename__ = "policy_heads"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


class PolicyPartRow(Base):
    """One part of a tenant × policy's learned state (an arm, a task state, or the global numbers under the
    name ""), in a compact binary encoding, as of lesson `seq` of its log. All parts of a snapshot are as
    of the global part's `seq`: a part that no lesson changed since an older snapshot is the same at both."""

    __tablename__ = "policy_parts"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(String(64), primary_key=True)
    part: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PolicyConfigRow(TenantMixin, Base):
    """Which routing policy a tenant uses, with its parameters (absent: the deployment's default)."""

    __tablename__ = "policy_config"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_policy_config_tenant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
