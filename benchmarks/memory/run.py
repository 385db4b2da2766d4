"""Memory benchmark: answers about earlier sessions of a conversation, with the memory service's context
builder versus the last N turns only, asked of the local model.

    .venv/bin/python benchmarks/memory/run.py [--dialogues 57] [--last-n 6] [--max-tokens 48] [--threads 1]

Each dialogue of `dialogues.jsonl` (written by hand) is one user talking to one agent over 2–4 sessions.
Every turn is replayed through the real memory service, composed as the platform composes it (models +
memory in one process, SQLite in a temporary directory, all-MiniLM-L6-v2 embeddings and SmolLM2-135M
through the model service): sessions per user × agent, `record_exchange` for every turn (messages,
episodic memories, semantic facts added / updated / ignored, the running summary written by the model).
Then, in the last session, each question gets two contexts:

- last-N: the user's N most recent messages, nothing else;
- builder: `MemoryService.build_context` (recent turns within the budget, the session's running summary,
  memories recalled by vector search), as the execution service asks for it.

The question, with each context, goes through the execution service's own prompt composition
(`build_messages`: the agent's system prompt, remembered context, recent turns as chat messages) to the
local model at temperature 0. An answer is correct when it contains one of the question's accepted
strings as whole words (case-insensitive). "Answer in context" applies the same test to the context the
model was given, so it measures the memory layer without the model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from agent_lightning.agents.fleet import DEFAULT_FLEET
from agent_lightning.app import Platform, build_platform
from agent_lightning.core.config import Settings
from agent_lightning.execution.service import build_messages
from agent_lightning.memory.schemas import ContextRequest, Exchange, MemoryContext, Message, SessionCreate
from agent_lightning.memory.service import MemoryService, tokens
from agent_lightning.models.schemas import ChatRequest, ModelGateway

HERE = Path(__file__).parent
DIALOGUES = HERE / "dialogues.jsonl"
AGENTS = {agent.id: agent for agent in DEFAULT_FLEET}
ARMS = ("last-N baseline", "context builder")


def load_dialogues(path: Path = DIALOGUES) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def session_id(dialogue: dict, index: int) -> str:
    return f"{dialogue['id']}-s{index + 1}"


def contains(text: str, accepted: list[str]) -> bool:
    """Whether one of the accepted strings occurs in the text as whole words, ignoring case."""
    lowered = text.lower()
    return any(re.search(rf"(?<!\w){re.escape(a.lower())}(?!\w)", lowered) for a in accepted)


def context_text(context: MemoryContext) -> str:
    """Everything a context puts in front of the model: the rendered memory and the turns."""
    return "\n".join([context.text, *(f"{t.role}: {t.content}" for t in context.turns)]).strip()


def settings_for(directory: Path, **overrides) -> Settings:
    """The platform's settings (defaults and ALP_ environment) on a fresh SQLite file."""
    return Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{directory / 'memory-bench.db'}",
        data_dir=directory,
        log_level="WARNING",
        **overrides,
    )


async def start_platform(settings: Settings, model_service=None) -> Platform:
    """Models and memory in one process, wired and started as `alp serve models memory` does."""
    platform = build_platform(settings, ("models", "memory"), model_service=model_service)
    await platform.start()
    return platform


async def replay(memory: MemoryService, dialogue: dict) -> None:
    """Every session and turn of a dialogue, recorded the way the execution service records them."""
    for index, turns in enumerate(dialogue["sessions"]):
        await memory.create_session(
            SessionCreate(
                user_id=dialogue["user"], agent_id=dialogue["agent"], id=session_id(dialogue, index)
            )
        )
        for user, assistant in turns:
            await memory.record_exchange(
                Exchange(
                    session_id=session_id(dialogue, index),
                    user_id=dialogue["user"],
                    agent_id=dialogue["agent"],
                    user=user,
                    assistant=assistant,
                )
            )


