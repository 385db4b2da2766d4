"""Storage of agent definitions: the agent and its immutable versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from agent_lightning.agents.schemas import AgentStatus
from agent_lightning.core.db import Base, TenantMixin, TimestampMixin, UTCDateTime, utcnow


class AgentRow(TenantMixin, TimestampMixin, Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_agents_tenant_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=AgentStatus.ACTIVE, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    versions: Mapped[list[AgentVersionRow]] = relationship(
        back_populates="agent", order_by="AgentVersionRow.version", cascade="all, delete-orphan"
    )


class AgentVersionRow(TenantMixin, TimestampMixin, Base):
    """What an agent is at one version; tasks record the version they ran with."""

    __tablename__ = "agent_versions"
    __table_args__ = (UniqueConstraint("agent_id", "version", name="uq_agent_versions_agent_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    system_prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(120))
    temperature: Mapped[float] = mapped_column(Float)
    max_tokens: Mapped[int] = mapped_column(Integer)
    base_confidence: Mapped[float] = mapped_column(Float)
    generalist: Mapped[bool] = mapped_column(Boolean, default=False)
    capabilities: Mapped[list] = mapped_column(default=list)
    expertise: Mapped[list] = mapped_column(default=list)
    weak_keywords: Mapped[list] = mapped_column(default=list)
    tools: Mapped[list] = mapped_column(default=list)
    require_approval: Mapped[list] = mapped_column(default=list)
    mcp_servers: Mapped[list] = mapped_column(default=list)
    max_steps: Mapped[int] = mapped_column(Integer, default=6)
    tool_choice: Mapped[str] = mapped_column(String(16), default="auto")

    agent: Mapped[AgentRow] = relationship(back_populates="versions")


class ToolPolicyRow(Base):
    """A tenant's tool policy (no row: every tool the operator did not turn off)."""

    __tablename__ = "tool_policies"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    allow: Mapped[list | None] = mapped_column(JSON, nullable=True)
    deny: Mapped[list] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
