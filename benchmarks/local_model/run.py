"""Tokens/s of our local provider versus llama-cpp-python called directly (same model, prompt, settings),
and sentences/s of the local embeddings, measured in one run.

    .venv/bin/python benchmarks/local_model/run.py [--runs 3] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
import asyncio
import os
import platform
import time
from datetime import date

from agent_lightning.models.embeddings import LocalEmbedder
from agent_lightning.models.providers.local import LocalLlamaProvider, _model_params, packaged_gguf
from agent_lightning.models.schemas import ChatMessage, ChatRequest

PROMPT = "Write a short story about a lighthouse keeper and a cat."


def direct(runs: int, max_tokens: int) -> float:
    from llama_cpp import Llama

    with _model_params(False):
        llama = Llama(model_path=str(packaged_gguf()), n_ctx=2048, n_threads=2, flash_attn=True, verbose=False)
    messages = [{"role": "user", "content": PROMPT}]
    llama.create_chat_completion(messages=messages, max_tokens=8, temperature=0)
    tokens = seconds = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        out = llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0)
        seconds += time.perf_counter() - started
        tokens += out["usage"]["completion_tokens"]
    return tokens / seconds


async def ours(runs: int, max_tokens: int) -> float:
    provider = LocalLlamaProvider(None, threads=2, context=2048, flash_attn=True)
    request = ChatRequest(model="local", messages=[ChatMessage(role="user", content=PROMPT)], max_tokens=max_tokens, temperature=0)
    await provider.chat(request.model_copy(update={"max_tokens": 8}), "local")
    tokens = seconds = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        result = await provider.chat(request, "local")
        seconds += time.perf_counter() - started
        tokens += result.completion_tokens
    return tokens / seconds


async def embeddings(n: int = 512) -> float:
    embedder = LocalEmbedder(threads=2, batch_size=32)
    sentences = [f"Sentence number {i} talks about topic {i % 17} in a few more words." for i in range(n)]
    await embedder.embed(sentences[:32])
    started = time.perf_counter()
    await embedder.embed(sentences)
    return n / (time.perf_counter() - started)


def _ours(runs: int, max_tokens: int) -> float:
    return asyncio.run(ours(runs, max_tokens))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    # Each measurement in a fresh process: two llama.cpp instances in one process compete for the cores.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        first = pool.submit(_ours, args.runs, args.max_tokens).result()
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        direct_tps = pool.submit(direct, args.runs, args.max_tokens).result()
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        ours_tps = (first + pool.submit(_ours, args.runs, args.max_tokens).result()) / 2  # before and after direct
    eps = asyncio.run(embeddings())
    print(f"\nLocal model benchmark, {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, SmolLM2-135M-Instruct Q4_1, n_threads=2")
    print(f"{'path':<34}{'tokens/s':>10}")
    print(f"{'llama-cpp-python directly':<34}{direct_tps:>10.1f}")
    print(f"{'agent-lightning local provider':<34}{ours_tps:>10.1f}")
    print(f"ratio ours / direct: {ours_tps / direct_tps:.3f}  (target >= 0.95)")
    print(f"embeddings all-MiniLM-L6-v2 int8 ONNX, batch 32: {eps:.0f} sentences/s")


if __name__ == "__main__":
    main()