async def last_n_context(memory: MemoryService, dialogue: dict, n: int) -> MemoryContext:
    """The baseline: the user's n most recent messages (across sessions), nothing else."""
    messages: list[Message] = []
    for index in range(len(dialogue["sessions"])):
        messages += (await memory.get_session(session_id(dialogue, index), recent=n)).recent
    messages = sorted(messages, key=lambda m: m.seq)[-n:] if n else []
    return MemoryContext(
        session_id=session_id(dialogue, len(dialogue["sessions"]) - 1),
        user_id=dialogue["user"],
        turns=messages,
        tokens=sum(tokens(m.content) for m in messages),
    )


async def builder_context(memory: MemoryService, dialogue: dict, question: str, budget: int) -> MemoryContext:
    """Ours: what the execution service gets when the question arrives in the dialogue's last session."""
    return await memory.build_context(
        ContextRequest(
            user_id=dialogue["user"],
            session_id=session_id(dialogue, len(dialogue["sessions"]) - 1),
            agent_id=dialogue["agent"],
            query=question,
            budget_tokens=budget,
        )
    )


async def both_contexts(
    memory: MemoryService, dialogue: dict, question: str, *, last_n: int, budget: int
) -> dict[str, tuple[MemoryContext, float]]:
    """Each arm's context for one question, with the milliseconds it took to build."""
    built = {}
    for arm in ARMS:
        started = time.perf_counter()
        if arm == ARMS[0]:
            context = await last_n_context(memory, dialogue, last_n)
        else:
            context = await builder_context(memory, dialogue, question, budget)
        built[arm] = (context, (time.perf_counter() - started) * 1000)
    return built


async def ask(models: ModelGateway, dialogue: dict, question: str, context: MemoryContext, max_tokens: int):
    """The question, composed as the execution service composes a task, answered by the local model."""
    messages = build_messages(AGENTS[dialogue["agent"]], question, {}, memory=context)
    return await models.chat(
        ChatRequest(
            model="local",
            messages=messages,
            temperature=0.0,
            max_tokens=max_tokens,
            metadata={"purpose": "memory_benchmark"},
        )
    )


@dataclass
class Tally:
    questions: int = 0
    in_context: int = 0
    correct: int = 0
    updated: int = 0
    updated_correct: int = 0
    context_tokens: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    build_ms: list[float] = field(default_factory=list)

    def row(self, name: str) -> str:
        pct = lambda part: f"{100 * part / self.questions:.1f}" if self.questions else "–"  # noqa: E731
        prompt = f"{statistics.mean(self.prompt_tokens):.0f}" if self.prompt_tokens else "–"
        return (
            f"| {name} | {self.questions} | {pct(self.in_context)} | {pct(self.correct)} | "
            f"{statistics.mean(self.context_tokens):.0f} | {prompt} | {statistics.median(self.build_ms):.1f} "
            "|"
        )


