"""Image parts of a chat request reach providers that take them (OpenAI-shaped and Anthropic bodies); a model
that cannot see them answers 400 unsupported_content, never dropping them silently."""

from __future__ import annotations

import httpx
from upstream import FakeUpstream

from agent_lightning.models.providers.anthropic import to_anthropic
from agent_lightning.models.schemas import ChatMessage, ChatRequest

PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PARTS = [
    {"type": "text", "text": "What is in this picture?"},
    {"type": "image_url", "image_url": {"url": PIXEL}},
]


def test_images_pass_to_an_openai_shaped_upstream_and_the_local_model_refuses_them(server):
    fake = FakeUpstream("vision").start()
    try:
        created = httpx.post(
            f"{server.url}/models",
            json={
                "id": "vision",
                "deployments": [
                    {"provider": "openai-compatible", "model": "v1", "base_url": f"{fake.url}/v1"}
                ],
            },
        )
        assert created.status_code == 201, created.text
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "vision", "messages": [{"role": "user", "content": PARTS}]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert fake.requests[-1]["messages"][0]["content"] == [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": PIXEL}},
        ]
    finally:
        fake.stop()
    refused = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "local", "messages": [{"role": "user", "content": PARTS}]},
        timeout=30,
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_content", (
        refused.text
    )
    odd = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "local", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
    )
    assert odd.status_code == 400 and odd.json()["error"]["code"] == "unsupported_content"


def test_anthropic_gets_image_blocks():
    request = ChatRequest(
        model="claude",
        messages=[
            ChatMessage(role="user", content="Describe", images=[PIXEL, "https://example.org/cat.png"])
        ],
    )
    blocks = to_anthropic(request, "claude-x")["messages"][0]["content"]
    assert blocks[0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL.split(",", 1)[1]},
    }
    assert blocks[1] == {"type": "image", "source": {"type": "url", "url": "https://example.org/cat.png"}}
    assert blocks[2] == {"type": "text", "text": "Describe"}
