"""Aggregates over the model service's usage records for monitoring (`UsageStatistics` in schemas.py): per
model totals for the dashboard and the latest calls for the error-rate alert. Read-only."""

from __future__ import annotations

from sqlalchemy import case, func

from agent_lightning.core.db import Database
from agent_lightning.core.tenancy import tenant_select
from agent_lightning.models.schemas import ModelUsageTotals
from agent_lightning.models.tables import UsageRow


class UsageStatisticsReader:
    """`UsageStatistics` over the database the model service writes its usage rows to."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def totals_by_model(self, tenant: str) -> list[ModelUsageTotals]:
        """Per model alias: requests, failed ones, tokens, cost and mean latency."""
        statement = (
            tenant_select(
                UsageRow.model,
                func.count(UsageRow.id),
                func.sum(case((UsageRow.status != "ok", 1), else_=0)),
                func.sum(UsageRow.prompt_tokens),
                func.sum(UsageRow.completion_tokens),
                func.sum(UsageRow.cost_usd),
                func.avg(UsageRow.latency_ms),
                tenant=tenant,
            )
            .group_by(UsageRow.model)
            .order_by(UsageRow.model)
        )
        async with self.db.session() as session:
            rows = (await session.execute(statement)).all()
        return [
            ModelUsageTotals(
                model=model,
                requests=n,
                errors=int(errors or 0),
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion or 0),
                cost_usd=float(cost or 0.0),
                mean_latency_ms=None if latency is None else float(latency),
            )
            for model, n, errors, prompt, completion, cost, latency in rows
        ]

    async def recent_calls(self, tenant: str, limit: int) -> list[tuple[str, bool]]:
        """The last `limit` calls as (model, failed), newest first."""
        statement = (
            tenant_select(UsageRow.model, UsageRow.status, tenant=tenant)
            .order_by(UsageRow.created_at.desc())
            .limit(limit)
        )
        async with self.db.session() as session:
            return [(model, status != "ok") for model, status in await session.execute(statement)]
