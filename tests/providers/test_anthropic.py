"""The Anthropic adapter against the fake Messages API, through the real anthropic SDK over HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import pytest
from opentelemetry import trace

from providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider, _assistant_blocks
from providers.base import Provider, ProviderConfig
from providers.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ContextTooLong,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
    Unavailable,
)
from providers.profiles import get_profile
from providers.schema import compile_tools
from providers.types import (
    ForceTool,
    ImagePart,
    Message,
    ModelRequest,
    ModelResponse,
    ResourcePart,
    ResponseDone,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingConfig,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallReady,
    ToolResultPart,
    ToolSpec,
    UsageReport,
)
from tests.fakes.anthropic import FakeAnthropicServer, InvalidRequest, validate_request
from tests.fakes.base import FakeToolCall, FakeTurn, FakeUsage, Fault
from tests.providers.conftest import TEST_KEYS, config_for, start_fake

KEY: str = TEST_KEYS["anthropic"] or ""
assert KEY
PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"

WEATHER = ToolSpec(
    name="weather.get_forecast",
    description="Weather for a city",
    input_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
CLOCK = ToolSpec(name="clock.now", description="Current time", input_schema={"type": "object", "properties": {}})


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeAnthropicServer]:
    # One server per module: stopping a ThreadingHTTPServer costs half a second of polling.
    fake = start_fake("anthropic")
    assert isinstance(fake, FakeAnthropicServer)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def server(shared_server: FakeAnthropicServer) -> FakeAnthropicServer:
    """The shared fake, reset to a clean script for each test."""
    with shared_server.lock:
        shared_server.turns.clear()
        shared_server.faults.clear()
        shared_server.requests.clear()
    shared_server.accepted_keys = None
    shared_server.models = ["fake-model-1", "fake-model-2", "claude-fake-3"]
    shared_server.stall_seconds = 5.0
    return shared_server


@pytest.fixture
async def provider(server: FakeAnthropicServer, make_provider: Callable[..., Provider]) -> AsyncIterator[Provider]:
    built = make_provider("anthropic", server)
    try:
        yield built
    finally:
        await built.aclose()


def wire_name(spec: ToolSpec, server: FakeAnthropicServer) -> str:
    """The provider-side name the adapter sent for ``spec`` in the last request (found by description)."""
    names = {tool.get("description"): tool["name"] for tool in server.requests[-1].json["tools"]}
    return str(names[spec.description])


async def collect(provider: Provider, request: ModelRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def stream_error(provider: Provider, request: ModelRequest) -> tuple[list[StreamEvent], ProviderError]:
    """The events that arrived before the stream failed, and the error it failed with."""
    events: list[StreamEvent] = []

    async def consume() -> None:
        async for event in provider.stream(request):
            events.append(event)

    with pytest.raises(ProviderError) as info:
        await consume()
    return events, info.value


def ask(text: str = "hi", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model="", messages=[Message.user(text)], **kwargs)


def assert_no_secret(error: BaseException) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert "SECRET" not in str(error)


# ---------------------------------------------------------------------------- plain calls


@pytest.mark.anyio
async def test_complete_text_maps_parameters_and_response(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="Hello there", usage=FakeUsage(input_tokens=12, output_tokens=3)))
    response = await provider.complete(
        ask(system="Be brief.", temperature=0.2, top_p=0.9, max_tokens=300, stop=["STOP"], metadata={"user_id": "u1"})
    )
    assert response.text == "Hello there"
    assert response.stop_reason == "end_turn"
    assert response.raw_stop_reason == "end_turn"
    assert response.provider == "anthropic"
    assert response.model == "fake-model-1"
    assert response.response_id is not None
    assert response.response_id.startswith("msg_fake_")
    assert response.request_id is not None
    assert response.request_id.startswith("req_fake_")
    assert response.usage.input_tokens == 12
    assert response.usage.output_tokens == 3
    sent = server.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["anthropic-version"]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json
    assert body["system"] == "Be brief."
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 300
    assert body["stop_sequences"] == ["STOP"]
    assert body["metadata"] == {"user_id": "u1"}
    assert body["model"] == "fake-model-1"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "stream" not in body
    assert "tools" not in body
    assert "tool_choice" not in body


@pytest.mark.anyio
async def test_max_tokens_defaults_and_sdk_retries_are_off(server: FakeAnthropicServer, provider: Provider) -> None:
    await provider.complete(ask())
    assert server.requests[-1].json["max_tokens"] == DEFAULT_MAX_TOKENS
    server.faults.append(Fault(status=500, message="boom"))
    with pytest.raises(Unavailable):
        await provider.complete(ask())
    assert len(server.requests) == 2  # one attempt only: routekit retries, not the SDK


@pytest.mark.anyio
async def test_stream_text_events(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="Streaming works fine", usage=FakeUsage(input_tokens=20, output_tokens=5)))
    events = await collect(provider, ask())
    assert server.requests[-1].json["stream"] is True
    assert isinstance(events[-1], ResponseDone)
    assert sum(isinstance(e, ResponseDone) for e in events) == 1
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    assert "".join(deltas) == "Streaming works fine"
    usages = [e.usage for e in events if isinstance(e, UsageReport)]
    assert usages[0].input_tokens == 20
    assert usages[0].output_tokens == 1
    assert usages[-1].output_tokens == 5  # message_delta: cumulative output
    done = events[-1].response
    assert done.text == "Streaming works fine"
    assert done.usage.output_tokens == 5
    assert done.request_id is not None
    assert done.response_id is not None


# ---------------------------------------------------------------------------- tools


@pytest.mark.anyio
async def test_complete_tool_round_trip(server: FakeAnthropicServer, provider: Provider) -> None:
    request = ask("weather in Paris?", tools=[WEATHER])
    first = await provider.complete(request)
    assert first.stop_reason == "tool_use"
    [call] = first.tool_calls
    assert call.name == "weather.get_forecast"  # canonical again
    assert call.arguments == {"city": "sample text"}
    sent_tool = server.requests[-1].json["tools"][0]
    assert sent_tool["name"] != WEATHER.name  # dots are not allowed by Anthropic's name rule
    assert sent_tool["input_schema"]["type"] == "object"
    assert sent_tool["description"] == "Weather for a city"

    result = ToolResultPart(call_id=call.id, name=call.name, content=[TextPart(text="21C and sunny")])
    follow_up = request.model_copy(
        update={"messages": [*request.messages, first.message, Message(role="tool", parts=[result])]}
    )
    final = await provider.complete(follow_up)
    assert final.text == "All done."
    messages = server.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "tool_use", "id": call.id, "name": sent_tool["name"], "input": {"city": "sample text"}}
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": [{"type": "text", "text": "21C and sunny"}]}
    ]


@pytest.mark.anyio
async def test_stream_tool_round_trip(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(
        FakeTurn(text="Let me check.", tool_calls=[FakeToolCall("weather_get", {"city": 'Paris "centre"', "days": 3})])
    )
    # The scripted call uses a name the toolset does not know: it comes back unchanged.
    events = await collect(provider, ask("weather?", tools=[WEATHER]))
    fragments = [e for e in events if isinstance(e, ToolCallDelta)]
    assert fragments[0].id is not None
    assert fragments[0].name == "weather_get"
    assert fragments[0].index == 0
    assert len([f for f in fragments if f.arguments_delta]) >= 3  # arguments arrive in pieces
    [ready] = [e for e in events if isinstance(e, ToolCallReady)]
    assert ready.call.arguments == {"city": 'Paris "centre"', "days": 3}
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.stop_reason == "tool_use"
    assert [type(p) for p in done.response.message.parts] == [TextPart, ToolCallPart]
    assert done.response.tool_calls[0] == ready.call

    # Default decision rule in a stream, then the tool result goes back and the answer streams.
    events = await collect(provider, ask("weather?", tools=[WEATHER]))
    call = events[-1].response.tool_calls[0]  # type: ignore[union-attr]
    assert call.name == WEATHER.name
    history = [
        Message.user("weather?"),
        events[-1].response.message,  # type: ignore[union-attr]
        Message(role="tool", parts=[ToolResultPart(call_id=call.id, name=call.name, content=[TextPart(text="9C")])]),
    ]
    events = await collect(provider, ModelRequest(model="", messages=history, tools=[WEATHER]))
    assert events[-1].response.text == "All done."  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_parallel_calls_and_rich_tool_results(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(
        FakeTurn(
            tool_calls=[
                FakeToolCall("weather_get_forecast", {"city": "Oslo"}, id="toolu_a"),
                FakeToolCall("clock_now", {}, id="toolu_b"),
                FakeToolCall("weather_get_forecast", {"city": "Rome"}, id="toolu_c"),
            ]
        )
    )
    events = await collect(provider, ask("three things", tools=[WEATHER, CLOCK]))
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert [c.id for c in ready] == ["toolu_a", "toolu_b", "toolu_c"]
    assert [c.arguments for c in ready] == [{"city": "Oslo"}, {}, {"city": "Rome"}]  # "" input means {}
    assert sorted({e.index for e in events if isinstance(e, ToolCallDelta)}) == [0, 1, 2]
    response = events[-1].response  # type: ignore[union-attr]

    results = [
        Message(
            role="tool",
            parts=[
                ToolResultPart(
                    call_id="toolu_a",
                    name=ready[0].name,
                    content=[TextPart(text="chart:"), ImagePart(data=PNG, media_type="image/png")],
                )
            ],
        ),
        Message(role="tool", parts=[ToolResultPart(call_id="toolu_b", name=ready[1].name, structured={"t": "12:00"})]),
        Message(
            role="tool",
            parts=[
                ToolResultPart(call_id="toolu_c", name=ready[2].name, content=[TextPart(text="no data")], is_error=True)
            ],
        ),
        Message.user("and summarise please"),
    ]
    final = await provider.complete(
        ModelRequest(
            model="", messages=[Message.user("three things"), response.message, *results], tools=[WEATHER, CLOCK]
        )
    )
    assert final.text == "All done."
    messages = server.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]  # results merged into ONE user turn
    blocks = messages[2]["content"]
    assert [b["type"] for b in blocks] == ["tool_result", "tool_result", "tool_result", "text"]
    assert blocks[0]["content"] == [
        {"type": "text", "text": "chart:"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
        },
    ]
    assert "is_error" not in blocks[0]
    assert blocks[1]["content"] == [{"type": "text", "text": '{"t": "12:00"}'}]
    assert blocks[2]["is_error"] is True
    assert blocks[3] == {"type": "text", "text": "and summarise please"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ("none", False, {"type": "none"}),
        (ForceTool(name=CLOCK.name), None, {"type": "tool", "name": "CLOCK"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
async def test_tool_choice(
    server: FakeAnthropicServer, provider: Provider, choice: Any, parallel: bool | None, expected: Any
) -> None:
    await provider.complete(ask(tools=[WEATHER, CLOCK], tool_choice=choice, parallel_tool_calls=parallel))
    body = server.requests[-1].json
    if expected is not None and expected.get("name") == "CLOCK":
        expected = {**expected, "name": wire_name(CLOCK, server)}
    assert body.get("tool_choice") == expected


@pytest.mark.anyio
async def test_tool_choice_is_not_sent_without_tools(server: FakeAnthropicServer, provider: Provider) -> None:
    await provider.complete(ask(tool_choice="required", parallel_tool_calls=False))
    assert "tool_choice" not in server.requests[-1].json


@pytest.mark.anyio
async def test_foreign_tool_call_ids_are_remapped(server: FakeAnthropicServer, provider: Provider) -> None:
    call = ToolCallPart(id="call.7:gemini/xyz", name=WEATHER.name, arguments={"city": "Lima"})
    history = [
        Message.user("weather?"),
        Message(role="assistant", parts=[call]),
        Message(role="tool", parts=[ToolResultPart(call_id=call.id, name=call.name, content=[TextPart(text="ok")])]),
    ]
    response = await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    assert response.text == "All done."
    messages = server.requests[-1].json["messages"]
    sent_id = messages[1]["content"][0]["id"]
    assert sent_id != call.id
    assert messages[2]["content"][0]["tool_use_id"] == sent_id


# ---------------------------------------------------------------------------- images


@pytest.mark.anyio
async def test_images_in_user_messages(server: FakeAnthropicServer, provider: Provider) -> None:
    message = Message.user(
        "what is this?",
        ImagePart(data=PNG, media_type="image/png"),
        ImagePart(url="https://example.com/cat.jpg", media_type="image/jpeg"),
    )
    message.parts.append(ResourcePart(uri="file:///notes.txt", name="notes", text="remember"))
    await provider.complete(ModelRequest(model="", messages=[message]))
    content = server.requests[-1].json["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    }
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert content[3]["type"] == "text"
    assert "remember" in content[3]["text"]


# ---------------------------------------------------------------------------- thinking


@pytest.mark.anyio
async def test_thinking_round_trip_sends_signed_blocks_back_first(
    server: FakeAnthropicServer, provider: Provider
) -> None:
    server.turns.append(
        FakeTurn(
            thinking="The user wants weather; call the tool.",
            thinking_signature="sig_ABC123",
            tool_calls=[FakeToolCall("weather_get_forecast", {"city": "Bern"}, id="toolu_t1")],
        )
    )
    request = ask("weather?", tools=[WEATHER], thinking=ThinkingConfig(budget_tokens=2000))
    events = await collect(provider, request)
    body = server.requests[-1].json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] > 2000
    assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == "The user wants weather; call the tool."
    response = events[-1].response  # type: ignore[union-attr]
    thinking = response.message.parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert thinking.signature == "sig_ABC123"
    assert thinking.provider == "anthropic"

    result = Message(role="tool", parts=[ToolResultPart(call_id="toolu_t1", name=WEATHER.name, content=[])])
    # A thinking part from another provider is not sent; this provider's is sent unchanged, first.
    assistant = response.message.model_copy(
        update={"parts": [ThinkingPart(text="foreign", signature="x", provider="gemini"), *response.message.parts]}
    )
    final = await provider.complete(request.model_copy(update={"messages": [*request.messages, assistant, result]}))
    assert final.text == "All done."
    content = server.requests[-1].json["messages"][1]["content"]
    assert content[0] == {
        "type": "thinking",
        "thinking": "The user wants weather; call the tool.",
        "signature": "sig_ABC123",
    }
    assert all(block.get("signature") != "x" for block in content)  # the foreign signature never goes back
    assert content[-1]["type"] == "tool_use"


@pytest.mark.anyio
async def test_thinking_is_required_back_by_the_fake(server: FakeAnthropicServer, provider: Provider) -> None:
    """Without this provider's signed thinking the continued tool turn is refused, as the real API does."""
    call = ToolCallPart(id="toolu_x", name=WEATHER.name, arguments={"city": "Oslo"})
    history = [
        Message.user("weather?"),
        Message(role="assistant", parts=[ThinkingPart(text="hmm", signature="s", provider="gemini"), call]),
        Message(role="tool", parts=[ToolResultPart(call_id="toolu_x", name=WEATHER.name)]),
    ]
    with pytest.raises(BadRequest, match="thinking"):
        await provider.complete(
            ModelRequest(model="", messages=history, tools=[WEATHER], thinking=ThinkingConfig(budget_tokens=1024))
        )


