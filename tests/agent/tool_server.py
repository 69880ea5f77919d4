"""A small stdio MCP server for the agent tests (on the mcp SDK's server side).

Every invocation is appended to the file named by ``$AGENT_TOOL_LOG`` (one JSON line per call), so tests can
check that a call ran, with which arguments, and that a resumed session did not repeat it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False)
PLAIN = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)


def log(tool: str, **arguments: object) -> None:
    path = os.environ.get("AGENT_TOOL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


server = MCPServer("agent-test-server", version="1.0")


@server.tool(annotations=READ_ONLY)
def add(a: int, b: int) -> str:
    """Add two integers."""
    log("add", a=a, b=b)
    return str(a + b)


@server.tool(annotations=READ_ONLY)
def fail(message: str) -> str:
    """Always fails with the message."""
    log("fail", message=message)
    raise ValueError(message)


@server.tool(annotations=DESTRUCTIVE)
def delete_item(name: str) -> str:
    """Delete an item (destructive: asks for approval by default)."""
    log("delete_item", name=name)
    return f"deleted {name}"


@server.tool(annotations=PLAIN)
async def wait_for(path: str) -> str:
    """Block until the file at `path` exists (not idempotent)."""
    log("wait_for", path=path)
    while not Path(path).exists():
        await anyio.sleep(0.02)
    return f"{path} appeared"


@server.tool(annotations=READ_ONLY)
async def wait_for_ro(path: str) -> str:
    """Block until the file at `path` exists (read-only: safe to repeat)."""
    log("wait_for_ro", path=path)
    while not Path(path).exists():
        await anyio.sleep(0.02)
    return f"{path} appeared (read-only)"


@server.tool(annotations=READ_ONLY)
async def slow(steps: int, ctx: Context) -> str:
    """Report progress `steps` times, then finish."""
    log("slow", steps=steps)
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
        await anyio.sleep(0.01)
    return f"done after {steps} steps"


if __name__ == "__main__":
    server.run("stdio")