def table(tallies: dict[str, Tally]) -> str:
    lines = [
        "| context | questions | answer in context % | answer accuracy % | mean context tokens | "
        "mean prompt tokens | p50 build ms |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(lines + [tallies[arm].row(arm) for arm in ARMS])


async def run(args: argparse.Namespace) -> str:
    dialogues = load_dialogues()[: args.dialogues]
    with tempfile.TemporaryDirectory() as directory:
        settings = settings_for(Path(directory), **({"local_threads": args.threads} if args.threads else {}))
        platform = await start_platform(settings)
        memory, models = platform.memory_service, platform.models
        try:
            started = time.perf_counter()
            for dialogue in dialogues:
                await replay(memory, dialogue)
            replay_s = time.perf_counter() - started
            summaries = 0
            for dialogue in dialogues:
                for index in range(len(dialogue["sessions"])):
                    summaries += bool((await memory.get_session(session_id(dialogue, index))).summary)
            tallies = {arm: Tally() for arm in ARMS}
            log_lines = []
            started = time.perf_counter()
            for number, dialogue in enumerate(dialogues, start=1):
                print(f"[{number}/{len(dialogues)}] {dialogue['id']}", file=sys.stderr, flush=True)
                for q in dialogue["questions"]:
                    built = await both_contexts(
                        memory,
                        dialogue,
                        q["question"],
                        last_n=args.last_n,
                        budget=settings.memory_budget_tokens,
                    )
                    for arm, (context, ms) in built.items():
                        tally = tallies[arm]
                        text = context_text(context)
                        tally.questions += 1
                        tally.in_context += contains(text, q["accept"])
                        tally.context_tokens.append(tokens(text) if text else 0)
                        tally.build_ms.append(ms)
                        answer = ""
                        if not args.no_model:
                            result = await ask(models, dialogue, q["question"], context, args.max_tokens)
                            answer = result.content
                            tally.prompt_tokens.append(result.prompt_tokens)
                            hit = contains(answer, q["accept"])
                            tally.correct += hit
                            if q.get("outdated"):
                                tally.updated += 1
                                tally.updated_correct += hit
                        log_lines.append(
                            json.dumps(
                                {
                                    "dialogue": dialogue["id"],
                                    "arm": arm,
                                    "question": q["question"],
                                    "expected": q["answer"],
                                    "in_context": contains(text, q["accept"]),
                                    "answer": answer,
                                    "correct": contains(answer, q["accept"]),
                                },
                                ensure_ascii=False,
                            )
                        )
            ask_s = time.perf_counter() - started
        finally:
            await platform.stop()
    if not (args.no_write or args.no_model):
        (HERE / "answers.jsonl").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    questions = sum(len(d["questions"]) for d in dialogues)
    threads = settings.local_threads
    updated = sum(1 for d in dialogues for q in d["questions"] if q.get("outdated"))
    header = (
        f"Run {date.today()} on {host.machine()} {host.system()}, {os.cpu_count()} CPUs, Python "
        f"{host.python_version()}; model SmolLM2-135M-Instruct Q4_1 (llama.cpp, {threads} thread(s), "
        f"temperature 0, max {args.max_tokens} tokens); embeddings all-MiniLM-L6-v2 (ONNX int8); SQLite"
    )
    setup = (
        f"{len(dialogues)} dialogues, {sum(len(d['sessions']) for d in dialogues)} sessions, "
        f"{sum(len(s) for d in dialogues for s in d['sessions'])} exchanges, {questions} questions "
        f"({updated} about a fact that changed); last N = {args.last_n} messages; builder budget "
        f"{settings.memory_budget_tokens} tokens (recent share {settings.memory_recent_share}, recall k "
        f"{settings.memory_recall_k}); {summaries} session summaries written by the model; replay "
        f"{replay_s:.1f} s, contexts and answers {ask_s:.1f} s"
    )
    lines = [header, "", setup, "", table(tallies)]
    if not args.no_model:
        lines += [
            "",
            "Questions about a fact that changed (correct = the new value is named): "
            + ", ".join(f"{arm} {t.updated_correct}/{t.updated}" for arm, t in tallies.items()),
        ]
    lines += [
        "",
        "Tokens are the service's estimate (4 characters per token), the unit of its budget; prompt tokens "
        "are the model's own count of the whole prompt (agent system prompt, context, question).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialogues", type=int, default=None, help="Run only the first N dialogues.")
    parser.add_argument("--last-n", type=int, default=6, help="Messages in the baseline's window.")
    parser.add_argument("--max-tokens", type=int, default=48, help="Longest answer the model may give.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="llama.cpp threads (default ALP_LOCAL_THREADS; 1 is far faster on a busy machine).",
    )
    parser.add_argument("--no-model", action="store_true", help="Build the contexts only (no answers).")
    parser.add_argument("--no-write", action="store_true", help="Do not write results.md and answers.jsonl.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = asyncio.run(run(args))
    print(report)
    if not args.no_write and not args.no_model:
        (HERE / "results.md").write_text(
            f"# Memory benchmark\n\n`{' '.join(['benchmarks/memory/run.py', *sys.argv[1:]])}`\n\n{report}\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
