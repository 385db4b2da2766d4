"""A read-only view of what the platform records, for monitoring: the columns of the shared tables that the
summary and the alert rules read (tasks, rewards, model usage, policy state).

Aggregates over every task have no place in the other services' interfaces, so monitoring reads the shared
database itself, through these lightweight table clauses rather than the owners' ORM classes; it never
writes to them.
"""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, column, table

from agent_lightning.core.db import UTCDateTime

tasks = table(
    "tasks",
    column("id", String),
    column("tenant_id", String),
    column("status", String),
    column("agent_id", String),
    column("created_at", UTCDateTime()),
    column("started_at", UTCDateTime()),
    column("finished_at", UTCDateTime()),
    column("lease_until", UTCDateTime()),
)

rewards = table(
    "rewards",
    column("id", Integer),
    column("tenant_id", String),
    column("agent_id", String),
    column("source", String),
    column("reward", Float),
)

model_usage = table(
    "model_usage",
    column("tenant_id", String),
    column("model", String),
    column("status", String),
    column("prompt_tokens", Integer),
    column("completion_tokens", Integer),
    column("cost_usd", Float),
    column("latency_ms", Float),
    column("created_at", UTCDateTime()),
)

policy_config = table("policy_config", column("tenant_id", String), column("name", String))

policy_state = table(
    "policy_state", column("tenant_id", String), column("name", String), column("version", Integer)
)
