"""Full-text search on SQLite FTS5 and PostgreSQL tsvector that ranks only the chunks worth ranking.

The content words of a question, OR-ed, match a large share of a knowledge base (*file*, *list*, *value*),
and BM25 (FTS5) or ts_rank (tsvector) would score every match. Here every word of the query still counts
in the score, but a chunk is only ranked when it holds one of the query's *essential* words: the rarest
ones, as many as keep the chunks to rank within `CANDIDATES`. A chunk holding none of them holds only the
query's common words, which weigh little under BM25. When even the rarest word is that common, a chunk
must hold the two rarest words. When a pass finds fewer hits than asked for, the next one tries the rarest
word alone, then the next rarest words (`Plan.passes`). No pass ranks more than `CANDIDATES` chunks (on
SQLite the newest).

Document frequencies come from the databases' own statistics: an fts5vocab table over the FTS5 index on
SQLite (exact), ANALYZE's most-common-lexeme statistics of the tsvector column on PostgreSQL (an estimate;
before the first ANALYZE every word counts as rare and only the `CANDIDATES` limit applies).

Visibility filters (tenant, agent, category, source, time) are applied to the ranked list, fetched
`OVERFETCH` times deeper than asked, widened when too few chunks pass and, when still too few, applied
inside the query. Measurements behind the numbers: benchmarks/retrieval and the docs.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_lightning.knowledge.schemas import Filters
from agent_lightning.knowledge.search import typed_sql, visibility

STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in into is it its me my of on or our should "
    "that the their them then there these this to use used using was what when where which who why will "
    "with you your".split()
)
CANDIDATES = {"sqlite": 3000, "postgresql": 1000}  # at most this many chunks are ranked per pass
MAX_PASSES = 3
OVERFETCH = 2  # the ranked list is fetched this many times deeper than asked, then filtered
OVERFETCH_ROUNDS = 2  # and widened fourfold this many times before the filters go into the query
STATS_TTL_S = (
    60.0  # how long a common word's frequency (SQLite) or the column statistics (PostgreSQL) are reused
)
CACHED_FROM = (
    1000  # SQLite: frequencies of words in at least this many chunks are cached (counting them costs)
)
SCORED_POSTINGS = 24_000  # SQLite: see `choose`
SCORE_MAX_SHARE = 0.2  # SQLite: words in this share of the chunks or more do not count (see `choose`)


def terms(query: str, limit: int = 32) -> list[str]:
    """The query's distinct content words, in order."""
    seen: list[str] = []
    for word in re.findall(r"[A-Za-z0-9_]+", query.lower()):
        if word not in STOPWORDS and word not in seen and len(word) > 1:
            seen.append(word)
    return seen[:limit]


@dataclass(frozen=True)
class Term:
    """A query word as typed (the database stems it as it stemmed the chunks) and the number of chunks
    holding it (None: unknown)."""

    word: str
    df: int | None


@dataclass
class Plan:
    """How a query is searched."""

    dialect: str
    total: int  # chunks in the index (an estimate on PostgreSQL)
    scored: list[Term]  # the words that count in the score, rarest first
    essential: list[Term]  # a chunk is ranked only when it holds one of these (all of them if `every`)
    every: bool = False
    cap: int = 0  # at most this many chunks are ranked per pass

    @property
    def candidates(self) -> int | None:
        """About how many chunks the first pass ranks (None: unknown)."""
        counts = [t.df for t in self.essential]
        if not counts or None in counts:
            return None
        return min(self.cap, min(counts) if self.every else sum(counts))

    def passes(self) -> list[tuple[list[Term], bool]]:
        """The essential words of each pass, tried in turn while too few chunks are found: the plan's; when
        it needs the two rarest words, the rarest alone; then the next rarest words not tried yet, chosen
        the same way. At most MAX_PASSES."""
        out: list[tuple[list[Term], bool]] = []
        essential, every, rest = self.essential, self.every, list(self.scored)
        while essential and len(out) < MAX_PASSES:
            out.append((essential, every))
            if every:
                out.append((essential[:1], False))
            rest = [t for t in rest if t not in essential]
            essential, every = _essential(rest, self.cap)
        return out[:MAX_PASSES]


