"""A real MCP server for the tests (official SDK): `python mcp_server.py stdio`, or
`python mcp_server.py http PORT KEY` (streamable HTTP on 127.0.0.1:PORT/mcp, every request needing
`X-Api-Key: KEY`)."""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.responses import JSONResponse

server = MCPServer("test-tools")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Upper-case a text.")
def shout(text: str) -> str:
    return text.upper() + "!"


@server.tool(description="Always fails.")
def explode() -> str:
    raise ToolError("the fuse was lit")


def keyed(app, key: str):
    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"x-api-key", b"").decode() != key:
            await JSONResponse({"error": "bad key"}, status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        port, key = int(sys.argv[2]), sys.argv[3]
        uvicorn.run(
            keyed(server.streamable_http_app(), key), host="127.0.0.1", port=port, log_level="warning"
        )
