"""`alp task submit --wait` follows the task over the event stream: a few requests however long the task runs
(it polled every 0.3 s and met the rate limit after a minute), with authentication on as well."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from platform_process import alp_cli
from pydantic import SecretStr
from support import free_port

from agent_lightning.auth.service import AuthService
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database

pytestmark = pytest.mark.slow

SECRET = "wait-secret-" + "x" * 40
PASSWORD = "correct horse battery"
SLOW_S = 6  # the scripted model's answer takes this long: 20 polls at the old pace


def requests_seen(url: str, headers: dict[str, str]) -> dict[str, int]:
    """Requests the server has answered, by route (its Prometheus counter), /metrics itself left out."""
    counts: dict[str, int] = {}
    for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines():
        if line.startswith("alp_http_requests_total{"):
            labels, value = line[len("alp_http_requests_total{") :].rsplit("} ", 1)
            route = dict(part.split("=", 1) for part in labels.split('",') if "=" in part)["route"].strip('"')
            if route != "/metrics":
                counts[route] = counts.get(route, 0) + int(float(value))
    return counts


async def _api_key(database_url: str, url: str) -> str:
    db = Database(database_url)
    settings = Settings(
        _env_file=None, database_url=database_url, auth_enabled=True, auth_secret=SecretStr(SECRET)
    )
    await AuthService(db, settings).create_user("ada", PASSWORD, "admin")
    await db.close()
    async with httpx.AsyncClient(base_url=url) as client:
        token = (await client.post("/auth/token", data={"username": "ada", "password": PASSWORD})).json()
        created = await client.post(
            "/auth/api-keys",
            json={"name": "cli", "role": "operator"},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert created.status_code == 201, created.text
        return created.json()["key"]


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
def test_waiting_for_a_slow_task_costs_a_few_requests(cluster, auth):
    env = {"SCRIPTED_DELAY_S": str(SLOW_S)}
    if auth:
        env |= {"ALP_AUTH_ENABLED": "true", "ALP_AUTH_SECRET": SECRET}
    url = cluster.start("platform", "auth,orchestrator,execution,models", free_port(), **env)
    cli_env = {"ALP_API_KEY": asyncio.run(_api_key(cluster.database_url, url))} if auth else {}
    headers = {"X-API-Key": cli_env["ALP_API_KEY"]} if auth else {}
    before = requests_seen(url, headers)

    done = alp_cli(
        "task", "submit", "Deploy the API with docker", "--wait", "--timeout", "120", "--url", url, **cli_env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout and "answer to: Deploy the API" in done.stdout

    after = requests_seen(url, headers)
    made = {route: after.get(route, 0) - before.get(route, 0) for route in after}
    made = {route: count for route, count in made.items() if count}
    assert made.pop("/assign-task") == 1
    made.pop("/events", None)  # counted when the server notices the stream closed
    assert sum(made.values()) <= 3, made  # the task read when the stream opened and when it said "succeeded"


def test_a_wait_ends_at_its_timeout_on_a_quiet_stream(cluster):
    url = cluster.start("platform", "orchestrator,execution,models", free_port(), SCRIPTED_DELAY_S="30")
    started = time.monotonic()
    done = alp_cli("task", "submit", "Deploy the API with docker", "--wait", "--timeout", "2", "--url", url)
    assert done.returncode == 1 and "did not finish within 2 s" in done.stderr, done.stdout + done.stderr
    # Not at the stream's next keep-alive (15 s): a read blocked on the quiet stream ended at the deadline.
    assert time.monotonic() - started < 12