def _essential(ranked: list[Term], cap: int) -> tuple[list[Term], bool]:
    """The rarest words, as many as keep the chunks holding one of them within `cap`; when the rarest alone
    is held by more, the two rarest, both required."""
    if len(ranked) > 1 and (ranked[0].df or 0) > cap:
        return ranked[:2], True
    essential: list[Term] = []
    matched = 0
    for term in ranked:
        if essential and matched + (term.df or 0) > cap:
            break
        essential.append(term)
        matched += term.df or 0
    return essential, False


def choose(found: list[Term], total: int, dialect: str, cap: int | None = None) -> Plan:
    """The words that count in the score and the essential ones of the first pass."""
    cap = cap or CANDIDATES.get(dialect, 1000)
    present = [t for t in found if t.df != 0]  # exact on SQLite: a word no chunk holds matches nothing
    if dialect == "sqlite" and total:
        # Under FTS5's bm25 a word held by a fifth of the chunks weighs less than a third of one held by one
        # chunk in a hundred, and one held by half of them nothing: such words are left out unless every
        # word is that common (measured in benchmarks/retrieval).
        present = [t for t in present if t.df < SCORE_MAX_SHARE * total] or present
    ranked = sorted(present, key=lambda t: t.df or 0)
    essential, every = _essential(ranked, cap)
    scored = ranked
    if dialect == "sqlite":
        # bm25() reads the whole list of chunks holding a word to weigh it, for every word of the expression:
        # the other words count, rarest first, while the chunks holding them total at most SCORED_POSTINGS.
        scored, postings = list(essential), 0
        for term in ranked:
            if term not in essential:
                if postings + term.df > SCORED_POSTINGS:
                    break
                scored.append(term)
                postings += term.df
        scored.sort(key=lambda t: t.df)
    return Plan(dialect, total, scored, essential, every, cap)


async def plan(session: AsyncSession, query: str) -> Plan:
    """The words of `query` with their document frequencies, and which of them select the chunks to rank."""
    dialect = session.bind.dialect.name
    words = terms(query)
    if not words:
        return Plan(dialect, 0, [], [])
    if dialect == "sqlite":
        found, total = await _sqlite_terms(session, words)
    else:
        found, total = await _postgres_terms(session, words)
    return choose(found, total, dialect)


async def search(
    session: AsyncSession, query: str, filters: Filters, tenant: str, k: int
) -> list[tuple[int, float]]:
    """The k best visible chunks for the query's words, best first, as (chunk key, score): BM25 on SQLite,
    ts_rank on PostgreSQL. Every pass scores on the same words, so their scores merge."""
    chosen = await plan(session, query)
    found: dict[int, float] = {}
    for essential, every in chosen.passes():
        for key, score in await _visible_top(session, chosen, essential, every, filters, tenant, k):
            found.setdefault(key, score)
        if len(found) >= k:
            break
    return sorted(found.items(), key=lambda pair: -pair[1])[:k]


# --- ranking ------------------------------------------------------------------------------------------------


async def _visible_top(
    session: AsyncSession,
    chosen: Plan,
    essential: list[Term],
    every: bool,
    filters: Filters,
    tenant: str,
    k: int,
) -> list[tuple[int, float]]:
    """Rank without the filters and keep the visible chunks; rank deeper when too few pass, and in the end
    filter inside the query."""
    want = k * OVERFETCH
    for _ in range(OVERFETCH_ROUNDS + 1):
        ranked = await _rank(session, chosen, essential, every, want, filters, tenant, inside=False)
        kept = [(key, score) for key, score, ok in ranked if ok]
        if len(kept) >= k or len(ranked) < want:
            return kept[:k]
        want *= 4
    return [
        (key, score)
        for key, score, _ in await _rank(session, chosen, essential, every, k, filters, tenant, inside=True)
    ]


