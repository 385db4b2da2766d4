"""Fixtures of the model service tests: settings on a temporary database, fake upstreams, a running app."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from upstream import FakeUpstream, free_port

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database
from agent_lightning.models.service import ModelService, build_model_service


@pytest.fixture
def model_settings(settings: Settings) -> Settings:
    """The suite's settings with quick retries and cooldowns, and no provider keys from the environment."""
    return settings.model_copy(
        update={
            "model_retries": 2,
            "model_retry_backoff_s": 0.01,
            "model_cooldown_failures": 3,
            "model_cooldown_s": 30.0,
            "usage_flush_s": 0.05,
            "openai_api_key": None,
            "anthropic_api_key": None,
        }
    )


@pytest.fixture
def fake_openai() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream("openai-a").start()
    yield upstream
    upstream.stop()


@pytest.fixture
def fake_openai_b() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream("openai-b", usage=(20, 8)).start()
    yield upstream
    upstream.stop()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream("anthropic", usage=(12, 6)).start()
    yield upstream
    upstream.stop()


@pytest.fixture
async def service(model_settings: Settings) -> AsyncIterator[ModelService]:
    """The model service as `alp up` builds it, on a migrated temporary database."""
    db = Database(model_settings.resolved_database_url())
    await db.upgrade()
    models = build_model_service(model_settings, db)
    yield models
    await models.close()
    await db.close()


class ServerThread:
    """The platform's app (models only) served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, services=["models"])
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One running app for the SDK tests of a module (the local model loads once)."""
    tmp = tmp_path_factory.mktemp("models-app")
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp / 'alp.db'}",
        data_dir=tmp,
        log_level="WARNING",
        usage_flush_s=0.05,
        model_retry_backoff_s=0.01,
        egress_allow=["127.0.0.1"],
    )
    with ServerThread(settings) as running:
        yield running
