"""2026-07-28 multi-round tool calls (SEP-2322) through the hub (mcp_bridge.input_required), over real stdio
against a real server on the mcp SDK's server side (input_server.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest

from mcp_bridge import McpHub, parse_config
from mcp_bridge.callbacks import ElicitationRequest, ElicitationResponse

from .conftest import HERE

pytestmark = pytest.mark.anyio

SERVER = {"command": sys.executable, "args": [str(HERE / "input_server.py")]}


class Asked:
    def __init__(self) -> None:
        self.requests: list[ElicitationRequest] = []

    async def __call__(self, request: ElicitationRequest) -> ElicitationResponse:
        self.requests.append(request)
        return ElicitationResponse(action="accept", content={"name": "Ada"})


@pytest.fixture(scope="module")
def asked() -> Asked:
    return Asked()


@pytest.fixture(scope="module")
async def hub(asked: Asked) -> AsyncIterator[McpHub]:
    async with McpHub(parse_config({"mcpServers": {"in": SERVER}}), elicitation=asked) as hub:
        assert hub.status()["in"].protocol_version == "2026-07-28", hub.status()
        yield hub


async def test_an_input_request_is_answered_through_the_callback_and_the_call_retried(
    hub: McpHub, asked: Asked
) -> None:
    before = len(asked.requests)
    result = await hub.call_tool("in.greet", {})
    assert not result.is_error, result.text()
    assert result.text().startswith("hello Ada (state ")  # the opaque state came back with the answer
    [request] = asked.requests[before:]
    assert (request.server, request.mode, request.message) == ("in", "form", "What is your name?")


async def test_state_only_rounds_are_retried_until_the_answer(hub: McpHub) -> None:
    result = await hub.call_tool("in.wait", {"rounds": 3})
    assert not result.is_error, result.text()
    assert result.text() == "done after 3 rounds"


async def test_a_server_that_keeps_asking_is_given_up_after_ten_rounds(hub: McpHub, asked: Asked) -> None:
    before = len(asked.requests)
    result = await hub.call_tool("in.endless", {})
    assert result.is_error
    assert "10 rounds" in result.text()
    assert len(asked.requests) - before == 10


async def test_without_an_elicitation_handler_the_refusal_ends_the_call() -> None:
    async with McpHub(parse_config({"mcpServers": {"in": SERVER}})) as hub:
        result = await hub.call_tool("in.greet", {})
    assert result.is_error
    assert "rejected the call to 'in.greet'" in result.text()