def _fts5_phrase(term: Term) -> str:
    return '"' + term.word.replace('"', '""') + '"'


def _fts5_query(chosen: Plan, essential: list[Term], every: bool) -> tuple[str, int]:
    """The MATCH expression, and how many times it counts each word. Every phrase of an FTS5 expression adds
    its own BM25 term to bm25(): written as (essential) AND (all words, the others twice), each word appears
    exactly twice, so bm25() is twice the BM25 of all the words while only chunks holding an essential word
    match."""
    first = (" AND " if every else " OR ").join(_fts5_phrase(t) for t in essential)
    others = [t for t in chosen.scored if t not in essential]
    if not others:
        return first, 1
    every_word = " OR ".join([_fts5_phrase(t) for t in essential] + [_fts5_phrase(t) for t in others] * 2)
    return f"({first}) AND ({every_word})", 2


def _tsquery_word(term: Term) -> str:
    """A word as a to_tsquery operand: quoted, so that no character is read as an operator."""
    return "'" + term.word.replace("\\", "\\\\").replace("'", "''") + "'"


async def _rank(
    session: AsyncSession,
    chosen: Plan,
    essential: list[Term],
    every: bool,
    n: int,
    filters: Filters,
    tenant: str,
    *,
    inside: bool,
) -> list[tuple[int, float, bool]]:
    """The n best of (at most `cap`) chunks holding the essential words, scored on every word, each with
    whether it passes the filters; with `inside`, only chunks that pass them are ranked."""
    condition, params = visibility(filters, tenant)
    # The limits are written into the statement: PostgreSQL's generic plan of a prepared statement with
    # `LIMIT $n` guesses that a sequential scan finds the rows early (55 ms instead of 5 ms at 29k chunks).
    n, cap = int(n), int(chosen.cap)
    if chosen.dialect == "sqlite":
        params["q"], times = _fts5_query(chosen, essential, every)
        # CROSS JOIN: from the index to the rows, whatever SQLite's planner (without statistics) guesses.
        rows = (
            "CROSS JOIN knowledge_chunks c ON c.seq = {key} CROSS JOIN knowledge_items i ON i.id = c.item_id"
        )
        if inside:
            matches = (
                f"SELECT f.rowid AS k, bm25(knowledge_chunks_fts) AS s FROM knowledge_chunks_fts f "
                f"{rows.format(key='f.rowid')} WHERE knowledge_chunks_fts MATCH :q AND {condition} "
                f"ORDER BY f.rowid DESC LIMIT {cap}"
            )
            sql = f"SELECT k, s, 1 FROM ({matches}) ORDER BY s LIMIT {n}"
        else:
            matches = (
                "SELECT rowid AS k, bm25(knowledge_chunks_fts) AS s FROM knowledge_chunks_fts "
                f"WHERE knowledge_chunks_fts MATCH :q ORDER BY rowid DESC LIMIT {cap}"
            )
            sql = (
                f"SELECT r.k, r.s, CASE WHEN {condition} THEN 1 ELSE 0 END FROM "
                f"(SELECT k, s FROM ({matches}) ORDER BY s LIMIT {n}) r {rows.format(key='r.k')} ORDER BY r.s"
            )
        result = await session.execute(typed_sql(sql, params), params)
        return [(int(key), -float(score) / times, bool(ok)) for key, score, ok in result]
    params["match"] = (" & " if every else " | ").join(_tsquery_word(t) for t in essential)
    params["rank"] = " | ".join(_tsquery_word(t) for t in chosen.scored)
    # The GIN index finds the candidates (at most `cap`); ts_rank reads the tsvector of those only. The
    # ranking query is parsed once, in FROM, not once per row.
    candidates = "SELECT c.seq, c.tsv FROM knowledge_chunks c "
    if inside:
        candidates += f"JOIN knowledge_items i ON i.id = c.item_id WHERE {condition} AND "
    else:
        candidates += "WHERE "
    candidates += f"c.tsv @@ to_tsquery('english', :match) LIMIT {cap}"
    top = (
        f"SELECT m.seq, ts_rank(m.tsv, rq) AS s FROM to_tsquery('english', :rank) AS rq, ({candidates}) AS m "
        f"ORDER BY s DESC LIMIT {n}"
    )
    if inside:
        sql = f"SELECT r.seq, r.s, true FROM ({top}) AS r ORDER BY r.s DESC"
    else:
        sql = (
            f"SELECT r.seq, r.s, {condition} FROM ({top}) AS r JOIN knowledge_chunks c ON c.seq = r.seq "
            "JOIN knowledge_items i ON i.id = c.item_id ORDER BY r.s DESC"
        )
    result = await session.execute(typed_sql(sql, params), params)
    return [(int(key), float(score), bool(ok)) for key, score, ok in result]


