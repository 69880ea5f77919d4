"""A small stdio MCP server for the CLI tests (the mcp SDK's server side; no npm needed).

It writes its own argv to ``$CLI_TEST_STATE/argv.json`` at start, so a test can check that secrets given
to ``routekit mcp add --env`` reached it through the environment and never through argv.
Run with ``--fail-start`` to exit at once with a message on stderr (a server that cannot start).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import AnyUrl


def build() -> MCPServer:
    server = MCPServer("cli-test-server", version="1.0")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def greet(name: str) -> str:
        """Greet someone by name."""
        return f"hello {name}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def fetch(url: AnyUrl, mode: Literal["text", "html"] = "text", limit: int = 10) -> str:
        """Fetch a URL (a schema with format, enum and defaults, for the loss report)."""
        return f"{mode}:{url}:{limit}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def secret_length() -> str:
        """The length of $CLI_TEST_SECRET (never its value)."""
        return str(len(os.environ.get("CLI_TEST_SECRET", "")))

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
    def remove_file(path: str) -> str:
        """Pretend to delete a file (destructive: the CLI asks before running it)."""
        return f"removed {path}"

    return server


def main() -> None:
    if "--fail-start" in sys.argv:
        print("fatal: cannot open the widget database", file=sys.stderr, flush=True)
        sys.exit(3)
    state = os.environ.get("CLI_TEST_STATE")
    if state:
        Path(state, "argv.json").write_text(json.dumps(sys.argv))
        Path(state, "env.json").write_text(json.dumps({"secret_length": len(os.environ.get("CLI_TEST_SECRET", ""))}))
    build().run("stdio")


if __name__ == "__main__":
    main()
