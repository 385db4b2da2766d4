"""Storage of the knowledge service: items, their chunks (text + vector, the source of truth for every
index), and which items each task used. Full-text and pgvector columns are added by the migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent_lightning.core.db import Base, TenantMixin, UTCDateTime, utcnow


class KnowledgeItemRow(TenantMixin, Base):
    __tablename__ = "knowledge_items"
    __table_args__ = (
        Index("ix_knowledge_items_tenant_created", "tenant_id", "created_at"),
        Index("ix_knowledge_items_tenant_source_hash", "tenant_id", "source_hash"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(40), index=True)
    source: Mapped[str] = mapped_column(String(500), default="api")
    scope: Mapped[str] = mapped_column(String(10), default="tenant", index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    meta: Mapped[dict] = mapped_column("metadata", default=dict)
    origin: Mapped[str] = mapped_column(String(20), default="api")
    task_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    source_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # knowledge/fingerprint.py
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
    relevance: Mapped[float] = mapped_column(Float, default=1.0)
    embedding_model: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KnowledgeChunkRow(TenantMixin, Base):
    """One chunk; `seq` is its key in the full-text table and the vector index."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("knowledge_items.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_model: Mapped[str] = mapped_column(String(120))


class KnowledgeUseRow(TenantMixin, Base):
    """An item injected into a task's prompt; its reward (when it comes) moves the item's relevance."""

    __tablename__ = "knowledge_uses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("knowledge_items.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KnowledgeSharingRow(Base):
    """A tenant's opt-in to shared knowledge (no row: not opted in)."""

    __tablename__ = "knowledge_sharing"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    use_shared: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