# --- document frequencies: SQLite ---------------------------------------------------------------------------


class _Stemmer:
    """FTS5's own tokenizer, configured as the index's, in a private in-memory database: which terms the
    index holds for a word."""

    def __init__(self) -> None:
        self._conns: dict[str, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[str, ...]] = {}

    def __call__(self, tokenize: str, words: list[str]) -> list[tuple[str, ...]]:
        missing = [w for w in dict.fromkeys(words) if (tokenize, w) not in self._cache]
        if missing:
            with self._lock:
                conn = self._conns.get(tokenize)
                if conn is None:
                    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                    conn.execute(f"CREATE VIRTUAL TABLE w USING fts5(word, tokenize={_sql_string(tokenize)})")
                    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(w, instance)")
                    self._conns[tokenize] = conn
                conn.execute("BEGIN")
                try:
                    conn.executemany("INSERT INTO w(rowid, word) VALUES (?, ?)", enumerate(missing))
                    found: dict[int, list[str]] = {}
                    for doc, term in conn.execute('SELECT doc, term FROM v ORDER BY doc, "offset"'):
                        found.setdefault(doc, []).append(term)
                finally:
                    conn.execute("ROLLBACK")
                if len(self._cache) > 100_000:
                    self._cache.clear()
                for n, word in enumerate(missing):
                    self._cache[(tokenize, word)] = tuple(found.get(n, ()))
        return [self._cache[(tokenize, w)] for w in words]


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_stem = _Stemmer()
_tokenizers: dict[str, str] = {}
_frequencies: dict[tuple[str, str], tuple[float, int]] = {}
VOCAB = "temp.knowledge_chunks_vocab"


async def _fts5_tokenizer(session: AsyncSession) -> str:
    """The tokenize option the FTS5 table was created with."""
    key = str(session.bind.url)
    if key not in _tokenizers:
        sql = await session.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'knowledge_chunks_fts'"))
        found = re.search(r"tokenize\s*=\s*'((?:[^']|'')*)'", sql or "")
        _tokenizers[key] = found.group(1).replace("''", "'") if found else "unicode61"
    return _tokenizers[key]


