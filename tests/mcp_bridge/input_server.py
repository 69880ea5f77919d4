"""An MCP server (the mcp SDK's server side, stdio) whose tools answer with 2026-07-28 ``InputRequiredResult``s.

* ``greet``: asks for the user's name (an elicitation), then greets them.
* ``wait(rounds)``: answers ``rounds`` times with only a ``request_state`` (a counter), then finishes.
* ``endless``: asks again on every round.
"""

from __future__ import annotations

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer

_NAME_SCHEMA: types.ElicitRequestedSchema = {"type": "object", "properties": {"name": {"type": "string"}}}


def _ask(message: str, state: str) -> types.InputRequiredResult:
    request = types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=_NAME_SCHEMA))
    return types.InputRequiredResult(input_requests={"name": request}, request_state=state)


def build() -> MCPServer:
    server = MCPServer("input-server", version="1.0")

    @server.tool()
    def greet(ctx: Context) -> str | types.InputRequiredResult:
        """Greet the user by name (asked for)."""
        answer = (ctx.input_responses or {}).get("name")
        if not isinstance(answer, types.ElicitResult) or answer.action != "accept" or not answer.content:
            return _ask("What is your name?", "asked")
        return f"hello {answer.content['name']} (state {ctx.request_state})"

    @server.tool()
    def wait(rounds: int, ctx: Context) -> str | types.InputRequiredResult:
        """Come back ``rounds`` times before answering."""
        done = int(ctx.request_state or 0)
        if done < rounds:
            return types.InputRequiredResult(request_state=str(done + 1))
        return f"done after {done} rounds"

    @server.tool()
    def endless(ctx: Context) -> types.InputRequiredResult:
        """Never satisfied."""
        return _ask("Again?", "again")

    return server


if __name__ == "__main__":
    build().run("stdio")