@pytest.mark.anyio
async def test_complete_thinking_and_redacted_thinking(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(thinking="pondering", thinking_signature="sig_1", text="42"))
    response = await provider.complete(ask(thinking=ThinkingConfig(effort="low"), max_tokens=8000))
    assert server.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert server.requests[-1].json["max_tokens"] == 8000
    assert response.message.parts[0] == ThinkingPart(text="pondering", signature="sig_1", provider="anthropic")
    assert response.text == "42"

    redacted = ThinkingPart(redacted_data="ENCRYPTED==", provider="anthropic")
    history = [Message.user("q"), Message(role="assistant", parts=[TextPart(text="a"), redacted])]
    history.append(Message.user("next"))
    await provider.complete(ModelRequest(model="", messages=history))
    assert server.requests[-1].json["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": "ENCRYPTED=="},
        {"type": "text", "text": "a"},
    ]
    assert "thinking" not in server.requests[-1].json


def test_assistant_blocks_keep_only_this_providers_signed_thinking_first() -> None:
    toolset = compile_tools([WEATHER], get_profile("anthropic"))
    parts: list[Any] = [
        TextPart(text="let me look"),
        ThinkingPart(text="unsigned", provider="anthropic"),
        ThinkingPart(text="foreign", signature="sig_other", provider="openai"),
        ThinkingPart(text="mine", signature="sig_mine", provider="anthropic"),
        ToolCallPart(id="toolu_1", name=WEATHER.name, arguments={"city": "Oslo"}),
        TextPart(text=""),
    ]
    blocks = _assistant_blocks(parts, toolset, "anthropic")
    assert blocks == [
        {"type": "thinking", "thinking": "mine", "signature": "sig_mine"},
        {"type": "text", "text": "let me look"},
        {"type": "tool_use", "id": "toolu_1", "name": toolset.provider_name(WEATHER.name), "input": {"city": "Oslo"}},
    ]


