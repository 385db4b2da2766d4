"""Agents that act: success on tasks that need a tool, with tools and without, for the local model and for a
scripted provider that calls the tools perfectly (the ceiling); steps and tokens per task.

    .venv/bin/python benchmarks/agents/run.py [--models scripted,local] [--limit N] [--markdown FILE]

The one-process platform (SQLite in a temporary directory) with the corpus's documents in its knowledge base
and the automatic knowledge context turned off (`ALP_KNOWLEDGE_BUDGET_TOKENS=0`), so a look-up needs the
`knowledge_search` tool. Two agents per model: `with_tools` (python, knowledge_search; its first turn must
call a tool; at most 4 model calls) and `without_tools` (the same prompt, no tools). Every task goes through
`POST /assign-task` naming the agent, the answer is scored by `corpus.correct`, and its steps and tokens are
read from `GET /api/v2/actions/{id}`. A harness error (an HTTP error, a task that never finishes) stops the
run with exit code 1 and no table; a task the agent fails counts as not solved.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform as host
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpus import Corpus, Task, build, correct

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.models.schemas import ChatRequest, ChatResult

PROMPT = (
    "You are an analyst who only states results you have checked. For arithmetic, dates, counting or any "
    "data question, write a short Python program that prints the result and run it with the python tool. "
    "For facts about the team's services and warehouses, search with knowledge_search. Then answer in one "
    "sentence that gives the result."
)


class PerfectToolCaller:
    """Calls exactly the tools a task's plan lists, then answers with what they returned (the ceiling).
    Without tools it cannot compute or look anything up, and says so."""

    name = "oracle"

    def __init__(self, tasks: list[Task]) -> None:
        self.plans = {task.question: task.calls for task in tasks}

    def available(self) -> tuple[bool, str]:
        return True, "scripted"

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        question = next(m.content for m in request.messages if m.role == "user").split("\n\nContext:")[0]
        plan = self.plans.get(question, [])
        turn = sum(1 for m in request.messages if m.role == "assistant" and m.tool_calls)
        usage = {
            "prompt_tokens": sum(len(m.content.split()) for m in request.messages),
            "completion_tokens": 12,
        }
        if request.tools and request.tool_choice != "none" and turn < len(plan):
            import json

            calls = [
                {"id": f"c{turn}{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, (n, a) in enumerate(plan[turn])
            ]
            return ChatResult(
                content="",
                tool_calls=calls,
                model=request.model,
                provider=self.name,
                provider_model=provider_model,
                finish_reason="tool_calls",
                **usage,
            )
        results = [m.content for m in request.messages if m.role == "tool"]
        content = f"The result: {results[-1].strip()}" if results else "I cannot work that out without tools."
        return ChatResult(
            content=content, model=request.model, provider=self.name, provider_model=provider_model, **usage
        )


async def run_model(model: str, corpus: Corpus, tasks: list[Task], timeout_s: float) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="alp-bench-agents-"))
    settings = Settings(
        _env_file=None,
        data_dir=workdir,
        log_level="ERROR",
        knowledge_budget_tokens=0,
        rate_limit="",
        rate_limit_write="",
        task_timeout_s=timeout_s,
        max_attempts=1,
        validation_result_checks=False,
    )
    app = create_app(settings)
    rows = []
    try:
        async with app.router.lifespan_context(app):
            alias = "local"
            if model == "scripted":
                service = app.state.platform.model_service
                service.register_provider(PerfectToolCaller(corpus.tasks))
                service.register_alias("oracle", provider="oracle", provider_model="oracle")
                alias = "oracle"
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://alp", timeout=120) as client:
                for title, text in corpus.documents:
                    response = await client.post("/knowledge/items", json={"title": title, "content": text})
                    response.raise_for_status()
                for agent, tools in (("with_tools", ["python", "knowledge_search"]), ("without_tools", [])):
                    body = {
                        "id": agent,
                        "name": agent,
                        "system_prompt": PROMPT,
                        "model": alias,
                        "tools": tools,
                        "temperature": 0.1,
                        "max_tokens": 160,
                        "max_steps": 4,
                        "tool_choice": "required" if tools else "auto",
                    }
                    (await client.post("/api/v2/agents", json=body)).raise_for_status()
                for task in tasks:
                    for agent in ("with_tools", "without_tools"):
                        rows.append(await run_task(client, model, agent, task, timeout_s))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


async def run_task(client: httpx.AsyncClient, model: str, agent: str, task: Task, timeout_s: float) -> dict:
    response = await client.post("/assign-task", json={"description": task.question, "agent_id": agent})
    response.raise_for_status()
    task_id = response.json()["task_id"]
    deadline = time.monotonic() + timeout_s + 60
    while True:
        state = (await client.get(f"/tasks/{task_id}")).raise_for_status().json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} never finished")
        await asyncio.sleep(0.2)
    steps = (await client.get(f"/api/v2/actions/{task_id}")).raise_for_status().json()["steps"]
    answer = state["result"] or ""
    return {
        "model": model,
        "agent": agent,
        "kind": task.kind,
        "solved": state["status"] == "succeeded" and correct(task, answer),
        "failed": state["status"] != "succeeded",
        "steps": len(steps),
        "tool_calls": sum(s["kind"] == "tool" for s in steps),
        "tokens": sum(s["prompt_tokens"] + s["completion_tokens"] for s in steps),
    }


def table(rows: list[dict], models: list[str]) -> str:
    lines = [
        "| model | agent | tasks | solved | success | vs without tools | failed runs | steps / task | "
        "tool calls / task | tokens / task |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in models:
        rates = {}
        for agent in ("with_tools", "without_tools"):
            mine = [r for r in rows if r["model"] == model and r["agent"] == agent]
            rates[agent] = sum(r["solved"] for r in mine) / len(mine)
        for agent in ("with_tools", "without_tools"):
            mine = [r for r in rows if r["model"] == model and r["agent"] == agent]
            n = len(mine)
            base = rates["without_tools"]
            ratio = (
                "–"
                if agent == "without_tools"
                else (f"{rates[agent] / base:.1f}×" if base else "∞ (0 without)")
            )
            lines.append(
                f"| {model} | {agent} | {n} | {sum(r['solved'] for r in mine)} | {rates[agent]:.0%} | "
                f"{ratio} | {sum(r['failed'] for r in mine)} | {sum(r['steps'] for r in mine) / n:.1f} | "
                f"{sum(r['tool_calls'] for r in mine) / n:.1f} | {sum(r['tokens'] for r in mine) / n:.0f} |"
            )
    lines.append("")
    lines.append("| model | kind | with tools | without tools |")
    lines.append("|---|---|---:|---:|")
    for model in models:
        for kind in ("python", "knowledge", "two_tools"):
            cells = []
            for agent in ("with_tools", "without_tools"):
                mine = [r for r in rows if r["model"] == model and r["agent"] == agent and r["kind"] == kind]
                cells.append(f"{sum(r['solved'] for r in mine)}/{len(mine)}" if mine else "–")
            lines.append(f"| {model} | {kind} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="scripted,local")
    parser.add_argument("--limit", type=int, default=0, help="Only the first N tasks of each kind (0: all).")
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds per task attempt.")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    for noisy in ("httpx", "mcp", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    corpus = build()
    tasks = corpus.tasks
    if args.limit:
        tasks = [
            t
            for kind in ("python", "knowledge", "two_tools")
            for t in [t for t in tasks if t.kind == kind][: args.limit]
        ]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    started = time.monotonic()
    rows: list[dict] = []
    try:
        for model in models:
            rows += await run_model(model, corpus, tasks, args.timeout)
    except Exception as exc:
        print(f"benchmark error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    text = (
        f"{len(tasks)} tasks × 2 agents × {len(models)} model(s), {date.today()}, {host.machine()}, "
        f"{os.cpu_count()} CPUs, Python {host.python_version()}, {time.monotonic() - started:.0f} s\n\n"
        + table(rows, models)
    )
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
