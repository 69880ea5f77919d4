"""A small MCP server (on the mcp SDK's server side) that misbehaves on request, for the hub's fault tests.

Run: ``python fault_server.py [--http PORT] [--fail-start] [--garbage-banner] [--state DIR]``.
``--state DIR`` lets ``crash_once_*`` tools crash only on their first call across restarts (a marker file).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)
IDEMPOTENT = ToolAnnotations(idempotentHint=True, readOnlyHint=False)
WRITES = ToolAnnotations(readOnlyHint=False, idempotentHint=False, destructiveHint=True)


def build(state: Path | None) -> MCPServer:
    server = MCPServer("fault-server", version="1.0")

    @server.tool(annotations=READ_ONLY)
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool(annotations=READ_ONLY)
    def pid() -> str:
        """The server's process id (changes when the server restarts)."""
        return str(os.getpid())

    @server.tool(annotations=READ_ONLY)
    def env(name: str) -> str:
        """The value of one environment variable, or '<unset>'."""
        return os.environ.get(name, "<unset>")

    @server.tool(annotations=WRITES)
    async def hang(seconds: float = 3600.0) -> str:
        """Sleep (a tool that hangs)."""
        await anyio.sleep(seconds)
        return "woke up"

    @server.tool(annotations=WRITES)
    async def hang_until_cancelled(tag: str) -> str:
        """Hang; when the client cancels the call, leave a marker file `cancelled-<tag>` in the state dir."""
        try:
            await anyio.sleep(3600)
        except anyio.get_cancelled_exc_class():
            if state is not None:
                (state / f"cancelled-{tag}").write_text("1")
            raise
        return "not cancelled"

    @server.tool(annotations=READ_ONLY)
    async def slow(steps: int, ctx: Context) -> str:
        """Report progress `steps` times, then finish."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
            await anyio.sleep(0.01)
        return f"done after {steps} steps"

    @server.tool(annotations=READ_ONLY)
    def big(size: int) -> str:
        """A text of `size` bytes."""
        return "x" * size

    def crash_once(kind: str) -> str:
        marker = (state or Path("/nonexistent")) / f"crashed-{kind}"
        if state is not None and not marker.exists():
            marker.write_text("1")
            os._exit(17)
        return f"{kind} survived in {os.getpid()}"

    @server.tool(annotations=READ_ONLY)
    def crash_once_readonly() -> str:
        """Crash the whole server on the first call; succeed afterwards."""
        return crash_once("readonly")

    @server.tool(annotations=WRITES)
    def crash_once_write() -> str:
        """Crash the whole server on the first call (a tool with side effects)."""
        return crash_once("write")

    @server.tool(annotations=WRITES)
    def crash() -> str:
        """Crash the server every time."""
        os._exit(9)

    @server.tool(annotations=READ_ONLY)
    def garbage() -> str:
        """Write a non-JSON line to the stdio wire, then answer normally."""
        from mcp.server import stdio

        claim = stdio._claims.get(1)
        if claim is not None and claim.private_fd is not None:
            os.write(claim.private_fd, b"this is not JSON-RPC at all\n")
        return "answered after garbage"

    @server.tool(annotations=READ_ONLY)
    def fail(message: str) -> str:
        """Raise: the SDK turns it into an isError result."""
        raise ValueError(message)

    @server.resource("fault://greeting", mime_type="text/plain")
    def greeting() -> str:
        return "hello from the fault server"

    @server.prompt()
    def summarize(topic: str) -> str:
        """Ask for a summary."""
        return f"Summarize {topic} in one line."

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None)
    parser.add_argument("--fail-start", action="store_true")
    parser.add_argument("--garbage-banner", action="store_true")
    parser.add_argument("--start-once", action="store_true", help="refuse to start again after the first start")
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()
    if args.fail_start:
        print("fatal: FAULT_SERVER_TOKEN is not set; refusing to start", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.start_once and args.state is not None:
        marker = args.state / "started"
        if marker.exists():
            print("fatal: database is locked by a previous instance", file=sys.stderr, flush=True)
            sys.exit(4)
        marker.write_text("1")
    if args.garbage_banner:
        sys.stdout.write("Fault server v1 starting (this banner is not JSON)\n")
        sys.stdout.flush()
    server = build(args.state)
    if args.http is not None:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