@pytest.mark.anyio
async def test_thinking_budget_fits_under_max_tokens(server: FakeAnthropicServer, provider: Provider) -> None:
    await provider.complete(ask(thinking=ThinkingConfig(budget_tokens=10000), max_tokens=5000))
    assert server.requests[-1].json["thinking"]["budget_tokens"] < 5000
    with pytest.raises(BadRequest, match="max_tokens"):
        await provider.complete(ask(thinking=ThinkingConfig(), max_tokens=500))


# ---------------------------------------------------------------------------- usage and stop reasons


CACHED = FakeUsage(input_tokens=100, output_tokens=20, cache_read_tokens=60, cache_write_tokens=10, reasoning_tokens=5)


@pytest.mark.anyio
async def test_usage_with_cache_and_reasoning(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="x", usage=CACHED))
    usage = (await provider.complete(ask())).usage
    assert (usage.input_tokens, usage.output_tokens) == (100, 20)  # 30 uncached + 60 read + 10 written
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (60, 10, 5)

    server.turns.append(FakeTurn(text="x", usage=CACHED))
    events = await collect(provider, ask())
    final = events[-1].response.usage  # type: ignore[union-attr]
    assert final == usage
    first = next(e.usage for e in events if isinstance(e, UsageReport))
    assert (first.input_tokens, first.cache_read_tokens, first.reasoning_tokens) == (100, 60, None)


