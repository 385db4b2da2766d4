"""The local model under load, with the real SmolLM2 through llama.cpp: a generation nobody waits for stops at
once, requests wait their turn in arrival order, and a full queue is refused with 503 and a Retry-After."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from llama_cpp import LogitsProcessorList
from support import free_port

from agent_lightning.app import create_app
from agent_lightning.models.providers.base import ProviderError
from agent_lightning.models.providers.local import LocalLlamaProvider
from agent_lightning.models.schemas import ChatMessage, ChatRequest

pytestmark = pytest.mark.slow

STORY = (
    "Write a very long story about a lighthouse keeper and a cat, with many chapters."  # runs to max_tokens
)


def ask(text: str, max_tokens: int) -> ChatRequest:
    return ChatRequest(
        model="local", messages=[ChatMessage(role="user", content=text)], max_tokens=max_tokens, temperature=0
    )


async def recorded(provider: LocalLlamaProvider) -> list[dict]:
    """Each generation llama.cpp runs, in order: its prompt, max_tokens, the tokens it sampled, whether it
    ended."""
    llama = await provider._model()
    real = llama.create_chat_completion
    generations: list[dict] = []

    def counting(**kwargs):
        record = {
            "max_tokens": kwargs["max_tokens"],
            "tokens": 0,
            "ended": False,
            "prompt": kwargs["messages"][-1]["content"],
        }
        generations.append(record)

        def count(_ids, scores):
            record["tokens"] += 1
            return scores

        kwargs["logits_processor"] = LogitsProcessorList([count, *(kwargs.get("logits_processor") or [])])
        try:
            return real(**kwargs)
        finally:
            record["ended"] = True

    llama.create_chat_completion = counting
    return generations


@asynccontextmanager
async def serving(app):
    """The app under uvicorn (streams are real streams), on a free port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 60)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def until(condition, timeout: float = 120) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_a_timed_out_generation_stops_and_the_next_call_does_not_wait_for_it():
    provider = LocalLlamaProvider(None)
    generations = await recorded(provider)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(provider.chat(ask(STORY, 600), "local"), 2)
    short = await provider.chat(ask("Say hi", 8), "local")

    assert 0 < short.completion_tokens <= 8
    story, hi = generations
    # Left alone, the story runs to its 600 tokens; stopped, it ended before the short call began.
    assert story["ended"] and story["tokens"] < 600, story
    assert hi["max_tokens"] == 8 and hi["ended"]
    stats = provider.queue_stats()
    assert (stats.aborted, stats.running, stats.waiting) == (1, 0, 0)


async def test_requests_wait_their_turn_in_arrival_order_and_a_cancelled_one_leaves_the_queue():
    provider = LocalLlamaProvider(None, concurrency=1, queue_size=8)
    generations = await recorded(provider)
    long = asyncio.create_task(provider.chat(ask(STORY, 600), "local"))
    await until(lambda: provider.admission.running == 1)
    waiting = {}
    for name in ("first", "second", "third", "fourth"):
        waiting[name] = asyncio.create_task(provider.chat(ask(f"Say {name}", 4), "local"))
        await until(lambda: provider.admission.waiting == len(waiting))
    waiting["second"].cancel()
    await until(lambda: provider.admission.waiting == 3)
    long.cancel()
    await asyncio.gather(waiting["first"], waiting["third"], waiting["fourth"])

    assert [g["prompt"] for g in generations] == [STORY, "Say first", "Say third", "Say fourth"]
    assert generations[0]["tokens"] < 600
    assert waiting["second"].cancelled()
    stats = provider.queue_stats()
    assert (stats.admitted, stats.aborted, stats.running, stats.waiting) == (4, 1, 0, 0)


async def test_a_full_queue_is_refused_at_once_with_a_retry_after():
    provider = LocalLlamaProvider(None, concurrency=1, queue_size=1)
    long = asyncio.create_task(provider.chat(ask(STORY, 600), "local"))
    await until(lambda: provider.admission.running == 1)
    queued = asyncio.create_task(provider.chat(ask("Say hi", 4), "local"))
    await until(lambda: provider.admission.waiting == 1)

    with pytest.raises(ProviderError) as refused:
        await provider.chat(ask("Say hello", 4), "local")
    assert refused.value.status == 503 and refused.value.code == "model_overloaded"
    assert refused.value.retry_after_s >= 1 and "waiting" in refused.value.message

    long.cancel()
    assert (await queued).completion_tokens > 0
    assert provider.queue_stats().rejected == 1


async def test_over_http_a_full_queue_answers_503_with_retry_after_and_a_closed_stream_frees_the_slot(
    settings,
):
    settings.local_queue_size = 0  # nothing may wait: a second request while one runs is refused
    async with serving(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            body = {
                "model": "local",
                "messages": [{"role": "user", "content": STORY}],
                "max_tokens": 600,
                "stream": True,
            }
            async with client.stream("POST", "/v1/chat/completions", json=body) as stream:
                async for _ in stream.aiter_lines():
                    break  # the first token: the generation holds the only slot
                busy = await client.post(
                    "/v1/chat/completions",
                    json={
                        "model": "local",
                        "messages": [{"role": "user", "content": "Say hi"}],
                        "max_tokens": 4,
                    },
                )

            # the stream is closed: the server notices, its generation stops and the slot is free
            async def queue() -> dict:
                return (await client.get("/models/local/stats")).json()["deployments"][0]["queue"]

            for _ in range(600):
                if (await queue())["running"] == 0:
                    break
                await asyncio.sleep(0.05)
            answered = await client.post(
                "/v1/chat/completions",
                json={"model": "local", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4},
            )
            stats = (await client.get("/models/local/stats")).json()

    assert busy.status_code == 503, busy.text
    assert int(busy.headers["retry-after"]) >= 1
    assert busy.json()["error"]["code"] == "model_overloaded"
    assert answered.status_code == 200, answered.text
    [deployment] = stats["deployments"]
    assert deployment["queue"]["rejected"] == 1 and deployment["queue"]["aborted"] == 1
    assert deployment["queue"]["running"] == 0 and deployment["consecutive_failures"] == 0


async def test_with_two_slots_two_generations_run_at_once_each_on_its_own_model_instance():
    provider = LocalLlamaProvider(None, concurrency=2, queue_size=4)
    first = asyncio.create_task(provider.chat(ask(STORY, 600), "local"))
    second = asyncio.create_task(provider.chat(ask(STORY, 600), "local"))
    # both admitted, and each holds an instance of its own (the second one loaded for it)
    await until(lambda: provider.admission.running == 2 and provider._loaded == 2 and provider._idle.empty())
    assert provider.admission.waiting == 0
    first.cancel()
    second.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    answers = await asyncio.gather(
        provider.chat(ask("Say hi", 8), "local"), provider.chat(ask("Say bye", 8), "local")
    )
    assert all(a.content and 0 < a.completion_tokens <= 8 for a in answers)
    assert provider._idle.qsize() == 2 and provider.queue_stats().aborted == 2
