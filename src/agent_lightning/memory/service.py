"""The memory service: conversations per user × agent, a context builder (recent turns in budget, a
running summary written by the model, older memories recalled by vector search), and memories that are
episodic, semantic (add / update / delete / ignore) or working (with a TTL)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import delete, func, select

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import Conflict, NotFound
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import (
    all_tenants,
    current_tenant,
    tenant_delete,
    tenant_get,
    tenant_is,
    tenant_select,
)
from agent_lightning.memory import facts
from agent_lightning.memory.schemas import (
    ContextRequest,
    EraseResult,
    Exchange,
    ExchangeResult,
    Memory,
    MemoryContext,
    MemoryCreate,
    MemoryOp,
    MemorySearch,
    Message,
    PruneRequest,
    PruneResult,
    Recalled,
    Session,
    SessionCreate,
    SessionDetail,
    UserExport,
)
from agent_lightning.memory.tables import MemoryMessageRow, MemoryRow, MemorySessionRow
from agent_lightning.models.schemas import (
    ChatMessage,
    ChatRequest,
    EmbeddingGateway,
    ModelGateway,
    embed_unit_vectors,
)

log = get_logger(__name__)

SAME_FACT = 0.9
SAME_SUBJECT = 0.4
KEEP_RECENT = 6
FORGOTTEN = "[forgotten at the user's request]"
PROFILE_CANDIDATES = 64  # facts offered to fill the budget after the nearest memories (≥ 8 tokens each)
SUMMARY_PROMPT = (
    "You keep a running summary of a conversation between a user and an assistant. Update the summary "
    "with the new turns. Keep names, numbers, decisions and facts about the user. At most five sentences."
)


def tokens(text: str) -> int:
    """A cheap token estimate (about 4 characters per token)."""
    return max(1, (len(text) + 3) // 4)


def _memory(row: MemoryRow) -> Memory:
    return Memory(
        id=row.id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        session_id=row.session_id,
        kind=row.kind,
        content=row.content,
        relevance=round(row.relevance, 4),
        access_count=row.access_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
    )


class MemoryService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        embeddings: EmbeddingGateway,
        models: ModelGateway | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.embeddings = embeddings
        self.models = models
        self.model = settings.memory_embedding_model

    # --- sessions -------------------------------------------------------------------------------------

    async def create_session(self, body: SessionCreate) -> Session:
        """Start a conversation (with the caller's id, if given)."""
        async with self.db.session() as session:
            taken = all_tenants(
                select(MemorySessionRow.id).where(MemorySessionRow.id == body.id),
                "session ids are unique across tenants",
            )
            if body.id and await session.scalar(taken) is not None:
                raise Conflict(f"Session '{body.id}' exists.", code="session_exists")
            row = MemorySessionRow(
                id=body.id or new_id(),
                tenant_id=current_tenant(),
                user_id=body.user_id,
                agent_id=body.agent_id,
                title=body.title,
                summary="",
                summarized_upto=0,
            )
            session.add(row)
        return await self.get_session(row.id)

    async def get_session(self, session_id: str, *, recent: int = 0) -> SessionDetail:
        """A session with its newest `recent` messages."""
        async with self.db.session() as session:
            row = await self._session_row(session, session_id)
            count = await session.scalar(
                select(func.count()).where(tenant_is(MemoryMessageRow), MemoryMessageRow.session_id == row.id)
            )
            messages = await self._messages(session, row.id, limit=recent) if recent else []
        return SessionDetail(
            id=row.id,
            user_id=row.user_id,
            agent_id=row.agent_id,
            title=row.title,
            summary=row.summary,
            messages=int(count),
            created_at=row.created_at,
            updated_at=row.updated_at,
            recent=messages,
        )

    async def list_sessions(self, user_id: str, agent_id: str | None = None) -> list[Session]:
        """A user's sessions, newest first."""
        async with self.db.session() as session:
            query = select(MemorySessionRow.id).where(
                tenant_is(MemorySessionRow), MemorySessionRow.user_id == user_id
            )
            if agent_id is not None:
                query = query.where(MemorySessionRow.agent_id == agent_id)
            ids = list(await session.scalars(query.order_by(MemorySessionRow.updated_at.desc())))
        return [Session(**(await self.get_session(i)).model_dump(exclude={"recent"})) for i in ids]

    async def delete_session(self, session_id: str) -> None:
        async with self.db.session() as session:
            row = await self._session_row(session, session_id)
            await session.execute(
                tenant_delete(MemoryMessageRow).where(MemoryMessageRow.session_id == row.id)
            )
            await session.delete(row)

    async def append(self, session_id: str, messages: list[Message]) -> SessionDetail:
        """Store messages durably, in order."""
        async with self.db.session() as session:
            row = await self._session_row(session, session_id)
            for message in messages:
                session.add(
                    MemoryMessageRow(
                        tenant_id=row.tenant_id,
                        session_id=row.id,
                        user_id=row.user_id,
                        role=message.role,
                        content=message.content,
                        tokens=tokens(message.content),
                    )
                )
            row.updated_at = utcnow()
        return await self.get_session(session_id, recent=len(messages))

    async def _session_row(self, session, session_id: str) -> MemorySessionRow:
        row = await tenant_get(session, MemorySessionRow, session_id)
        if row is None:
            raise NotFound(f"Unknown session '{session_id}'.", code="session_not_found")
        return row

    async def _messages(self, session, session_id: str, *, limit: int, after: int = 0) -> list[Message]:
        rows = list(
            await session.scalars(
                tenant_select(MemoryMessageRow)
                .where(
                    MemoryMessageRow.session_id == session_id,
                    MemoryMessageRow.seq > after,
                    MemoryMessageRow.content != "",
                )  # empty turns an older version accepted
                .order_by(MemoryMessageRow.seq.desc())
                .limit(limit)
            )
        )
        return [
            Message(role=r.role, content=r.content, seq=r.seq, created_at=r.created_at)
            for r in reversed(rows)
        ]

    # --- context --------------------------------------------------------------------------------------

    async def build_context(self, request: ContextRequest) -> MemoryContext:
        """Recent turns within the budget, the running summary, the memories nearest to the query, then the
        user's other facts (nearest first) while the budget lasts."""
        row = await self._open_session(request)
        budget = request.budget_tokens
        async with self.db.session() as session:
            candidates = await self._messages(session, row.id, limit=50)
        turns, spent = [], 0
        for message in reversed(candidates):
            cost = tokens(message.content)
            if spent + cost > budget * self.settings.memory_recent_share:
                break
            turns.insert(0, message)
            spent += cost
        summary = row.summary if row.summary and (spent + tokens(row.summary)) <= budget else ""
        spent += tokens(summary) if summary else 0
        in_window = {m.content for m in turns}
        recalled = []
        for hit in await self._recall_for_context(row, request.query):
            cost = tokens(hit.memory.content) + 3
            if spent + cost > budget or hit.memory.content in in_window:
                continue
            recalled.append(hit)
            spent += cost
        await self._touch([r.memory.id for r in recalled])
        return MemoryContext(
            session_id=row.id,
            user_id=row.user_id,
            summary=summary,
            turns=turns,
            memories=recalled,
            text=self._render(summary, recalled),
            tokens=spent,
        )

    async def _recall_for_context(self, row: MemorySessionRow, query: str) -> list[Recalled]:
        """The k memories nearest to the query (of any kind, above the similarity floor), followed by the
        user's remaining semantic facts, nearest first: facts are short and about the user, so whatever
        budget the nearest memories leave is best spent on them, even when the query shares few words with
        them ("what am I allergic to?" and "the user is allergic to cats" score low with a small embedder)."""
        k = self.settings.memory_recall_k
        if k <= 0:
            return []
        scored = await self._scored(row.user_id, query, agent_id=row.agent_id, exclude_session=row.id)
        nearest = [
            (m, s) for m, s in scored[:k] if s >= self.settings.memory_min_similarity or m.kind == "working"
        ]
        chosen = {m.id for m, _ in nearest}
        profile = [(m, s) for m, s in scored if m.kind == "semantic" and m.id not in chosen][
            :PROFILE_CANDIDATES
        ]
        return [Recalled(memory=_memory(m), similarity=round(s, 4)) for m, s in nearest + profile]

    async def _open_session(self, request: ContextRequest) -> MemorySessionRow:
        """The named session, a new one with that id, or a new one for the user."""
        async with self.db.session() as session:
            if request.session_id:
                row = await session.scalar(
                    all_tenants(
                        select(MemorySessionRow).where(MemorySessionRow.id == request.session_id),
                        "session ids are unique across tenants: another tenant's is refused next",
                    )
                )
                if row is not None:
                    if row.tenant_id != current_tenant():
                        raise NotFound(f"Unknown session '{request.session_id}'.", code="session_not_found")
                    return row
            row = MemorySessionRow(
                id=request.session_id or new_id(),
                tenant_id=current_tenant(),
                user_id=request.user_id or "anonymous",
                agent_id=request.agent_id,
                title=request.query[:120],
                summary="",
                summarized_upto=0,
            )
            session.add(row)
        return row

    @staticmethod
    def _render(summary: str, recalled: list[Recalled]) -> str:
        parts = []
        if summary:
            parts.append(f"Summary of the earlier conversation: {summary}")
        if recalled:
            lines = "\n".join(f"- [M{n}] {r.memory.content}" for n, r in enumerate(recalled, start=1))
            parts.append(f"What you remember about this user:\n{lines}")
        return "\n\n".join(parts)

    async def _recall(
        self,
        user_id: str,
        query: str,
        *,
        agent_id: str | None,
        exclude_session: str | None,
        k: int | None = None,
        kinds: list[str] | None = None,
    ) -> list[Recalled]:
        """The user's memories nearest to the query (exact cosine; a user's memories are few)."""
        k = self.settings.memory_recall_k if k is None else k
        if k <= 0:
            return []
        scored = await self._scored(
            user_id, query, agent_id=agent_id, exclude_session=exclude_session, kinds=kinds
        )
        return [
            Recalled(memory=_memory(m), similarity=round(s, 4))
            for m, s in scored[:k]
            if s >= self.settings.memory_min_similarity or m.kind == "working"
        ]

    async def _scored(
        self,
        user_id: str,
        query: str,
        *,
        agent_id: str | None,
        exclude_session: str | None,
        kinds: list[str] | None = None,
    ) -> list[tuple[MemoryRow, float]]:
        """Every live memory of the user that may be recalled here, with its similarity to the query, best
        first. Episodes of the current session are left out (its turns are in the context already)."""
        now = utcnow()
        async with self.db.session() as session:
            query_rows = select(MemoryRow).where(
                tenant_is(MemoryRow),
                MemoryRow.user_id == user_id,
                MemoryRow.embedding.is_not(None),
                (MemoryRow.expires_at.is_(None)) | (MemoryRow.expires_at > now),
            )
            if agent_id:
                query_rows = query_rows.where(MemoryRow.agent_id.is_(None) | (MemoryRow.agent_id == agent_id))
            if kinds:
                query_rows = query_rows.where(MemoryRow.kind.in_(kinds))
            rows = [
                r
                for r in await session.scalars(query_rows)
                if not (exclude_session and r.kind == "episodic" and r.session_id == exclude_session)
            ]
        rows = [r for r in rows if r.embedding_model == self.model]
        if not rows:
            return []
        # The question as asked (close to episodes, which quote the user) and in the facts' third person.
        queries = list(dict.fromkeys([query, facts.as_facts_speak(query)]))
        matrix = np.stack([np.frombuffer(r.embedding, dtype="<f4") for r in rows])
        scores = (matrix @ (await self._embed(queries)).T).max(axis=1)
        return [(rows[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")]

    async def _touch(self, ids: list[str]) -> None:
        if not ids:
            return
        async with self.db.session() as session:
            for row in await session.scalars(tenant_select(MemoryRow).where(MemoryRow.id.in_(ids))):
                row.access_count += 1
                row.last_accessed_at = utcnow()

    async def _embed(self, texts: list[str]) -> np.ndarray:
        return await embed_unit_vectors(self.embeddings, self.model, texts, "memory")

    # --- recording ------------------------------------------------------------------------------------

    async def record_exchange(self, exchange: Exchange) -> ExchangeResult:
        """Store a finished turn, remember it (episodic), learn facts from it (semantic), and fold old
        turns into the running summary when enough have accumulated."""
        async with self.db.session() as session:
            row = await self._session_row(session, exchange.session_id)
            for role, content in (("user", exchange.user), ("assistant", exchange.assistant)):
                session.add(
                    MemoryMessageRow(
                        tenant_id=row.tenant_id,
                        session_id=row.id,
                        user_id=row.user_id,
                        role=role,
                        content=content,
                        tokens=tokens(content),
                        task_id=exchange.task_id,
                    )
                )
            row.updated_at = utcnow()
        episode = (
            f"User: {' '.join(exchange.user.split())[:400]} — Assistant: "
            f"{' '.join(exchange.assistant.split())[:400]}"
        )
        await self._insert(
            MemoryCreate(
                user_id=row.user_id,
                kind="episodic",
                content=episode,
                agent_id=exchange.agent_id or None,
                session_id=row.id,
            )
        )
        ops = [
            await self.remember(
                MemoryCreate(user_id=row.user_id, content=fact, agent_id=None, session_id=row.id),
                forget=forget,
            )
            for fact, forget in facts.extract(exchange.user)
        ]
        summarized = await self._maybe_summarize(row.id)
        return ExchangeResult(facts=ops, summarized=summarized)

    async def _maybe_summarize(self, session_id: str) -> bool:
        async with self.db.session() as session:
            row = await self._session_row(session, session_id)
            pending = list(
                await session.scalars(
                    tenant_select(MemoryMessageRow)
                    .where(
                        MemoryMessageRow.session_id == session_id, MemoryMessageRow.seq > row.summarized_upto
                    )
                    .order_by(MemoryMessageRow.seq)
                )
            )
        old = pending[:-KEEP_RECENT] if len(pending) > KEEP_RECENT else []
        if len(old) < self.settings.memory_summary_after:
            return False
        summary = await self._summarize(row.summary, old)
        async with self.db.session() as session:
            fresh = await tenant_get(session, MemorySessionRow, session_id)
            if fresh.summarized_upto == row.summarized_upto:
                fresh.summary, fresh.summarized_upto = summary, old[-1].seq
        return True

    async def _summarize(self, previous: str, turns: list[MemoryMessageRow]) -> str:
        transcript = "\n".join(f"{t.role}: {' '.join(t.content.split())[:600]}" for t in turns)
        if self.models is not None:
            model = self.settings.memory_summary_model or self.settings.default_model
            request = ChatRequest(
                model=model,
                temperature=0.1,
                max_tokens=220,
                metadata={"purpose": "memory_summary"},
                messages=[
                    ChatMessage(role="system", content=SUMMARY_PROMPT),
                    ChatMessage(
                        role="user",
                        content=f"Summary so far: {previous or '(none)'}\n\nNew turns:\n{transcript}",
                    ),
                ],
            )
            try:
                text = (await self.models.chat(request)).content.strip()
                if text:
                    return text[:2000]
            except Exception as exc:
                log.warning("memory_summary_failed", error=type(exc).__name__)
        lines = [f"{t.role} said: {' '.join(t.content.split())[:160]}" for t in turns if t.role == "user"]
        return (previous + " " + " ".join(lines)).strip()[-2000:]

    # --- memories -------------------------------------------------------------------------------------

    async def add_memory(self, body: MemoryCreate) -> MemoryOp:
        """Store a memory: semantic ones go through add / update / delete / ignore."""
        if body.kind == "semantic":
            return await self.remember(body)
        return MemoryOp(op="add", memory=await self._insert(body))

    async def remember(self, body: MemoryCreate, *, forget: bool = False) -> MemoryOp:
        """A semantic fact: ignored when already known, updating the fact about the same subject, deleting
        the matching fact when the user asked to forget it, added otherwise."""
        nearest = await self._recall(
            body.user_id, body.content, agent_id=body.agent_id, exclude_session=None, k=3, kinds=["semantic"]
        )
        about = facts.subject(body.content)
        same_subject = next(
            (
                r
                for r in nearest
                if about and facts.subject(r.memory.content) == about and r.similarity >= SAME_SUBJECT
            ),
            None,
        )
        if forget:
            target = same_subject or next((r for r in nearest if r.similarity >= SAME_SUBJECT), None)
            if target is not None:
                await self.delete_memory(target.memory.id)
            terms = facts.value_terms(body.content)
            swept = await self._sweep(
                body.user_id, terms, kinds=("semantic", "episodic", "working"), messages=True
            )
            if target is None and not swept:
                return MemoryOp(op="ignore")
            return MemoryOp(
                op="delete", replaced=target.memory.content if target else None, also_forgotten=swept
            )
        same_text = next(
            (r for r in nearest if facts.normalise(r.memory.content) == facts.normalise(body.content)), None
        )
        if same_text is not None:
            return MemoryOp(op="ignore", memory=same_text.memory)
        if same_subject is not None:
            updated = await self._replace(same_subject.memory.id, body.content)
            stale = facts.value_terms(same_subject.memory.content) - facts.value_terms(body.content)
            swept = await self._sweep(body.user_id, stale, kinds=("episodic", "working"), messages=False)
            return MemoryOp(
                op="update", memory=updated, replaced=same_subject.memory.content, also_forgotten=swept
            )
        if nearest and nearest[0].similarity >= SAME_FACT:
            return MemoryOp(op="ignore", memory=nearest[0].memory)
        return MemoryOp(op="add", memory=await self._insert(body))

    async def _sweep(self, user_id: str, terms: set[str], *, kinds: tuple[str, ...], messages: bool) -> int:
        """Remove a value from the user's memories of `kinds` (those that mention it go), from their sessions'
        summaries (its sentences go) and, with `messages`, from their messages (redacted); how many
        changed."""
        if not terms:
            return 0
        tenant, rarest = current_tenant(), max(terms, key=len)

        def mentioning(column):  # a cheap prefilter in SQL; `facts.mentions` decides on whole words
            return func.lower(column).contains(rarest, autoescape=True)

        changed = 0
        async with self.db.session() as session:
            for row in await session.scalars(
                select(MemoryRow).where(
                    tenant_is(MemoryRow, tenant),
                    MemoryRow.user_id == user_id,
                    MemoryRow.kind.in_(kinds),
                    mentioning(MemoryRow.content),
                )
            ):
                if facts.mentions(row.content, terms):
                    await session.delete(row)
                    changed += 1
            for row in await session.scalars(
                select(MemorySessionRow).where(
                    tenant_is(MemorySessionRow, tenant),
                    MemorySessionRow.user_id == user_id,
                    mentioning(MemorySessionRow.summary),
                )
            ):
                if any(facts.mentions(sentence, terms) for sentence in facts.sentences(row.summary)):
                    row.summary = facts.without_mentions(row.summary, terms)
                    changed += 1
            if messages:
                for row in await session.scalars(
                    select(MemoryMessageRow).where(
                        tenant_is(MemoryMessageRow, tenant),
                        MemoryMessageRow.user_id == user_id,
                        mentioning(MemoryMessageRow.content),
                    )
                ):
                    if facts.mentions(row.content, terms):
                        row.content, row.tokens = FORGOTTEN, tokens(FORGOTTEN)
                        changed += 1
        return changed

    async def _insert(self, body: MemoryCreate) -> Memory:
        vector = (await self._embed([body.content]))[0]
        expires = None
        if body.kind == "working":
            expires = utcnow() + timedelta(seconds=body.ttl_s or self.settings.memory_working_ttl_s)
        row = MemoryRow(
            id=new_id(),
            tenant_id=current_tenant(),
            user_id=body.user_id,
            agent_id=body.agent_id,
            session_id=body.session_id,
            kind=body.kind,
            content=body.content,
            embedding=vector.astype("<f4").tobytes(),
            embedding_model=self.model,
            relevance=1.0,
            access_count=0,
            expires_at=expires,
        )
        async with self.db.session() as session:
            session.add(row)
        return _memory(row)

    async def _replace(self, memory_id: str, content: str) -> Memory:
        vector = (await self._embed([content]))[0]
        async with self.db.session() as session:
            row = await tenant_get(session, MemoryRow, memory_id)
            row.content, row.embedding, row.updated_at = content, vector.astype("<f4").tobytes(), utcnow()
            return _memory(row)

    async def list_memories(self, user_id: str, kind: str | None = None) -> list[Memory]:
        now = utcnow()
        async with self.db.session() as session:
            query = select(MemoryRow).where(
                tenant_is(MemoryRow),
                MemoryRow.user_id == user_id,
                MemoryRow.expires_at.is_(None) | (MemoryRow.expires_at > now),
            )
            if kind:
                query = query.where(MemoryRow.kind == kind)
            return [_memory(r) for r in await session.scalars(query.order_by(MemoryRow.created_at))]

    async def search(self, request: MemorySearch) -> list[Recalled]:
        """A user's memories nearest to a query."""
        return await self._recall(
            request.user_id,
            request.query,
            agent_id=request.agent_id,
            exclude_session=None,
            k=request.k,
            kinds=request.kinds,
        )

    async def delete_memory(self, memory_id: str) -> None:
        async with self.db.session() as session:
            row = await tenant_get(session, MemoryRow, memory_id)
            if row is None:
                raise NotFound(f"Unknown memory '{memory_id}'.", code="memory_not_found")
            await session.delete(row)

    # --- pruning, export, erasure ---------------------------------------------------------------------

    async def prune(self, request: PruneRequest) -> PruneResult:
        """Drop expired working memory, episodes older than the age limit, memories below a relevance, and
        each user's least used memories beyond the size limit."""
        now = utcnow()
        max_age = request.max_age_days or self.settings.memory_max_age_days
        cap = self.settings.memory_max_per_user if request.max_per_user is None else request.max_per_user
        tenant = tenant_is(MemoryRow)
        async with self.db.session() as session:
            expired = (
                await session.execute(delete(MemoryRow).where(tenant, MemoryRow.expires_at <= now))
            ).rowcount
            aged = (
                await session.execute(
                    delete(MemoryRow).where(
                        tenant,
                        MemoryRow.kind == "episodic",
                        MemoryRow.created_at < now - timedelta(days=max_age),
                    )
                )
            ).rowcount
            irrelevant = 0
            if request.min_relevance is not None:
                irrelevant = (
                    await session.execute(
                        delete(MemoryRow).where(tenant, MemoryRow.relevance < request.min_relevance)
                    )
                ).rowcount
            over = 0
            users = (
                await session.execute(
                    select(MemoryRow.user_id, func.count())
                    .where(tenant)
                    .group_by(MemoryRow.user_id)
                    .having(func.count() > cap)
                )
            ).all()
            for user_id, count in users:
                doomed = list(
                    await session.scalars(
                        select(MemoryRow.id)
                        .where(tenant, MemoryRow.user_id == user_id)
                        .order_by(MemoryRow.relevance, MemoryRow.access_count, MemoryRow.created_at)
                        .limit(count - cap)
                    )
                )
                over += (
                    await session.execute(tenant_delete(MemoryRow).where(MemoryRow.id.in_(doomed)))
                ).rowcount
        return PruneResult(expired=expired, aged=aged, over_size=over, irrelevant=irrelevant)

    async def export_user(self, user_id: str) -> UserExport:
        """Every session, message and memory of a user."""
        sessions = []
        for s in await self.list_sessions(user_id):
            async with self.db.session() as session:
                messages = await self._messages(session, s.id, limit=100_000)
            sessions.append(
                {**s.model_dump(mode="json"), "messages": [m.model_dump(mode="json") for m in messages]}
            )
        return UserExport(user_id=user_id, sessions=sessions, memories=await self.list_memories(user_id))

    async def erase_user(self, user_id: str) -> tuple[EraseResult, list[str]]:
        """Delete everything remembered about a user; with the ids of the tasks their messages came from."""
        tenant = current_tenant()
        async with self.db.session() as session:
            task_ids = sorted(
                set(
                    await session.scalars(
                        select(MemoryMessageRow.task_id).where(
                            tenant_is(MemoryMessageRow, tenant),
                            MemoryMessageRow.user_id == user_id,
                            MemoryMessageRow.task_id.is_not(None),
                        )
                    )
                )
            )
            ids = list(
                await session.scalars(
                    select(MemorySessionRow.id).where(
                        tenant_is(MemorySessionRow, tenant), MemorySessionRow.user_id == user_id
                    )
                )
            )
            messages = (
                await session.execute(
                    delete(MemoryMessageRow).where(
                        tenant_is(MemoryMessageRow, tenant), MemoryMessageRow.user_id == user_id
                    )
                )
            ).rowcount
            sessions = (
                await session.execute(tenant_delete(MemorySessionRow).where(MemorySessionRow.id.in_(ids)))
            ).rowcount
            memories = (
                await session.execute(
                    delete(MemoryRow).where(tenant_is(MemoryRow, tenant), MemoryRow.user_id == user_id)
                )
            ).rowcount
        erased = {"memory_sessions": sessions, "memory_messages": messages, "memories": memories}
        return EraseResult(
            user_id=user_id, sessions=sessions, messages=messages, memories=memories, erased=erased
        ), task_ids
