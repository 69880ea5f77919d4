"""Conversations survive a switch of provider mid-way.

For every ordered pair of provider wires (4 x 4), a conversation whose tool call was made on the
first provider (streamed, with that provider's ids, thinking and signatures) continues on the second.
Each fake validates requests the way its real API does (tool-call id rules, call/result pairing,
Gemini 3 thought signatures, name rules) and answers 400 otherwise, so a passing test means every
request was valid for its target.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from providers.base import create_provider
from providers.profiles import get_profile
from providers.schema import compile_tools
from providers.types import (
    Message,
    ModelRequest,
    ResponseDone,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolSpec,
)
from tests.fakes.base import FakeProviderServer, FakeToolCall, FakeTurn
from tests.providers.conftest import FAKE_CLASSES, config_for, start_fake

FAMILIES = sorted(FAKE_CLASSES)

WEATHER = ToolSpec(
    name="weather-server.get_weather",  # dotted canonical MCP name: illegal for OpenAI/Anthropic as is
    description="Current weather for a city.",
    input_schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
)

# A model name that makes the Gemini fake enforce Gemini 3's thought-signature rule.
MODEL_FOR = {"gemini": "gemini-3-pro-preview"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeProviderServer]]:
    started = {family: start_fake(family) for family in FAMILIES}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


def _wire_name(family: str) -> str:
    """The name the provider sees for WEATHER (the fake model must call the tool by that name)."""
    return compile_tools([WEATHER], get_profile(family)).provider_name(WEATHER.name)


def _first_turn(family: str) -> FakeTurn:
    """What the first provider says: thinking (where the wire has it), then a tool call."""
    call = FakeToolCall(name="", arguments={"city": "Paris"})
    turn = FakeTurn(tool_calls=[call])
    if family == "anthropic":
        turn.thinking, turn.thinking_signature = "The user wants weather.", "c2lnbmF0dXJlLWFudGhyb3BpYw=="
    if family == "gemini":
        call.signature = "Z2VtaW5pLXNpZ25hdHVyZQ=="
    return turn


@pytest.mark.anyio
@pytest.mark.parametrize(("first", "second"), list(itertools.product(FAMILIES, FAMILIES)))
async def test_tool_history_moves_between_providers(
    servers: dict[str, FakeProviderServer], first: str, second: str
) -> None:
    first_server, second_server = servers[first], servers[second]
    a = create_provider(config_for(first, first_server, default_model=MODEL_FOR.get(first, "fake-model-1")))
    b = create_provider(config_for(second, second_server, default_model=MODEL_FOR.get(second, "fake-model-1")))
    try:
        turn = _first_turn(first)
        turn.tool_calls[0].name = _wire_name(first)
        first_server.turns.append(turn)
        request = ModelRequest(
            model="",
            messages=[Message.user("What's the weather in Paris?")],
            tools=[WEATHER],
            system="You are terse.",
        )
        done = [event async for event in a.stream(request) if isinstance(event, ResponseDone)]
        assert len(done) == 1
        response = done[0].response
        calls = response.tool_calls
        assert len(calls) == 1, response
        assert calls[0].name == WEATHER.name, "the provider-side name must map back to the canonical name"
        assert calls[0].arguments == {"city": "Paris"}

        history = [
            *request.messages,
            response.message,
            Message(
                role="tool",
                parts=[ToolResultPart(call_id=calls[0].id, name=calls[0].name, content=[TextPart(text="21C, sunny")])],
            ),
        ]
        before = len(second_server.requests)
        second_server.turns.append(FakeTurn(text="It is 21C and sunny in Paris."))
        answer = await b.complete(request.model_copy(update={"messages": history}))
        assert answer.text == "It is 21C and sunny in Paris."
        assert len(second_server.requests) == before + 1

        # Same-provider thinking is echoed back; another provider's thinking never reaches the target.
        wire = str(second_server.requests[-1].body)
        had_thinking = any(isinstance(p, ThinkingPart) for p in response.message.parts)
        if first == "anthropic" and had_thinking:
            assert ("c2lnbmF0dXJlLWFudGhyb3BpYw==" in wire) == (second == "anthropic")
        if first == "gemini":
            assert ("Z2VtaW5pLXNpZ25hdHVyZQ==" in wire) == (second == "gemini")
        if second == "gemini" and first != "gemini":
            assert "skip_thought_signature_validator" in wire

        # And the conversation goes on: a second tool round on the second provider.
        follow = [*history, answer.message, Message.user("And in Rome?")]
        second_server.turns.append(
            FakeTurn(tool_calls=[FakeToolCall(name=_wire_name(second), arguments={"city": "Rome"})])
        )
        again = await b.complete(request.model_copy(update={"messages": follow}))
        assert [c.name for c in again.tool_calls] == [WEATHER.name]
    finally:
        await a.aclose()
        await b.aclose()
