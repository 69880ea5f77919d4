"""A stdio MCP server (the mcp SDK's server side) offering one tool whose input schema no provider can express:
a ``$ref`` that points at nothing. For the CLI's error handling (``ToolSchemaError`` must not be a traceback)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools.base import Tool

BROKEN_SCHEMA = {"type": "object", "properties": {"target": {"$ref": "#/$defs/missing"}}}


def lookup(target: str) -> str:
    """Look something up (its declared schema is broken on purpose)."""
    return target


def main() -> None:
    tool = Tool.from_function(lookup).model_copy(update={"parameters": BROKEN_SCHEMA})
    MCPServer("bad-schema-server", version="1.0", tools=[tool]).run("stdio")


if __name__ == "__main__":
    main()
