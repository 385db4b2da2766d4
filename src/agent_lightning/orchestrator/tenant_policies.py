"""Each tenant's routing policy: which one it routes with (the `policy_config` table, else the deployment's),
its learned state restored and kept current (orchestrator/learning.py), the lessons folded into it, and the
task embeddings the policies that use them are given."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.core.errors import Invalid
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import current_correlation_id
from agent_lightning.core.tenancy import DEFAULT_TENANT, current_tenant, tenant_is
from agent_lightning.orchestrator.embedding import TaskEmbedder
from agent_lightning.orchestrator.learning import LearnedPolicies, LearnedPolicy, Lesson
from agent_lightning.orchestrator.policy import POLICY_NAMES, RoutingPolicy, make_policy, uses_embeddings
from agent_lightning.orchestrator.tables import PolicyConfigRow

EMBED_BATCH = 64
POLICY_CONFIG_TTL_S = 1.0
"""How long a tenant's policy choice is trusted before it is read again (a switch elsewhere shows within
it)."""

PolicyChoice = tuple[str, dict[str, Any]]
"""A policy's name and its parameters."""


def build_policy(name: str, params: dict[str, Any]) -> RoutingPolicy:
    """A fresh policy, or `Invalid` when the name or a parameter is wrong."""
    try:
        return make_policy(name, **params)
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"Cannot build policy '{name}': {exc}",
            code="invalid_policy",
            details={"available": list(POLICY_NAMES)},
        ) from exc


class TenantPolicies:
    """The tenants' policies. `policy` is the deployment's, built with `policy_params`; a tenant may switch to
    another (orchestrator/admin.py). `embedder`, when given, embeds task descriptions for the policies that
    use embeddings."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        bus: EventBus,
        policy: RoutingPolicy,
        policy_params: dict[str, Any] | None = None,
        embedder: TaskEmbedder | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.embedder = embedder
        self.default: PolicyChoice = (policy.name, dict(policy_params or {}))
        self.learned = LearnedPolicies(
            db, snapshot_every=settings.policy_snapshot_every, sync_s=settings.policy_sync_s
        )
        self._deployment_policy: RoutingPolicy | None = policy  # the default tenant's, until restored
        self._configs: dict[str, tuple[PolicyChoice, float]] = {}  # tenant -> (choice, read at)
        self._policies: dict[str, tuple[PolicyChoice, LearnedPolicy]] = {}
        self._switch_lock = asyncio.Lock()
        self._announcing: set[asyncio.Future] = set()

    async def active(self, *, synced: bool = False) -> RoutingPolicy:
        """The current tenant's policy: its `policy_config` row, else the deployment's default. With `synced`,
        after folding in every lesson stored so far (choosing never asks for that)."""
        learned = await self._learned()
        if synced:
            await learned.sync()
        return learned.policy

    async def load(self) -> None:
        """Restore the current tenant's learned state (at start: the first task needs no wait)."""
        await self._learned()

    def followed(self, tenant: str) -> PolicyChoice:
        """The choice the tenant's followed policy was built from (after `active`)."""
        return self._policies[tenant][0]

    def forget_choice(self, tenant: str) -> None:
        """Read the tenant's choice again at the next use (it was just switched here)."""
        self._configs.pop(tenant, None)

    async def _learned(self) -> LearnedPolicy:
        tenant = current_tenant()
        config = await self.choice(tenant)
        cached = self._policies.get(tenant)
        if cached and cached[0] == config:
            return cached[1]
        async with self._switch_lock:
            cached = self._policies.get(tenant)
            if cached and cached[0] == config:
                return cached[1]
            policy = None
            if tenant == DEFAULT_TENANT and config == self.default:
                policy, self._deployment_policy = self._deployment_policy, None
            learned = await self.learned.restore(tenant, policy or build_policy(*config))
            self._policies[tenant] = (config, learned)
        return learned

    async def choice(self, tenant: str, session: AsyncSession | None = None) -> PolicyChoice:
        """The tenant's choice of policy and parameters, read at most every `POLICY_CONFIG_TTL_S` (in the
        caller's `session` when it has one: a second connection per caller can drain the pool)."""
        cached = self._configs.get(tenant)
        if cached and time.monotonic() - cached[1] < POLICY_CONFIG_TTL_S:
            return cached[0]
        query = select(PolicyConfigRow.name, PolicyConfigRow.params).where(tenant_is(PolicyConfigRow, tenant))
        read_at = time.monotonic()
        if session is not None:
            row = (await session.execute(query)).first()
        else:
            async with self.db.session() as own:
                row = (await own.execute(query)).first()
        config = (row.name, dict(row.params)) if row else self.default
        if tenant not in self._configs or self._configs[tenant][1] <= read_at:
            self._configs[tenant] = (config, read_at)
        return config

    async def restored(self, policy: RoutingPolicy) -> RoutingPolicy:
        """A fresh policy with the tenant's learned state of it (for offline evaluation; not followed)."""
        await LearnedPolicy(self.learned.log, current_tenant(), policy).restore()
        return policy

    async def learn(self, lesson: Lesson | None, *, wait: bool = True) -> RoutingPolicy:
        """Fold a stored lesson into the tenant's policy (with every lesson before it, from any replica) and
        say so on the bus (`policy.updated`); the tenant's policy. Without `wait`, a lesson that comes after
        another replica's is folded within `FOLD_SOON_S`, together with the others waiting then, and the
        event follows."""
        learned = await self._learned()
        if lesson is None or lesson.policy != learned.name:  # switched meanwhile: folded when it is back
            return learned.policy
        tenant = current_tenant()
        if not wait:
            learned.offer(
                lesson, on_folded=lambda folded, version: self._announce_soon(folded, version, tenant)
            )
            learned.fold_soon()
            return learned.policy
        learned.offer(lesson)
        await learned.sync(until=lesson.seq)
        await self._announce(lesson, learned.policy.version, tenant, current_correlation_id())
        return learned.policy

    async def _announce(self, lesson: Lesson, version: int, tenant: str, correlation: str) -> None:
        await self.bus.publish(
            Event(
                type="policy.updated",
                source="orchestrator",
                tenant_id=tenant,
                correlation_id=correlation,
                data={
                    "task_id": lesson.task_id,
                    "agent_id": lesson.agent_id,
                    "reward": lesson.reward,
                    "version": version,
                },
            )
        )

    def _announce_soon(self, lesson: Lesson, version: int, tenant: str) -> None:
        """`_announce` from the fold (plain code): in a task of its own, kept until it is done."""
        job = asyncio.ensure_future(self._announce(lesson, version, tenant, lesson.correlation_id))
        self._announcing.add(job)
        job.add_done_callback(self._announcing.discard)

    def embeds(self, policy: RoutingPolicy) -> bool:
        """Whether `policy` is given embeddings of the task descriptions."""
        return self.embedder is not None and uses_embeddings(policy)

    async def embedding(self, policy: RoutingPolicy, text: str) -> tuple[float, ...] | None:
        """The description's embedding when the policy uses one and the model service gives one."""
        return (await self.embeddings(policy, [text]))[0]

    async def embeddings(self, policy: RoutingPolicy, texts: list[str]) -> list[tuple[float, ...] | None]:
        """One embedding (or None) per text, in batches, when the policy uses them."""
        embedder = self.embedder
        if embedder is None or not uses_embeddings(policy):
            return [None] * len(texts)
        vectors: list[tuple[float, ...] | None] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            vectors.extend(await embedder.embed(batch) or [None] * len(batch))
        return vectors
