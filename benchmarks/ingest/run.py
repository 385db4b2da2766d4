"""Knowledge ingest speed against the embedder's own, measured in one run.

    .venv/bin/python benchmarks/ingest/run.py [--docs 150] [--source man|pydoc] [--pg-url postgresql://…]

The documents are manual pages installed on this machine, rendered to Markdown (or, with --source pydoc or
without man-db, pydoc's pages of the standard library), written as files into a folder. Measured, each on
a fresh server (`alp serve knowledge`, its own SQLite file and usearch index, rate limit off):

- the embedder alone: the texts the server embeds for those documents (each chunk with its title and
  heading), through the same local ONNX embedder in this process, before and after the runs (the mean is
  the baseline of the ratios);
- the API in batches: `POST /knowledge/items/batch` with bodies of up to 128 KiB;
- the API one document per request: `POST /knowledge/upload` per file;
- the CLI: `alp knowledge add FOLDER` as a process (parsing, requests, the server's work);
- with --pg-url, the API in batches against a fresh database on that PostgreSQL server.

chunks/s counts the chunks stored (read back from `/knowledge/stats`) over the wall time of the path. Any
error fails the run (exit 1) before a ratio is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from agent_lightning.core.config import Settings
from agent_lightning.knowledge import ingest
from agent_lightning.knowledge.service import embedding_text
from agent_lightning.models.embeddings import LocalEmbedder

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "retrieval"))
import corpora  # noqa: E402

BATCH_BYTES = 128 * 1024


class BenchError(RuntimeError):
    """Anything that makes the numbers meaningless."""


def documents(source: str, count: int) -> dict[str, str]:
    """File name → Markdown/text of `count` documents."""
    names = list(corpora.man_page_paths())
    if source == "man" and names:
        step = max(1, len(names) // (count * 5 // 4))  # pages from the whole list; some render empty
        pages = corpora.man_pages(names[::step])
        return {
            f"{name.replace('(', '.').rstrip(')')}.md": body for name, body in list(pages.items())[:count]
        }
    return {f"{name}.txt": body for name, body in corpora.pydoc_modules(limit=count).items()}


def embedded_texts(docs: dict[str, str], settings: Settings) -> list[str]:
    """What the server embeds for these documents: each chunk with its title and heading."""
    texts = []
    for name, body in docs.items():
        _, chunks = ingest.chunk_document(
            body, name, size=settings.knowledge_chunk_chars, overlap=settings.knowledge_chunk_overlap
        )
        title = ingest.document_title(name, chunks)
        texts += [embedding_text(title, c.heading, c.text) for c in chunks]
    return texts


async def embedder_alone(texts: list[str], settings: Settings) -> float:
    """Chunks per second of the local embedder by itself, configured as the server's."""
    embedder = LocalEmbedder(threads=settings.embedding_threads, batch_size=settings.embedding_batch_size)
    await embedder.embed(texts[:8])  # loads the model
    started = time.perf_counter()
    vectors, _ = await embedder.embed(texts)
    elapsed = time.perf_counter() - started
    if len(vectors) != len(texts):
        raise BenchError("the embedder returned fewer vectors than texts")
    return len(texts) / elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`alp serve knowledge` in its own process on a fresh database."""

    def __init__(self, root: Path, database_url: str | None = None) -> None:
        self.data = Path(tempfile.mkdtemp(dir=root))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "ALP_DATA_DIR": str(self.data),
            "ALP_RATE_LIMIT": "0",
            "ALP_LOG_LEVEL": "WARNING",
            "ALP_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{self.data / 'alp.db'}",
        }
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_lightning.cli",
                "serve",
                "knowledge",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
            ],
            env=self.env,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    # the first embedding loads the model: not part of any path's time
                    response = httpx.post(
                        self.url + "/knowledge/search",
                        json={"query": "warm up", "mode": "vector"},
                        timeout=120,
                    )
                    check(response, "warm-up search")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise BenchError("the server did not start")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(30)

    def stored_chunks(self) -> int:
        response = httpx.get(self.url + "/knowledge/stats", timeout=60)
        check(response, "stats")
        return response.json()["chunks"]


def check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise BenchError(f"{what}: {response.status_code} {response.text[:300]}")


def api_batches(url: str, docs: dict[str, str]) -> None:
    batch: list[bytes] = []
    size = 0
    with httpx.Client(base_url=url, timeout=600) as client:

        def send() -> None:
            response = client.post(
                "/knowledge/items/batch",
                content=b'{"items": [' + b", ".join(batch) + b"]}",
                headers={"Content-Type": "application/json"},
            )
            check(response, "POST /knowledge/items/batch")

        for name, body in docs.items():
            document = json.dumps(
                {
                    "content": body,
                    "format": ingest.detect_format(name),
                    "source": name,
                    "category": "technical_documentation",
                }
            ).encode()
            if len(document) + 64 > BATCH_BYTES:
                raise BenchError(f"{name} is larger than a batch; choose smaller documents")
            if batch and size + len(document) + 64 > BATCH_BYTES:
                send()
                batch, size = [], 0
            batch.append(document)
            size += len(document) + 2
        if batch:
            send()


def api_per_document(url: str, folder: Path) -> None:
    with httpx.Client(base_url=url, timeout=600) as client:
        for path in sorted(folder.iterdir()):
            response = client.post(
                "/knowledge/upload", params={"filename": path.name}, content=path.read_bytes()
            )
            check(response, f"POST /knowledge/upload {path.name}")


def cli(url: str, folder: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent_lightning.cli", "knowledge", "add", str(folder), "--url", url],
        env={**env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(
            f"alp knowledge add exited with {done.returncode}: {done.stderr[-500:]} {done.stdout[-500:]}"
        )


async def fresh_pg_database(admin_url: str) -> tuple[str, str]:
    name = f"alp_ingest_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(
        admin_url.replace("postgresql://", "postgresql+asyncpg://"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


async def drop_pg_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(
        admin_url.replace("postgresql://", "postgresql+asyncpg://"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


def timed(run, server: Server) -> tuple[float, int]:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    return elapsed, server.stored_chunks()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--source", choices=["man", "pydoc"], default="man")
    parser.add_argument(
        "--pg-url", default="", help="an admin URL of a PostgreSQL server (a database is created)"
    )
    args = parser.parse_args()
    settings = Settings(_env_file=None)

    docs = documents(args.source, args.docs)
    docs = {
        name: body for name, body in docs.items() if len(json.dumps({"content": body})) + 256 < BATCH_BYTES
    }
    texts = embedded_texts(docs, settings)
    print(
        f"{len(docs)} documents ({args.source}), {sum(map(len, docs.values())) / 1e6:.1f} MB, {len(texts)} "
        "chunks",
        flush=True,
    )
    rows: list[tuple[str, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="alp-ingest-") as tmp:
        root = Path(tmp)
        folder = root / "docs"
        folder.mkdir()
        for name, body in docs.items():
            (folder / name).write_text(body)
        before = asyncio.run(embedder_alone(texts, settings))
        print(f"embedder alone: {before:.1f} chunks/s", flush=True)
        paths = [
            ("API, batches (POST /knowledge/items/batch)", lambda s: api_batches(s.url, docs)),
            (
                "API, one document per request (POST /knowledge/upload)",
                lambda s: api_per_document(s.url, folder),
            ),
            ("CLI, alp knowledge add FOLDER", lambda s: cli(s.url, folder, s.env)),
        ]
        for label, run in paths:
            with Server(root) as server:
                elapsed, chunks = timed(functools.partial(run, server), server)
            rows.append((label, elapsed, chunks))
            print(f"{label}: {chunks} chunks in {elapsed:.1f} s", flush=True)
        if args.pg_url:
            url, name = asyncio.run(fresh_pg_database(args.pg_url))
            try:
                with Server(root, url) as server:
                    elapsed, chunks = timed(lambda: api_batches(server.url, docs), server)
                rows.append(("API, batches, PostgreSQL", elapsed, chunks))
            finally:
                asyncio.run(drop_pg_database(args.pg_url, name))
        after = asyncio.run(embedder_alone(texts, settings))
    for label, _, chunks in rows:
        if chunks < 0.9 * len(texts):
            raise BenchError(f"{label}: {chunks} chunks stored, {len(texts)} expected")
    baseline = (before + after) / 2
    print(
        f"\nKnowledge ingest, {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {len(docs)} documents, {len(texts)} chunks; "
        f"embedder threads {settings.embedding_threads}, batch {settings.embedding_batch_size}"
    )
    print(f"{'path':<58}{'chunks':>8}{'seconds':>9}{'chunks/s':>10}{'vs embedder':>13}")
    print(
        f"{'embedder alone (before / after the runs)':<58}{len(texts):>8}{'':>9}{baseline:>10.1f}{'1.00':>13}"
        f"   ({before:.1f} / {after:.1f})"
    )
    for label, elapsed, chunks in rows:
        rate = chunks / elapsed
        print(f"{label:<58}{chunks:>8}{elapsed:>9.1f}{rate:>10.1f}{rate / baseline:>13.2f}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        sys.exit(1)