async def _sqlite_terms(session: AsyncSession, words: list[str]) -> tuple[list[Term], int]:
    """Each distinct word (by its terms in the index) with the number of chunks holding it, read from an
    fts5vocab table over the FTS5 index; common words' counts are cached for STATS_TTL_S."""
    key = str(session.bind.url)
    stems = _stem(await _fts5_tokenizer(session), words)
    now = time.monotonic()
    df: dict[str, int] = {}
    wanted = []
    for stem in sorted({s for group in stems for s in group}):
        cached = _frequencies.get((key, stem))
        if cached and now - cached[0] < STATS_TTL_S:
            df[stem] = cached[1]
        else:
            wanted.append(stem)
    # The uncached frequencies and the number of chunks in one statement (a row with a NULL term).
    names = ", ".join(f":t{n}" for n in range(len(wanted))) or "NULL"
    params = {f"t{n}": stem for n, stem in enumerate(wanted)}
    sql = text(
        f"SELECT term, doc FROM {VOCAB} WHERE term IN ({names}) "
        "UNION ALL SELECT NULL, (SELECT count(*) FROM knowledge_chunks)"
    )
    try:
        rows = (await session.execute(sql, params)).all()
    except OperationalError:  # the connection's first search: the vocabulary table is per connection
        await session.execute(
            text(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {VOCAB} USING fts5vocab(main, knowledge_chunks_fts, row)"
            )
        )
        rows = (await session.execute(sql, params)).all()
    if len(_frequencies) > 100_000:
        _frequencies.clear()
    total = 0
    for stem, count in rows:
        if stem is None:
            total = int(count)
            continue
        df[stem] = int(count)
        if count >= CACHED_FROM:
            _frequencies[(key, stem)] = (now, int(count))
    found, seen = [], set()
    for word, group in zip(words, stems, strict=True):
        if group and group not in seen:
            seen.add(group)
            found.append(Term(word, min(df.get(s, 0) for s in group)))
    return found, total


# --- document frequencies: PostgreSQL -----------------------------------------------------------------------

_lexemes: dict[str, tuple[str, ...]] = {}
_column_stats: dict[str, tuple[float, dict[str, float], float, int]] = {}


async def _postgres_statistics(session: AsyncSession) -> tuple[dict[str, float], float, int]:
    """ANALYZE's most common lexemes of the tsvector column with the share of rows holding each, the share
    assumed for a lexeme not listed, and the table's estimated row count; reused for STATS_TTL_S."""
    key = str(session.bind.url)
    cached = _column_stats.get(key)
    if cached and time.monotonic() - cached[0] < STATS_TTL_S:
        return cached[1:]
    row = (
        await session.execute(
            text(
                "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples FROM "
                "pg_class c LEFT JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = "
                "'knowledge_chunks' AND s.attname = 'tsv' WHERE c.oid = to_regclass('knowledge_chunks')"
            )
        )
    ).first()
    lexemes, shares, total = row if row else (None, None, -1)
    listed = dict(zip(lexemes, shares, strict=False)) if lexemes else {}
    # For a tsvector column the shares are followed by their minimum and maximum. Like PostgreSQL's own
    # estimate of a tsquery's selectivity, a lexeme not listed counts as half as common as the rarest listed.
    floor = float(shares[len(lexemes)]) / 2 if lexemes and len(shares) > len(lexemes) else 0.0
    stats = (listed, floor, max(0, int(total or 0)))
    _column_stats[key] = (time.monotonic(), *stats)
    return stats


async def _postgres_terms(session: AsyncSession, words: list[str]) -> tuple[list[Term], int]:
    """Each distinct word (by its lexemes) with the number of chunks holding it, estimated from the column's
    statistics."""
    missing = [w for w in dict.fromkeys(words) if w not in _lexemes]
    if missing:
        rows = await session.execute(
            text(
                "SELECT w, tsvector_to_array(to_tsvector('english', w)) FROM unnest(CAST(:words AS text[])) "
                "AS w"
            ),
            {"words": missing},
        )
        if len(_lexemes) > 100_000:
            _lexemes.clear()
        _lexemes.update({word: tuple(sorted(lexemes)) for word, lexemes in rows})
    listed, floor, total = await _postgres_statistics(session)
    found, seen = [], set()
    for word in words:
        group = _lexemes.get(word, ())
        if group and group not in seen:  # no lexeme: a stop word of the 'english' configuration
            seen.add(group)
            df = (
                max(1, round(total * min(listed.get(lexeme, floor) for lexeme in group)))
                if listed and total
                else None
            )
            found.append(Term(word, df))
    return found, total
