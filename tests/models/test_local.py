"""The local providers really run: SmolLM2 generates text, MiniLM embeds meaningfully."""

from __future__ import annotations

import numpy as np

from agent_lightning.models.schemas import ChatMessage, ChatRequest, EmbeddingRequest


def ask(text: str, max_tokens: int = 12) -> ChatRequest:
    return ChatRequest(
        model="local", messages=[ChatMessage(role="user", content=text)], max_tokens=max_tokens, temperature=0
    )


async def test_the_local_model_generates_different_text_for_different_prompts(service):
    capital = await service.chat(ask("What is the capital of France? Answer in one sentence."))
    colour = await service.chat(ask("Write one sentence about the colour of the sky."))
    for result in (capital, colour):
        assert result.content.strip() and result.provider == "local"
        assert 0 < result.completion_tokens <= 12 and result.prompt_tokens > 0
    assert capital.content != colour.content
    streamed = [
        d
        async for d in await service.open_stream(
            ask("What is the capital of France? Answer in one sentence.")
        )
    ]
    text = "".join(d.content for d in streamed)
    assert text.strip() and streamed[-1].finish_reason in ("stop", "length")
    assert streamed[-1].completion_tokens == sum(1 for d in streamed if d.content)
    stats = await service.stats("local")
    assert stats.requests == 3 and stats.tokens_per_s and stats.tokens_per_s > 0 and stats.latency_p50_ms > 0


async def test_local_embeddings_put_paraphrases_closer_than_unrelated_sentences(service):
    texts = [
        "How do I reset my password?",
        "What are the steps to change my login password?",
        "The recipe needs two cups of flour and an egg.",
        "Tomorrow's weather will be sunny and warm.",
    ]
    result = await service.embed(EmbeddingRequest(model="all-minilm-l6-v2", input=texts))
    vectors = np.array(result.vectors)
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.6
    assert similarity[0, 1] > similarity[0, 2] + 0.3 and similarity[0, 1] > similarity[0, 3] + 0.3
    # batching does not change the vectors
    service.embedder.batch_size = 1
    one_by_one = np.array(
        (await service.embed(EmbeddingRequest(model="all-minilm-l6-v2", input=texts))).vectors
    )
    assert np.allclose(one_by_one, vectors, atol=1e-4)


async def test_local_embeddings_keep_the_order_of_texts_of_mixed_lengths():
    # The embedder runs texts in order of length (less padding per batch); each vector must still be its
    # text's.
    from agent_lightning.models.embeddings import LocalEmbedder

    texts = [
        "Connection pools should be small: twice the number of cores is a good start. " * 4,
        "Hi.",
        "The recipe needs two cups of flour and an egg.",
        "Rotate logs weekly and keep four of them, compressed.",
        "Backups run at night.",
        "x " * 300,
    ]
    embedder = LocalEmbedder(threads=1, batch_size=2)
    together, tokens = await embedder.embed(texts)
    alone = [(await embedder.embed([text]))[0][0] for text in texts]
    assert np.allclose(np.array(together), np.array(alone), atol=1e-4)
    assert tokens == sum([(await embedder.embed([text]))[1] for text in texts])


async def test_the_embedders_threads_sleep_between_runs():
    # Spinning threads took the core the server's event loop needed (benchmarks/throughput): CPU per embedding
    # twice as high, and the other work of the process waited for them.
    from agent_lightning.models.embeddings import LocalEmbedder

    embedder = LocalEmbedder(threads=2)
    await embedder.embed(["load the model"])
    options = embedder._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
