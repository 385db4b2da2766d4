"""Fixtures of the agent tests: the platform with real embeddings and a model that calls tools as scripted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from embedded import embedded_app
from scripted import ToolCallingProvider


@pytest.fixture
def settings(settings):
    """The shared settings without rate limits: these tests poll runs that call several tools."""
    return settings.model_copy(update={"rate_limit": "", "rate_limit_write": ""})


@pytest.fixture
def caller() -> ToolCallingProvider:
    return ToolCallingProvider()


@pytest.fixture
async def aclient(settings, caller) -> AsyncIterator:
    async with embedded_app(settings, caller) as client:
        yield client
