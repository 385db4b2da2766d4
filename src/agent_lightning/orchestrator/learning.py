"""The routing policies' learned state: shared by every replica, without a global lock, without lost updates.

A reward that a policy learns from is a *lesson*: a row of `rewards` that names the policy and its place
`seq` in the tenant × policy's log. The place is taken in the reward's own transaction, by one upsert of
the log's head row (`policy_heads`), which stays locked until that transaction ends: places are gapless
and committed in order, so a reader that sees lesson n has seen every lesson before it (one it does not
see was deleted since). Every process folds the log into its in-memory policy in that order, so each
stored reward is applied exactly once, and every replica that has folded through lesson n holds the same
state. Choosing reads that state between two folds; it never waits for a read or a save.

The fold is saved now and then as a snapshot in parts (`policy_parts`, one row per part: an arm, a task
state, or the policy's global numbers), in a compact binary encoding, and only the parts that lessons
changed since the last snapshot are written. A process restores a policy from the snapshot and folds the
lessons after it. Any model whose state splits into parts fits: per-agent statistics as today, or a model
shared by every agent as one more part.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import all_tenants, tenant_is
from agent_lightning.orchestrator.policy import GLOBAL_PART, RoutingPolicy
from agent_lightning.orchestrator.tables import DecisionRow, PolicyHeadRow, PolicyPartRow, RewardRow

log = get_logger(__name__)

FOLD_BATCH = 500
"""Lessons read from the database at a time."""
FOLD_SOON_S = 0.02
"""How long a lesson that waits behind another process's may wait for the read that folds both (many such
lessons share one read)."""
PARTS_CODEC = b"P"
LEGACY_JSON = b"J"
"""A whole state in the JSON encoding of earlier releases (migration 0011), read once and then replaced."""


def encode_part(part: dict[str, Any]) -> bytes:
    """A part as bytes: a JSON header (the plain values; each array's name, dtype and shape), then the
    arrays' raw bytes. Floats round-trip exactly."""
    arrays = {k: np.ascontiguousarray(v) for k, v in part.items() if isinstance(v, np.ndarray)}
    header = orjson.dumps(
        {
            "values": {k: v for k, v in part.items() if k not in arrays},
            "arrays": [[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return b"".join(
        [PARTS_CODEC, struct.pack("<I", len(header)), header, *(a.tobytes() for a in arrays.values())]
    )


def decode_part(data: bytes) -> dict[str, Any]:
    """The part that `encode_part` encoded (arrays writable)."""
    (size,) = struct.unpack_from("<I", data, 1)
    header = orjson.loads(data[5 : 5 + size])
    part = dict(header["values"])
    offset = 5 + size
    for name, dtype, shape in header["arrays"]:
        count = int(np.prod(shape))
        part[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
        offset += count * np.dtype(dtype).itemsize
    return part


@dataclass(frozen=True)
class Lesson:
    """A reward as the policy learns it: its place in the log, and the logged decision it rewards."""

    policy: str
    seq: int
    state: str
    agent_id: str
    reward: float
    features: dict[str, Any]
    task_id: str = ""
    correlation_id: str = ""

    @classmethod
    def of(
        cls,
        *,
        policy: str,
        seq: int,
        task_id: str,
        agent_id: str,
        reward: float,
        cost: float,
        state: str,
        features: dict[str, Any],
        correlation_id: str = "",
    ) -> Lesson:
        return cls(
            policy,
            seq,
            state,
            agent_id,
            reward,
            {**features, "cost": cost} if cost else features,
            task_id,
            correlation_id,
        )


class PolicyLog:
    """The lessons and snapshots of every tenant × policy, in the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def take_place(self, session: AsyncSession, tenant: str, policy: str) -> int:
        """The next place in the log, taken in the caller's transaction. The head row stays locked until
        that transaction ends, so run this last, just before the commit."""
        insert = self.db.insert(PolicyHeadRow).values(tenant_id=tenant, policy=policy, seq=1)
        upsert = insert.on_conflict_do_update(
            index_elements=["tenant_id", "policy"], set_={"seq": PolicyHeadRow.seq + 1}
        )
        return (await session.execute(upsert.returning(PolicyHeadRow.seq))).scalar_one()

    async def heads(self) -> dict[tuple[str, str], int]:
        """The last place taken (and committed) in every log, by tenant and policy."""
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    all_tenants(
                        select(PolicyHeadRow.tenant_id, PolicyHeadRow.policy, PolicyHeadRow.seq),
                        "a replica follows every tenant's logs with one read of their heads",
                    )
                )
            ).all()
        return {(tenant, policy): seq for tenant, policy, seq in rows}

    async def lessons(self, tenant: str, policy: str, *, after: int, limit: int = FOLD_BATCH) -> list[Lesson]:
        """The stored lessons after place `after`, in order."""
        query = (
            select(
                RewardRow.seq,
                RewardRow.task_id,
                RewardRow.agent_id,
                RewardRow.reward,
                RewardRow.cost,
                DecisionRow.state,
                DecisionRow.features,
            )
            .join(DecisionRow, DecisionRow.id == RewardRow.decision_id)
            .where(
                tenant_is(RewardRow, tenant),
                tenant_is(DecisionRow, tenant),
                RewardRow.policy == policy,
                RewardRow.seq > after,
            )
            .order_by(RewardRow.seq)
            .limit(limit)
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [
            Lesson.of(
                policy=policy,
                seq=seq,
                task_id=task_id,
                agent_id=agent,
                reward=reward,
                cost=cost,
                state=state,
                features=features,
            )
            for seq, task_id, agent, reward, cost, state, features in rows
        ]

    async def snapshot(self, tenant: str, policy: str) -> tuple[int, dict[str, bytes]] | None:
        """The stored snapshot: its place and its parts by name (one statement: one consistent view)."""
        query = select(PolicyPartRow.part, PolicyPartRow.seq, PolicyPartRow.data).where(
            tenant_is(PolicyPartRow, tenant), PolicyPartRow.policy == policy
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        parts = {part: bytes(data) for part, _, data in rows}
        places = {part: seq for part, seq, _ in rows}
        return (places[GLOBAL_PART], parts) if GLOBAL_PART in parts else None

    async def save(self, tenant: str, policy: str, seq: int, parts: dict[str, bytes]) -> bool:
        """Store `parts` as of place `seq`, unless the stored snapshot is as new: False then. The global
        part is claimed first, in one statement (insert, or update only when older), so its row serialises
        writers, the first snapshot's included: a second writer waits for the first to commit, then wins
        only with a newer place."""
        insert = self.db.insert(PolicyPartRow)
        rows = [
            {
                "tenant_id": tenant,
                "policy": policy,
                "part": name,
                "seq": seq,
                "data": data,
                "updated_at": utcnow(),
            }
            for name, data in parts.items()
        ]
        upsert = {
            "seq": insert.excluded.seq,
            "data": insert.excluded.data,
            "updated_at": insert.excluded.updated_at,
        }
        key = ["tenant_id", "policy", "part"]
        async with self.db.session() as session:
            claimed = await session.execute(
                insert.values([row for row in rows if row["part"] == GLOBAL_PART]).on_conflict_do_update(
                    index_elements=key, set_=upsert, where=PolicyPartRow.seq < insert.excluded.seq
                )
            )
            if claimed.rowcount != 1:
                return False
            others = [row for row in rows if row["part"] != GLOBAL_PART]
            if others:
                await session.execute(insert.on_conflict_do_update(index_elements=key, set_=upsert), others)
        return True


@dataclass
class LearnedPolicy:
    """A tenant's policy in this process, following its log: every lesson stored anywhere is folded in once,
    in order. `seq` is the last lesson folded in; `dirty` the parts changed since the snapshot at `base`."""

    log: PolicyLog
    tenant: str
    policy: RoutingPolicy
    snapshot_every: int = 256
    seq: int = 0
    base: int = 0
    dirty: set[str] = field(default_factory=set)
    _offered: dict[int, Lesson] = field(default_factory=dict)
    _snapshot_at: set[int] = field(default_factory=set)
    _folding: asyncio.Future | None = None
    _saving: set[asyncio.Task] = field(default_factory=set)
    _waiters: dict[int, Callable[[Lesson, int], None]] = field(default_factory=dict)
    _soon: bool = False

    @property
    def name(self) -> str:
        return self.policy.name

    async def restore(self) -> None:
        """Load the stored snapshot and fold the lessons after it."""
        stored = await self.log.snapshot(self.tenant, self.name)
        if stored is not None:
            seq, parts = stored
            top = parts[GLOBAL_PART]
            if top[:1] == LEGACY_JSON:
                self.policy.load(json.loads(top[1:]))
                self.dirty = {
                    GLOBAL_PART,
                    *self.policy.part_names(),
                }  # the next snapshot replaces it with parts
            else:
                self.policy.load_parts({name: decode_part(data) for name, data in parts.items()})
            self.seq = self.base = seq
            log.info(
                "policy_restored",
                policy=self.name,
                tenant_id=self.tenant,
                version=self.policy.version,
                seq=seq,
            )
        await self.sync()

    def offer(self, lesson: Lesson, on_folded: Callable[[Lesson, int], None] | None = None) -> None:
        """A lesson this process stored (committed): folded without reading it back when its turn comes;
        `on_folded(lesson, version)` then."""
        if lesson.seq > self.seq:
            self._offered[lesson.seq] = lesson
            if on_folded is not None:
                self._waiters[lesson.seq] = on_folded
            if lesson.seq % self.snapshot_every == 0:
                self._snapshot_at.add(
                    lesson.seq
                )  # one process stores each such lesson: it saves the snapshot

    def fold_soon(self) -> None:
        """Fold the offered lessons whose turn it is now (no I/O); if some wait behind lessons of another
        process, read those in `FOLD_SOON_S` (one read for every lesson waiting by then)."""
        self._apply_offered()
        self._settle()
        if self._offered and not self._soon:
            self._soon = True
            asyncio.get_running_loop().call_later(FOLD_SOON_S, self._fold_later)

    def _fold_later(self) -> None:
        self._soon = False
        task = asyncio.ensure_future(self.sync())
        self._saving.add(task)  # kept alive until done, like the saves
        task.add_done_callback(self._saving.discard)
        task.add_done_callback(_log_failure(self))

    async def sync(self, until: int | None = None) -> None:
        """Fold in the lessons stored so far, or at least those through place `until`."""
        started = 0
        while until is None or self.seq < until:
            running = self._folding
            if running is not None and not running.done():
                await asyncio.shield(
                    running
                )  # it may have read before what we want was stored: go round again
                continue
            if started == 2:  # through `until` in two reads: a lesson still missing was deleted meanwhile
                return
            started += 1
            self._folding = asyncio.ensure_future(self._fold(until))
            await asyncio.shield(self._folding)
            if until is None:
                return

    async def _fold(self, until: int | None) -> None:
        self._apply_offered()
        if until is None or self.seq < until:
            while True:
                lessons = await self.log.lessons(self.tenant, self.name, after=self.seq)
                for lesson in lessons:
                    if lesson.seq > self.seq:
                        self._apply(self._offered.pop(lesson.seq, lesson))
                self._apply_offered()
                if len(lessons) < FOLD_BATCH:
                    break
                await asyncio.sleep(0)  # a long catch-up: let choices in between
        self._settle()

    def _settle(self) -> None:
        """Forget what is folded in; save a snapshot when one is due."""
        for seq in [s for s in self._offered if s <= self.seq]:
            del self._offered[seq]
        for seq in [s for s in self._waiters if s <= self.seq]:
            del self._waiters[seq]  # deleted before it was folded: nothing to say
        if any(s <= self.seq for s in self._snapshot_at):
            self._snapshot_at = {s for s in self._snapshot_at if s > self.seq}
            self._save_soon()

    def _apply_offered(self) -> None:
        while (lesson := self._offered.pop(self.seq + 1, None)) is not None:
            self._apply(lesson)

    def _apply(self, lesson: Lesson) -> None:
        self.policy.update(
            state=lesson.state, agent_id=lesson.agent_id, reward=lesson.reward, features=lesson.features
        )
        self.dirty.update(self.policy.touched(state=lesson.state, agent_id=lesson.agent_id))
        self.seq = lesson.seq
        if (waiter := self._waiters.pop(lesson.seq, None)) is not None:
            waiter(lesson, self.policy.version)

    def _save_soon(self) -> None:
        """Save the changed parts as of now, in the background (nobody waits for it)."""
        if not self.dirty:
            return
        names, seq = self.dirty | {GLOBAL_PART}, self.seq
        parts = {name: encode_part(part) for name, part in self.policy.dump_parts(names).items()}
        self.dirty = set()
        task = asyncio.ensure_future(self._save(seq, names, parts))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save(self, seq: int, names: set[str], parts: dict[str, bytes]) -> None:
        try:
            saved = await self.log.save(self.tenant, self.name, seq, parts)
        except Exception as exc:
            log.warning("policy_snapshot_failed", policy=self.name, tenant_id=self.tenant, error=repr(exc))
            saved = False
        if saved:
            self.base = max(self.base, seq)
        else:  # a newer snapshot is stored, or none could be: these parts are written with the next one
            self.dirty |= names

    async def flush(self) -> None:
        """Save a snapshot of what was folded in since the last one, and wait for every save."""
        self._save_soon()
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)


def _log_failure(learned: LearnedPolicy) -> Callable[[asyncio.Future], None]:
    def done(task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "policy_sync_failed",
                policy=learned.name,
                tenant_id=learned.tenant,
                error=repr(task.exception()),
            )

    return done


class LearnedPolicies:
    """The learned policies this process routes with, by tenant × policy name, and what keeps them current:
    `follow` folds in, every `sync_s`, the lessons other processes stored."""

    def __init__(self, db: Database, *, snapshot_every: int = 256, sync_s: float = 0.5) -> None:
        self.log = PolicyLog(db)
        self.snapshot_every = snapshot_every
        self.sync_s = sync_s
        self._learned: dict[tuple[str, str], LearnedPolicy] = {}

    async def restore(self, tenant: str, policy: RoutingPolicy) -> LearnedPolicy:
        """`policy` (fresh) with the tenant's learned state; it is followed from now on."""
        learned = LearnedPolicy(self.log, tenant, policy, snapshot_every=self.snapshot_every)
        await learned.restore()
        self._learned[(tenant, policy.name)] = learned
        return learned

    def get(self, tenant: str, name: str) -> LearnedPolicy | None:
        return self._learned.get((tenant, name))

    async def follow(self) -> None:
        """Fold in what other processes stored, for ever: every `sync_s` one read of the logs' heads, then a
        read of lessons for each policy whose log went past what it folded (a failure is logged, tried
        again)."""
        while True:
            await asyncio.sleep(self.sync_s)
            try:
                heads = await self.log.heads()
            except Exception as exc:
                log.warning("policy_sync_failed", error=repr(exc))
                continue
            for key, learned in list(self._learned.items()):
                if heads.get(key, 0) <= learned.seq:
                    continue
                try:
                    await learned.sync()
                except Exception as exc:
                    log.warning(
                        "policy_sync_failed", policy=learned.name, tenant_id=learned.tenant, error=repr(exc)
                    )

    async def flush(self) -> None:
        """Snapshot every policy's changes since its last snapshot (at shutdown: a restart folds less)."""
        for learned in list(self._learned.values()):
            try:
                await learned.flush()
            except Exception as exc:
                log.warning(
                    "policy_snapshot_failed", policy=learned.name, tenant_id=learned.tenant, error=repr(exc)
                )
