"""An agent's MCP servers: a real MCP server process (tests/agents/mcp_server.py), over stdio and over
streamable HTTP with a header from the tenant's secrets store; its tools reach the model with the server's
schemas, permissions apply, errors come back as tool results."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from agentkit import make_agent
from embedded import embedded_app
from support import free_port, wait_for_status

SERVER = str(Path(__file__).with_name("mcp_server.py"))


async def submit(client, description: str, agent_id: str) -> dict:
    response = await client.post("/assign-task", json={"description": description, "agent_id": agent_id})
    assert response.status_code == 200, response.text
    return await wait_for_status(client, response.json()["task_id"], timeout=60)


async def tool_steps(client, task_id: str) -> list[dict]:
    return [
        s for s in (await client.get(f"/api/v2/actions/{task_id}")).json()["steps"] if s["kind"] == "tool"
    ]


async def test_a_stdio_mcp_servers_tools_are_offered_and_called(settings, caller):
    allowed = settings.model_copy(update={"mcp_stdio_commands": [sys.executable]})
    caller.script = [
        [("tools__add", {"a": 2, "b": 40}), ("tools__explode", {}), ("tools__shout", {"text": "hi"})]
    ]
    async with embedded_app(allowed, caller) as client:
        server = {"name": "tools", "command": [sys.executable, SERVER, "stdio"]}
        await make_agent(client, "mcp_user", ["mcp:tools/add", "mcp:tools/explode"], mcp_servers=[server])
        task = await submit(client, "Add two and forty", "mcp_user")
        steps = await tool_steps(client, task["task_id"])

    offered = {t["function"]["name"]: t["function"]["parameters"] for t in caller.calls[0].tools}
    assert set(offered) == {"tools__add", "tools__explode"}  # shout is not granted
    assert offered["tools__add"]["properties"]["a"]["type"] == "integer"  # the server's own schema
    add, explode, shout = steps
    assert add["status"] == "succeeded" and add["output"] == "42"
    assert (
        explode["status"] == "failed"
        and explode["error_kind"] == "misuse"
        and "the fuse was lit" in explode["error"]
    )
    assert shout["error_kind"] == "misuse" and "no tool named 'tools__shout'" in shout["error"]
    assert task["status"] == "succeeded" and "42" in task["result"]


async def test_stdio_commands_must_be_allowed_by_the_operator(aclient):
    body = {
        "id": "rogue",
        "name": "Rogue",
        "system_prompt": "x",
        "tools": ["mcp:sh"],
        "mcp_servers": [{"name": "sh", "command": ["/bin/sh", "-c", "echo hi"]}],
    }
    response = await aclient.post("/api/v2/agents", json=body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "mcp_command_not_allowed"


@pytest.fixture
def http_server():
    port = free_port()
    process = subprocess.Popen([sys.executable, SERVER, "http", str(port), "s3cret"])
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


async def test_a_streamable_http_mcp_server_with_a_header_from_the_secrets_store(
    settings, caller, http_server
):
    caller.script = [[("web__add", {"a": 1, "b": 2})]]
    async with embedded_app(settings, caller) as client:
        for name, value in (("tools_key", "s3cret"), ("wrong_key", "nope")):  # the tenant's secrets store
            assert (await client.put(f"/secrets/{name}", json={"value": value})).status_code == 200
        server = {"name": "web", "url": http_server, "headers": {"X-Api-Key": "tools_key"}}
        await make_agent(client, "web_user", ["mcp:web"], mcp_servers=[server])
        task = await submit(client, "Add one and two", "web_user")
        [step] = await tool_steps(client, task["task_id"])
        assert step["name"] == "web__add" and step["output"] == "3"
        assert {t["function"]["name"] for t in caller.calls[-2].tools} == {
            "web__add",
            "web__shout",
            "web__explode",
        }

        wrong = {"name": "web", "url": http_server, "headers": {"X-Api-Key": "wrong_key"}}
        await make_agent(client, "locked_out", ["mcp:web"], mcp_servers=[wrong])
        task = await submit(client, "Add one and two", "locked_out")
        assert (
            await tool_steps(client, task["task_id"]) == [] and caller.calls[-1].tools is None
        )  # none offered
        assert task["status"] == "succeeded"

        unknown = {"name": "web", "url": http_server, "headers": {"X-Api-Key": "absent"}}
        response = await client.post(
            "/api/v2/agents",
            json={
                "id": "x1",
                "name": "X1",
                "system_prompt": "x",
                "tools": ["mcp:web"],
                "mcp_servers": [unknown],
            },
        )
        assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_secret"
