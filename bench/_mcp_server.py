"""The MCP server ``bench.mcp`` measures against: two trivial tools on the mcp SDK's server side.

    python -m bench._mcp_server            # stdio
    python -m bench._mcp_server --http 8123  # streamable HTTP on 127.0.0.1:8123/mcp

The tools do no work, so what a benchmark sees is transport, protocol and client cost. Logging is at WARNING so
the server writes nothing per request (uvicorn's access log would otherwise add server time to every call).
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)


def build() -> MCPServer:
    server = MCPServer("bench-server", version="1.0", log_level="WARNING")

    @server.tool(annotations=READ_ONLY)
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool(annotations=READ_ONLY)
    def add(a: int, b: int) -> int:
        """Return a + b."""
        return a + b

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="routekit's benchmark MCP server")
    parser.add_argument("--http", type=int, default=None, metavar="PORT", help="serve streamable HTTP on this port")
    args = parser.parse_args()
    server = build()
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