@pytest.mark.anyio
async def test_missing_usage_is_unknown(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="x", usage=None))
    usage = (await provider.complete(ask())).usage
    assert usage.input_tokens is None
    assert usage.output_tokens is None
    assert usage.cache_read_tokens is None
    assert usage.cache_write_tokens is None
    assert usage.reasoning_tokens is None

    server.turns.append(FakeTurn(text="x", usage=None))
    events = await collect(provider, ask())
    assert not any(isinstance(e, UsageReport) for e in events)
    final = events[-1].response.usage  # type: ignore[union-attr]
    assert final.input_tokens is None
    assert final.output_tokens is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("pause_turn", "pause"),
        ("refusal", "refusal"),
        ("model_context_window_exceeded", "context_exceeded"),
        ("something_new", "other"),
    ],
)
async def test_stop_reasons(server: FakeAnthropicServer, provider: Provider, raw: str, expected: str) -> None:
    server.turns.append(FakeTurn(text="partial", stop=raw))
    response = await provider.complete(ask())
    assert (response.stop_reason, response.raw_stop_reason) == (expected, raw)
    server.turns.append(FakeTurn(text="partial", stop=raw))
    done = (await collect(provider, ask()))[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.stop_reason == expected


# ---------------------------------------------------------------------------- HTTP errors


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(status=400, message="messages.0: bad block"), BadRequest),
        (Fault(status=400, message="prompt is too long: 210000 tokens > 200000 maximum"), ContextTooLong),
        (Fault(status=413, message="Request exceeds the maximum allowed size"), ContextTooLong),
        (Fault(status=401, message=f"invalid x-api-key {KEY}"), AuthenticationError),
        (Fault(status=403, message="no access to this model"), PermissionDenied),
        (Fault(status=429, message="rate limited", headers={"retry-after": "7"}), RateLimited),
        (Fault(status=500, message="internal"), Unavailable),
        (Fault(status=503, message="unavailable"), Unavailable),
        (Fault(status=529, message="Overloaded"), Overloaded),
    ],
)
async def test_http_errors(
    server: FakeAnthropicServer, provider: Provider, fault: Fault, expected: type[ProviderError], streaming: bool
) -> None:
    server.faults.append(fault)
    call = collect(provider, ask()) if streaming else provider.complete(ask())
    with pytest.raises(ProviderError) as info:
        await call
    error = info.value
    assert type(error) is expected
    assert error.status_code == fault.status
    assert error.request_id is not None
    assert error.request_id.startswith("req_fake_")
    assert error.provider == "anthropic"
    assert error.model == "fake-model-1"
    assert_no_secret(error)
    if expected is RateLimited:
        assert error.retry_after == 7.0
        assert error.retryable


