"""The platform as an MCP server, used with the official SDK's client: at /mcp on a running server
(streamable HTTP), and as `alp mcp` (stdio) in its own process talking to that server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters
from support import served

TOOLS = {"submit_task", "task_status", "task_steps", "search_knowledge", "list_agents"}


def data(result) -> object:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return content["result"] if isinstance(content, dict) and set(content) == {"result"} else content
    return json.loads(result.content[0].text)


async def test_mcp_clients_use_the_fleet_over_http_and_stdio(settings, provider):
    async with served(settings, provider) as live:
        async with Client(f"{live.base_url}/mcp/") as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
            agents = data(await client.call_tool("list_agents", {}))
            assert {"analyst", "general_assistant"} <= {a["id"] for a in agents}
            answer = data(
                await client.call_tool(
                    "submit_task", {"description": "Explain what a REST API is", "wait_seconds": 30}
                )
            )
            assert answer["status"] == "succeeded" and answer["result"].startswith(
                "answer to: Explain what a REST API"
            )
            status = data(await client.call_tool("task_status", {"task_id": answer["task_id"]}))
            assert status["result"] == answer["result"] and status["assigned_agent"]
            steps = data(await client.call_tool("task_steps", {"task_id": answer["task_id"]}))
            assert [s["kind"] for s in steps] == ["model"] and steps[0]["output"] == answer["result"]
            missing = await client.call_tool("task_status", {"task_id": "nope"})
            assert missing.is_error and "task_not_found" in missing.content[0].text

        alp = str(Path(sys.executable).with_name("alp"))
        stdio = StdioServerParameters(command=alp, args=["mcp", "--url", str(live.base_url)])
        async with Client(stdio) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
            answer = data(
                await client.call_tool(
                    "submit_task", {"description": "Write release notes for 1.2", "wait_seconds": 30}
                )
            )
            assert answer["status"] == "succeeded" and "release notes" in answer["result"]
    submitted = [c.messages[-1].content for c in provider.calls]
    assert "Explain what a REST API is" in submitted and "Write release notes for 1.2" in submitted
