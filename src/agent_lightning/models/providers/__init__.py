"""Model providers: the interface, and the local, OpenAI(-compatible) and Anthropic implementations."""

from agent_lightning.models.providers.anthropic import AnthropicProvider
from agent_lightning.models.providers.base import (
    EmbeddingProvider,
    Provider,
    ProviderError,
    StreamingProvider,
)
from agent_lightning.models.providers.local import LocalLlamaProvider, packaged_gguf
from agent_lightning.models.providers.openai import OpenAIProvider

__all__ = [
    "AnthropicProvider",
    "EmbeddingProvider",
    "LocalLlamaProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "StreamingProvider",
    "packaged_gguf",
]