@pytest.mark.anyio
async def test_retry_after_ms_wins(server: FakeAnthropicServer, provider: Provider) -> None:
    server.faults.append(Fault(status=429, headers={"retry-after-ms": "1500", "retry-after": "9"}))
    with pytest.raises(RateLimited) as info:
        await provider.complete(ask())
    assert info.value.retry_after == 1.5


@pytest.mark.anyio
async def test_unknown_model_lists_available_models(server: FakeAnthropicServer, provider: Provider) -> None:
    with pytest.raises(ModelNotFound) as info:
        await provider.complete(ModelRequest(model="claude-nope", messages=[Message.user("hi")]))
    error = info.value
    assert error.status_code == 404
    assert error.available == server.models
    assert "fake-model-2" in str(error)
    assert "claude-nope" in str(error)
    assert server.requests[-1].path == "/v1/models"


@pytest.mark.anyio
async def test_timeout_before_headers(server: FakeAnthropicServer) -> None:
    provider = AnthropicProvider(config_for("anthropic", server, timeout=0.3))
    server.faults.append(Fault(delay=1.0))
    with pytest.raises(Timeout) as info:
        await provider.complete(ask())
    assert info.value.retryable
    assert_no_secret(info.value)
    await provider.aclose()


@pytest.mark.anyio
async def test_non_json_body(server: FakeAnthropicServer, provider: Provider) -> None:
    server.faults.append(Fault(non_json=True))
    with pytest.raises(Unavailable):
        await provider.complete(ask())


