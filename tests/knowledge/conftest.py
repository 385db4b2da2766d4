"""Fixtures of the knowledge tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from embedded import QuotingProvider, embedded_app


@pytest.fixture
def quoting() -> QuotingProvider:
    return QuotingProvider()


@pytest.fixture
async def kclient(settings, quoting) -> AsyncIterator:
    async with embedded_app(settings, quoting) as client:
        yield client