# ---------------------------------------------------------------------------- stream faults


def tool_turn() -> FakeTurn:
    # chunks: 0 message_start, 1 start text, 2 ping, 3-5 text deltas, 6 stop text,
    # 7 start tool, 8-12 json deltas, 13 stop tool, 14 message_delta, 15 message_stop
    return FakeTurn(
        text="Checking it", tool_calls=[FakeToolCall("weather_get_forecast", {"city": "Paris"}, id="toolu_p")]
    )


def assert_partial(error: ProviderError, *, text: str, calls: int) -> ModelResponse:
    partial = error.partial
    assert partial is not None
    assert partial.text == text
    assert len(partial.tool_calls) == calls
    assert partial.usage.input_tokens == 42  # message_start arrived
    assert partial.provider == "anthropic"
    assert partial.response_id is not None
    assert error.partial_usage == partial.usage
    return partial


@pytest.mark.anyio
async def test_clean_early_end_raises_stream_interrupted(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(tool_turn())
    server.faults.append(Fault(end_after=14))  # everything up to the tool's stop, no message_delta/stop
    events, error = await stream_error(provider, ask(tools=[WEATHER]))
    assert type(error) is StreamInterrupted
    assert not any(isinstance(e, ResponseDone) for e in events)
    partial = assert_partial(error, text="Checking it", calls=1)
    assert partial.tool_calls[0].arguments == {"city": "Paris"}
    assert partial.usage.output_tokens == 1  # only message_start's count was seen
    assert_no_secret(error)


@pytest.mark.anyio
async def test_connection_reset_mid_stream(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(tool_turn())
    server.faults.append(Fault(reset_after=10))  # inside the tool's arguments
    events, error = await stream_error(provider, ask(tools=[WEATHER]))
    assert type(error) is StreamInterrupted
    assert error.retryable
    assert any(isinstance(e, ToolCallDelta) for e in events)
    assert_partial(error, text="Checking it", calls=0)  # the unfinished call is not in the partial


@pytest.mark.anyio
async def test_corrupt_chunk(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(tool_turn())
    server.faults.append(Fault(corrupt_at=4))
    _, error = await stream_error(provider, ask(tools=[WEATHER]))
    assert type(error) is StreamInterrupted
    assert "JSON" in str(error)
    assert_partial(error, text="Chec", calls=0)


@pytest.mark.anyio
async def test_stall_mid_stream_times_out(server: FakeAnthropicServer) -> None:
    provider = AnthropicProvider(config_for("anthropic", server, timeout=0.5))
    server.stall_seconds = 2.0
    server.turns.append(tool_turn())
    server.faults.append(Fault(stall_after=7))
    _, error = await stream_error(provider, ask(tools=[WEATHER]))
    assert type(error) is Timeout
    assert_partial(error, text="Checking it", calls=0)
    await provider.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("overloaded_error", Overloaded),
        ("rate_limit_error", RateLimited),
        ("api_error", Unavailable),
        ("invalid_request_error", BadRequest),
        ("mystery_error", StreamInterrupted),
    ],
)
async def test_error_event_mid_stream(
    server: FakeAnthropicServer, provider: Provider, error_type: str, expected: type[ProviderError]
) -> None:
    server.turns.append(tool_turn())
    server.faults.append(Fault(error_event_at=14, error_type=error_type, message="Overloaded"))
    _, error = await stream_error(provider, ask(tools=[WEATHER]))
    assert type(error) is expected
    assert error_type in str(error)
    assert_partial(error, text="Checking it", calls=1)


@pytest.mark.anyio
async def test_consumer_stopping_early_closes_the_stream(server: FakeAnthropicServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="a long answer that the consumer abandons"))
    agen = provider.stream(ask())
    first = await agen.__anext__()
    assert isinstance(first, UsageReport)
    await agen.aclose()  # type: ignore[attr-defined]
    assert (await provider.complete(ask())).text == "All done."


# ---------------------------------------------------------------------------- models, check, config


@pytest.mark.anyio
async def test_list_models(server: FakeAnthropicServer, provider: Provider) -> None:
    models = await provider.list_models()
    assert [m.id for m in models] == server.models
    assert models[0].provider == "anthropic"
    assert models[0].context_window == 200000
    assert models[0].max_output_tokens == 64000
    assert models[0].display_name


@pytest.mark.anyio
async def test_check_good_and_bad_key(server: FakeAnthropicServer) -> None:
    server.accepted_keys = {KEY}
    good = AnthropicProvider(config_for("anthropic", server))
    result = await good.check()
    assert result.ok
    assert result.models_visible == len(server.models)
    bad_key = "sk-ant-wrong-key-0123456789SECRET"
    bad = AnthropicProvider(config_for("anthropic", server, api_key=bad_key))
    result = await bad.check()
    assert not result.ok
    assert "key" in result.detail.lower()
    assert bad_key not in result.detail
    with pytest.raises(AuthenticationError) as info:
        await bad.complete(ask())
    assert bad_key not in str(info.value)
    await good.aclose()
    await bad.aclose()


def test_missing_key_names_the_env_var(server: FakeAnthropicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    config = ProviderConfig(provider="anthropic", base_url=server.origin, default_model="fake-model-1")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider(config)


def test_repr_hides_the_key(server: FakeAnthropicServer) -> None:
    provider = AnthropicProvider(config_for("anthropic", server))
    assert KEY not in repr(provider)
    assert KEY not in repr(provider.config)


# ---------------------------------------------------------------------------- the fake's own validation


@pytest.mark.anyio
async def test_fake_refuses_what_the_api_refuses(server: FakeAnthropicServer) -> None:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.origin, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model="fake-model-1",
            max_tokens=10,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": "no result here"},
            ],
        )
    assert info.value.type == "invalid_request_error"
    assert "tool_result" in str(info.value.api_message)
    await client.close()


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        (_body(messages=[{"role": "assistant", "content": "hi"}]), "first message"),
        (_body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]), "alternate"),
        (_body(tools=[{"name": "bad.name", "input_schema": {"type": "object"}}]), "pattern"),
        (_body(tools=[{"name": "ok", "input_schema": {"type": "array"}}]), "input_schema.type"),
        (_body(tool_choice={"type": "auto"}), "tool_choice"),
        (
            _body(
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "bad id", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "bad id"}]},
                ]
            ),
            "tool_use.id",
        ),
        (
            _body(
                messages=[
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "orphan"}]},
                ]
            ),
            "unexpected `tool_use_id`",
        ),
        (_body(thinking={"type": "enabled", "budget_tokens": 2000}), "max_tokens"),
        (_body(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]), "non-empty"),
    ],
)
def test_fake_validation_rules(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment.replace(".", r"\.").replace("`", ".")):
        validate_request(body)


# ---------------------------------------------------------------------------- the JSON path and the typed path

# Headers that differ between any two requests of one client (per-request ids and counters), and the SDK's note
# of how its caller reads the answer (the typed path reads it raw, for the request id header).
_PER_REQUEST_HEADERS = {
    "x-stainless-retry-count",
    "x-stainless-read-timeout",
    "idempotency-key",
    "content-length",
    "x-stainless-raw-response",
}


def _comparable(request: Any) -> tuple[dict[str, Any], dict[str, str]]:
    body = dict(request.json)
    body.pop("model")
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in _PER_REQUEST_HEADERS}
    return body, headers


class _CountingTracer(trace.NoOpTracer):
    """A tracer whose spans are counted: proof that a request went through the SDK's traced (typed) path."""

    def __init__(self) -> None:
        self.spans: list[str] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans.append(name)
        return super().start_span(name, *args, **kwargs)


class _AppTracerProvider(trace.TracerProvider):
    """What an application that configured OpenTelemetry has as its global provider."""

    def __init__(self) -> None:
        self.tracer = _CountingTracer()

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return self.tracer


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
async def test_json_path_sends_what_messages_create_sends(
    server: FakeAnthropicServer, provider: Provider, streaming: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """complete() and stream() read the body as JSON through the SDK's generic post; the request must be the
    one messages.create builds (compared with the typed path, which a configured OpenTelemetry selects)."""
    server.turns.extend(
        [FakeTurn(tool_calls=[FakeToolCall("weather.get_forecast", {"city": "Oslo"})]) for _ in range(2)]
    )
    responses: list[ModelResponse] = []
    app_tracing = _AppTracerProvider()
    for traced in (False, True):
        if traced:
            monkeypatch.setattr(trace, "get_tracer_provider", lambda: app_tracing)
        request = ModelRequest(
            model="fake-model-1",
            messages=[Message.user("hi")],
            tools=[WEATHER],
            system="S",
            temperature=0.5,
            metadata={"user_id": "u"},
        )
        if streaming:
            [done] = [e for e in await collect(provider, request) if isinstance(e, ResponseDone)]
            responses.append(done.response)
        else:
            responses.append(await provider.complete(request))
        # The JSON path makes no SDK span; the typed path makes one.
        assert len(app_tracing.tracer.spans) == int(traced)
    json_path, typed_path = server.requests[-2:]
    assert _comparable(json_path) == _comparable(typed_path)
    assert (json_path.json.get("stream") is True) is streaming
    # And both paths read the response alike.
    first, second = (r.model_copy(update={"model": "", "response_id": None, "request_id": None}) for r in responses)
    assert first.message.tool_calls[0].arguments == second.message.tool_calls[0].arguments == {"city": "Oslo"}
    assert first.usage == second.usage
    assert first.stop_reason == second.stop_reason == "tool_use"
    assert responses[0].request_id is not None
    assert responses[0].request_id.startswith("req_fake_")


@pytest.mark.anyio
async def test_long_generations_are_made_as_streams(server: FakeAnthropicServer, provider: Provider) -> None:
    """A non-streaming request the SDK would refuse as too long (over 10 minutes at its rate) is streamed."""
    server.turns.extend([FakeTurn(text="short"), FakeTurn(text="long")])
    short = await provider.complete(ask(max_tokens=4_000))
    long = await provider.complete(ask(max_tokens=64_000))
    assert (short.text, long.text) == ("short", "long")
    assert "stream" not in server.requests[-2].json
    assert server.requests[-1].json["stream"] is True
    assert server.requests[-1].json["max_tokens"] == 64_000


@pytest.mark.anyio
async def test_complete_on_a_body_that_is_not_a_message(server: FakeAnthropicServer, provider: Provider) -> None:
    server.faults.append(Fault(non_json=True))
    with pytest.raises(Unavailable, match="check base_url") as caught:
        await provider.complete(ask())
    assert_no_secret(caught.value)
