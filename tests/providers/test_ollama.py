"""The Ollama adapter against the fake Ollama server, through the real ollama SDK over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from typing import Any

import anyio
import httpx
import pytest

from providers.base import Provider, ProviderConfig, create_provider
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
from providers.ollama import OllamaProvider
from providers.profiles import get_profile
from providers.schema import CompiledTool, compile_tools
from providers.types import (
    AudioPart,
    ForceTool,
    ImagePart,
    Message,
    ModelRequest,
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
from tests.fakes.base import FakeToolCall, FakeTurn, FakeUsage, Fault, RecordedRequest
from tests.fakes.ollama import FakeOllamaServer
from tests.providers.conftest import config_for, start_fake

pytestmark = pytest.mark.anyio

KEY = "ollama-hosted-key-0123456789SECRET"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16

WEATHER = ToolSpec(
    name="weather.get_forecast",  # canonical MCP name: "." is not allowed in Ollama-safe names
    description="Forecast for a city",
    input_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
CLOCK = ToolSpec(name="clock_now", description="Current time", input_schema={"type": "object", "properties": {}})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)


@pytest.fixture(scope="module")
def _shared_server() -> Iterator[FakeOllamaServer]:
    # One server per module: stopping a ThreadingHTTPServer costs its 0.5 s poll interval.
    fake = start_fake("ollama")
    assert isinstance(fake, FakeOllamaServer)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def server(_shared_server: FakeOllamaServer) -> FakeOllamaServer:
    """The shared fake, reset to a fresh state for each test."""
    fresh = FakeOllamaServer()
    fake = _shared_server
    with fake.lock:
        fake.turns.clear()
        fake.faults.clear()
        fake.requests.clear()
    fake.models = list(fresh.models)
    fake.api_key = fresh.api_key
    fake.split_tool_calls = fresh.split_tool_calls
    fake.omit_prompt_eval_count = fresh.omit_prompt_eval_count
    fake.corrupt_with_blank_line = fresh.corrupt_with_blank_line
    fake.stall_seconds = 3.0  # a stalled handler gives up soon after the client timed out
    return fake


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every test runs on both of the SDK client's transports (options.http_transport)."""
    return str(request.param)


@pytest.fixture
async def provider(
    server: FakeOllamaServer, make_provider: Callable[..., Provider], anyio_backend: str, transport: str
) -> AsyncIterator[Provider]:
    built = make_provider("ollama", server, options={"http_transport": transport})
    try:
        yield built
    finally:
        await built.aclose()


def ask(text: str = "hi", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model="fake-model-1", messages=[Message.user(text)], **kwargs)


def chat_requests(server: FakeOllamaServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path == "/api/chat"]


def last_body(server: FakeOllamaServer) -> dict[str, Any]:
    return chat_requests(server)[-1].json


async def collect(
    provider: Provider, request: ModelRequest, into: list[StreamEvent] | None = None
) -> list[StreamEvent]:
    events = into if into is not None else []
    async with aclosing(provider.stream(request)) as stream:  # type: ignore[type-var]
        async for event in stream:
            events.append(event)
    return events


async def call(provider: Provider, request: ModelRequest, *, streaming: bool) -> None:
    """One model call, streamed to the end or not."""
    if streaming:
        await collect(provider, request)
    else:
        await provider.complete(request)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- complete(): text and options


async def test_complete_text_puts_system_and_options_on_the_wire(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="Bonjour", usage=FakeUsage(input_tokens=31, output_tokens=4)))
    response = await provider.complete(
        ask("hello", system="Be brief.", temperature=0.3, top_p=0.9, max_tokens=64, stop=["END"])
    )
    body = last_body(server)
    assert body["model"] == "fake-model-1"
    assert body["stream"] is False
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    assert body["options"] == {"temperature": 0.3, "top_p": 0.9, "num_predict": 64, "stop": ["END"]}
    assert body["tools"] == []
    assert "think" not in body
    assert response.text == "Bonjour"
    assert response.stop_reason == "end_turn"
    assert response.raw_stop_reason == "stop"
    assert response.provider == "ollama"
    assert response.model == "fake-model-1"
    assert response.usage.input_tokens == 31
    assert response.usage.output_tokens == 4
    assert response.usage.cache_read_tokens is None
    assert response.usage.cache_write_tokens is None
    assert response.usage.reasoning_tokens is None


async def test_default_model_from_config_and_length_stop(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="cut", stop="length"))
    response = await provider.complete(ModelRequest(model="", messages=[Message.user("go on")]))
    assert last_body(server)["model"] == "fake-model-1"
    assert response.stop_reason == "max_tokens"
    assert response.raw_stop_reason == "length"


async def test_missing_usage_is_unknown_not_zero(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="ok", usage=None))
    response = await provider.complete(ask())
    assert response.usage.input_tokens is None
    assert response.usage.output_tokens is None
    assert not response.usage.known


async def test_fully_cached_prompt_leaves_input_tokens_unknown(provider: Provider, server: FakeOllamaServer) -> None:
    server.omit_prompt_eval_count = True
    server.turns.append(FakeTurn(text="ok", usage=FakeUsage(input_tokens=50, output_tokens=7)))
    response = await provider.complete(ask())
    assert response.usage.input_tokens is None
    assert response.usage.output_tokens == 7
    events = await collect(provider, ask())
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.usage.input_tokens is None
    assert events[-1].response.usage.output_tokens == 9


async def test_thinking_request_and_response(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="42", thinking="6 times 7"))
    response = await provider.complete(ask(thinking=ThinkingConfig()))
    assert last_body(server)["think"] is True
    assert isinstance(response.message.parts[0], ThinkingPart)
    assert response.message.parts[0].text == "6 times 7"
    assert response.message.parts[0].provider == "ollama"
    assert response.text == "42"

    await provider.complete(ask(thinking=ThinkingConfig(effort="high")))
    assert last_body(server)["think"] == "high"
    await provider.complete(ask(thinking=ThinkingConfig(enabled=False)))
    assert last_body(server)["think"] is False


async def test_history_thinking_and_text_go_back_on_the_assistant_message(
    provider: Provider, server: FakeOllamaServer
) -> None:
    history = [
        Message.user("q1"),
        Message(role="assistant", parts=[ThinkingPart(text="hmm", provider="ollama"), TextPart(text="a1")]),
        Message.user("q2"),
    ]
    await provider.complete(ModelRequest(model="fake-model-1", messages=history))
    assert last_body(server)["messages"][1] == {"role": "assistant", "content": "a1", "thinking": "hmm"}


# ---------------------------------------------------------------------------- tools


async def test_tool_round_trip_non_streaming(provider: Provider, server: FakeOllamaServer) -> None:
    first = await provider.complete(ask("weather in Paris?", tools=[WEATHER, CLOCK]))
    body = last_body(server)
    wire_names = [t["function"]["name"] for t in body["tools"]]
    assert all(t["type"] == "function" for t in body["tools"])
    assert wire_names[1] == "clock_now"
    assert "." not in wire_names[0]
    assert body["tools"][0]["function"]["parameters"] == compiled(WEATHER).parameters
    assert body["tools"][0]["function"]["description"] == "Forecast for a city"

    assert first.stop_reason == "tool_use"
    assert first.raw_stop_reason == "stop"
    [call] = first.tool_calls
    assert call.name == "weather.get_forecast"  # mapped back to the canonical name
    assert call.arguments == {"city": "x"}
    assert call.id

    result = ToolResultPart(call_id=call.id, name=call.name, content=[TextPart(text="21C, sunny")])
    second = await provider.complete(
        ModelRequest(
            model="fake-model-1",
            messages=[Message.user("weather in Paris?"), first.message, Message(role="tool", parts=[result])],
            tools=[WEATHER, CLOCK],
        )
    )
    messages = last_body(server)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "tool_calls": [{"function": {"name": wire_names[0], "arguments": {"city": "x"}}}],
    }
    assert messages[2] == {"role": "tool", "content": "21C, sunny", "tool_name": wire_names[0]}
    assert second.text == "The tool said: 21C, sunny"
    assert second.stop_reason == "end_turn"


async def test_nested_schemas_reach_the_wire_intact(provider: Provider, server: FakeOllamaServer) -> None:
    """The SDK's Tool model would drop nested properties (ollama-python#429); the adapter must not."""
    nested = {
        "type": "object",
        "properties": {
            "filter": {
                "type": "object",
                "properties": {
                    "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}
                },
                "required": ["tags"],
            },
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
        },
        "required": ["filter"],
    }
    tool = ToolSpec(name="search", description="Search", input_schema=nested)
    await provider.complete(ask(tools=[tool]))
    sent = last_body(server)["tools"][0]["function"]["parameters"]
    assert sent == compiled(tool).parameters
    inner = sent["properties"]["filter"]
    assert inner["required"] == ["tags"]
    assert inner["properties"]["tags"]["items"]["properties"]["k"] == {"type": "string"}
    assert sent["properties"]["mode"]["enum"] == ["a", "b"]


async def test_parallel_calls_of_the_same_tool_stay_distinct(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(
        FakeTurn(
            tool_calls=[
                FakeToolCall(name="clock_now", arguments={"tz": "UTC"}),
                FakeToolCall(name="clock_now", arguments={"tz": "CET"}),
            ]
        )
    )
    response = await provider.complete(ask(tools=[CLOCK]))
    calls = response.tool_calls
    assert [c.arguments["tz"] for c in calls] == ["UTC", "CET"]
    assert calls[0].id != calls[1].id
    assert response.stop_reason == "tool_use"


async def test_tool_results_are_sent_in_call_order_with_error_flag_in_content(
    provider: Provider, server: FakeOllamaServer
) -> None:
    calls = [
        ToolCallPart(id="call_a", name="weather.get_forecast", arguments={"city": "Oslo"}),
        ToolCallPart(id="call_b", name="clock_now", arguments={}),
    ]
    results = [  # answered in the opposite order
        ToolResultPart(call_id="call_b", name="clock_now", content=[TextPart(text="12:00")]),
        ToolResultPart(
            call_id="call_a", name="weather.get_forecast", content=[TextPart(text="no data")], is_error=True
        ),
    ]
    history = [Message.user("both"), Message(role="assistant", parts=calls), Message(role="tool", parts=results)]
    await provider.complete(ModelRequest(model="fake-model-1", messages=history, tools=[WEATHER, CLOCK]))
    messages = last_body(server)["messages"]
    weather_name = last_body(server)["tools"][0]["function"]["name"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[2] == {"role": "tool", "content": "Error: no data", "tool_name": weather_name}
    assert messages[3] == {"role": "tool", "content": "12:00", "tool_name": "clock_now"}


async def test_tool_result_image_becomes_text(provider: Provider, server: FakeOllamaServer) -> None:
    call = ToolCallPart(id="call_1", name="clock_now", arguments={})
    result = ToolResultPart(
        call_id="call_1",
        name="clock_now",
        content=[TextPart(text="chart:"), ImagePart(data=PNG, media_type="image/png")],
    )
    history = [Message.user("x"), Message(role="assistant", parts=[call]), Message(role="tool", parts=[result])]
    await provider.complete(ModelRequest(model="fake-model-1", messages=history, tools=[CLOCK]))
    tool_message = last_body(server)["messages"][2]
    assert tool_message["content"].startswith("chart:\n[image image/png")
    assert "images" not in tool_message


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", ["weather.get_forecast", "clock_now"]),
        ("required", ["weather.get_forecast", "clock_now"]),  # Ollama cannot force a call: every tool stays
        ("none", []),
        (ForceTool(name="clock_now"), ["clock_now"]),
    ],
)
async def test_tool_choice_variants(
    provider: Provider, server: FakeOllamaServer, choice: Any, expected: list[str]
) -> None:
    server.turns.append(FakeTurn(text="ok"))
    await provider.complete(ask(tools=[WEATHER, CLOCK], tool_choice=choice, parallel_tool_calls=False))
    body = last_body(server)
    wire = {server_name_for(WEATHER): WEATHER.name, "clock_now": "clock_now"}
    assert [wire[t["function"]["name"]] for t in body["tools"]] == expected
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


async def test_forcing_a_tool_that_is_not_offered_is_a_bad_request(
    provider: Provider, server: FakeOllamaServer
) -> None:
    with pytest.raises(BadRequest, match="nope"):
        await provider.complete(ask(tools=[CLOCK], tool_choice=ForceTool(name="nope")))
    assert chat_requests(server) == []


# ---------------------------------------------------------------------------- images


async def test_images_go_inline_as_base64(provider: Provider, server: FakeOllamaServer) -> None:
    await provider.complete(
        ModelRequest(model="fake-model-1", messages=[Message.user("what is this?", ImagePart(data=PNG))])
    )
    [user] = last_body(server)["messages"]
    assert user["content"] == "what is this?"
    assert user["images"] == [base64.b64encode(PNG).decode()]


async def test_image_urls_are_refused_without_fetching(provider: Provider, server: FakeOllamaServer) -> None:
    request = ModelRequest(
        model="fake-model-1", messages=[Message.user("look", ImagePart(url="https://example.com/cat.png"))]
    )
    with pytest.raises(BadRequest, match=r"only as inline bytes.*example\.com/cat\.png"):
        await provider.complete(request)
    assert chat_requests(server) == []


async def test_audio_input_is_refused(provider: Provider, server: FakeOllamaServer) -> None:
    message = Message(role="user", parts=[TextPart(text="listen"), AudioPart(data=b"RIFF0000")])
    with pytest.raises(BadRequest, match="audio"):
        await provider.complete(ModelRequest(model="fake-model-1", messages=[message]))
    assert chat_requests(server) == []


# ---------------------------------------------------------------------------- stream()


async def test_stream_text_events_usage_and_done(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="Hello there, world", thinking="think first"))
    events = await collect(provider, ask(system="sys"))
    assert last_body(server)["stream"] is True
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert thinking == "think first"
    assert text == "Hello there, world"
    assert sum(isinstance(e, TextDelta) for e in events) == 3  # the fake splits the text into 3 lines
    usage_reports = [e for e in events if isinstance(e, UsageReport)]
    assert len(usage_reports) == 1
    assert usage_reports[0].usage.input_tokens == 42
    assert usage_reports[0].usage.output_tokens == 9
    done = [e for e in events if isinstance(e, ResponseDone)]
    assert len(done) == 1
    assert events[-1] is done[0]
    response = done[0].response
    assert response.text == "Hello there, world"
    assert isinstance(response.message.parts[0], ThinkingPart)
    assert response.stop_reason == "end_turn"
    assert response.usage.input_tokens == 42


async def test_stream_content_type_is_ndjson(server: FakeOllamaServer) -> None:
    async with httpx.AsyncClient(base_url=server.origin) as client:
        reply = await client.post(
            "/api/chat", json={"model": "fake-model-1", "messages": [{"role": "user", "content": "x"}]}
        )
    assert reply.headers["content-type"] == "application/x-ndjson"
    lines = reply.text.split("\n")
    assert lines[-1] == ""
    assert all(line for line in lines[:-1])  # no blank lines inside the stream


@pytest.mark.parametrize("split", [False, True])
async def test_stream_parallel_tool_calls(provider: Provider, server: FakeOllamaServer, split: bool) -> None:
    server.split_tool_calls = split
    server.turns.append(
        FakeTurn(
            tool_calls=[
                FakeToolCall(name="clock_now", arguments={"tz": "UTC"}),
                FakeToolCall(name="clock_now", arguments={"tz": "UTC"}),  # identical and id-less: still two calls
                FakeToolCall(name=server_name_for(WEATHER), arguments={"city": "Rome"}),
            ]
        )
    )
    events = await collect(provider, ask(tools=[WEATHER, CLOCK]))
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [c.name for c in ready] == ["clock_now", "clock_now", "weather.get_forecast"]
    assert [d.index for d in deltas] == [0, 1, 2]
    assert len({c.id for c in ready}) == 3
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.stop_reason == "tool_use"
    assert [c.id for c in done.response.tool_calls] == [c.id for c in ready]
    assert done.response.tool_calls[2].arguments == {"city": "Rome"}


def compiled(spec: ToolSpec) -> CompiledTool:
    [tool] = compile_tools([spec], get_profile("ollama")).tools
    return tool


def server_name_for(spec: ToolSpec) -> str:
    return compiled(spec).name


async def test_stream_tool_round_trip(provider: Provider, server: FakeOllamaServer) -> None:
    events = await collect(provider, ask("weather?", tools=[WEATHER]))
    done = events[-1]
    assert isinstance(done, ResponseDone)
    [call] = done.response.tool_calls
    result = ToolResultPart(call_id=call.id, name=call.name, content=[TextPart(text="sunny")])
    history = [Message.user("weather?"), done.response.message, Message(role="tool", parts=[result])]
    events = await collect(provider, ModelRequest(model="fake-model-1", messages=history, tools=[WEATHER]))
    final = events[-1]
    assert isinstance(final, ResponseDone)
    assert final.response.text == "The tool said: sunny"
    assert last_body(server)["messages"][2]["tool_name"] == server_name_for(WEATHER)


async def test_consumer_stopping_early_closes_the_stream(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="a long answer in pieces"))
    async with aclosing(provider.stream(ask())) as stream:  # type: ignore[type-var]
        async for event in stream:
            assert isinstance(event, TextDelta)
            break
    server.turns.append(FakeTurn(text="next"))
    assert (await provider.complete(ask())).text == "next"


# ---------------------------------------------------------------------------- broken streams


async def test_clean_early_end_raises_stream_interrupted_with_partial(
    provider: Provider, server: FakeOllamaServer
) -> None:
    server.turns.append(FakeTurn(text="abcdefghi"))
    server.faults.append(Fault(end_after=2))  # two text lines, then a clean end without done:true
    events: list[StreamEvent] = []
    with pytest.raises(StreamInterrupted) as info:
        await collect(provider, ask(), events)
    partial = info.value.partial
    assert partial is not None
    assert partial.text == "abcdef"
    assert partial.usage.input_tokens is None
    assert not any(isinstance(e, ResponseDone) for e in events)


async def test_early_end_after_tool_calls_keeps_the_calls(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="x", tool_calls=[FakeToolCall(name="clock_now", arguments={"a": 1})]))
    server.faults.append(Fault(end_after=2))  # "x" line, tool-call line, then no done line
    with pytest.raises(StreamInterrupted) as info:
        await collect(provider, ask(tools=[CLOCK]))
    assert info.value.partial is not None
    assert [c.name for c in info.value.partial.tool_calls] == ["clock_now"]
    assert info.value.partial.tool_calls[0].arguments == {"a": 1}


async def test_connection_reset_mid_stream(provider: Provider, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="abcdefghi"))
    server.faults.append(Fault(reset_after=1))
    with pytest.raises(StreamInterrupted) as info:
        await collect(provider, ask())
    assert info.value.partial is not None
    assert info.value.partial.text == "abc"
    assert info.value.retryable


@pytest.mark.parametrize("blank", [False, True])
async def test_corrupt_line_interrupts_the_stream(provider: Provider, server: FakeOllamaServer, blank: bool) -> None:
    server.corrupt_with_blank_line = blank
    server.turns.append(FakeTurn(text="abcdefghi"))
    server.faults.append(Fault(corrupt_at=1))
    with pytest.raises(StreamInterrupted, match="not a valid chat chunk") as info:
        await collect(provider, ask())
    assert info.value.partial is not None
    assert info.value.partial.text == "abc"


async def test_error_line_mid_stream_maps_to_unavailable_with_partial(
    provider: Provider, server: FakeOllamaServer
) -> None:
    server.turns.append(FakeTurn(text="abcdefghi"))
    server.faults.append(Fault(error_event_at=2, message="llama runner process has terminated: exit status 2"))
    with pytest.raises(Unavailable, match="llama runner") as info:
        await collect(provider, ask())
    assert info.value.partial is not None
    assert info.value.partial.text == "abcdef"


async def test_error_line_about_a_missing_model_is_model_not_found(
    provider: Provider, server: FakeOllamaServer
) -> None:
    server.faults.append(Fault(error_event_at=0, message='model "gone" not found, try pulling it first'))
    with pytest.raises(ModelNotFound) as info:
        await collect(provider, ask())
    assert info.value.available == ["fake-model-1", "fake-model-2"]


async def test_stall_mid_stream_times_out_with_partial(
    server: FakeOllamaServer, make_provider: Callable[..., Provider], transport: str
) -> None:
    provider = make_provider("ollama", server, timeout=0.5, options={"http_transport": transport})
    try:
        server.turns.append(FakeTurn(text="abcdefghi"))
        server.faults.append(Fault(stall_after=1))
        with pytest.raises(Timeout) as info:
            await collect(provider, ask())
        assert info.value.partial is not None
        assert info.value.partial.text == "abc"
    finally:
        await provider.aclose()


# ---------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "invalid options", BadRequest),
        (400, "input length exceeds the maximum context length", ContextTooLong),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", PermissionDenied),
        (500, "llama runner process has terminated", Unavailable),
        (502, "bad gateway", Unavailable),
        (503, "server busy", Unavailable),
        (503, "server overloaded, please retry shortly", Overloaded),
        (529, "overloaded", Overloaded),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_http_errors_map_to_the_taxonomy(
    provider: Provider,
    server: FakeOllamaServer,
    status: int,
    message: str,
    expected: type[ProviderError],
    streaming: bool,
) -> None:
    server.faults.append(Fault(status=status, message=message))
    with pytest.raises(expected) as info:
        await call(provider, ask(), streaming=streaming)
    assert type(info.value) is expected
    assert info.value.status_code == status
    assert message in str(info.value)
    assert info.value.provider == "ollama"
    assert info.value.partial is None  # nothing had arrived


@pytest.mark.parametrize("streaming", [False, True])
async def test_rate_limit_carries_retry_after(provider: Provider, server: FakeOllamaServer, streaming: bool) -> None:
    server.faults.append(Fault(status=429, message="too many requests", headers={"retry-after": "7"}))
    with pytest.raises(RateLimited) as info:
        await call(provider, ask(), streaming=streaming)
    assert info.value.retry_after == 7.0
    assert info.value.retryable


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model_lists_installed_models(
    provider: Provider, server: FakeOllamaServer, streaming: bool
) -> None:
    request = ModelRequest(model="llama9:70b", messages=[Message.user("hi")])
    with pytest.raises(ModelNotFound) as info:
        await call(provider, request, streaming=streaming)
    error = info.value
    assert error.status_code == 404
    assert error.available == ["fake-model-1", "fake-model-2"]
    assert "fake-model-1" in str(error)
    assert "ollama pull llama9:70b" in str(error)
    assert not error.retryable


async def test_timeout_before_headers(
    server: FakeOllamaServer, make_provider: Callable[..., Provider], transport: str
) -> None:
    provider = make_provider("ollama", server, timeout=0.3, options={"http_transport": transport})
    try:
        server.faults.append(Fault(delay=2.0))
        with pytest.raises(Timeout, match="did not answer"):
            await provider.complete(ask())
    finally:
        await provider.aclose()


async def test_non_json_body_is_unavailable(provider: Provider, server: FakeOllamaServer) -> None:
    server.faults.append(Fault(non_json=True))
    with pytest.raises(Unavailable, match="not a chat response"):
        await provider.complete(ask())


@pytest.mark.parametrize("streaming", [False, True])
async def test_server_not_running_says_how_to_start_it(streaming: bool, transport: str) -> None:
    port = closed_port()
    provider = create_provider(
        ProviderConfig(
            provider="ollama",
            base_url=f"http://127.0.0.1:{port}",
            default_model="m",
            options={"http_transport": transport},
        )
    )
    try:
        with pytest.raises(Unavailable) as info:
            await call(provider, ask(), streaming=streaming)
        assert f"127.0.0.1:{port}" in str(info.value)
        assert "ollama serve" in str(info.value)
        check = await provider.check()
        assert not check.ok
        assert "ollama serve" in check.detail
    finally:
        await provider.aclose()


async def test_fake_validates_tools_and_images(server: FakeOllamaServer) -> None:
    async with httpx.AsyncClient(base_url=server.origin) as client:
        bad_tool = await client.post(
            "/api/chat",
            json={"model": "fake-model-1", "stream": False, "messages": [], "tools": [{"type": "fn", "function": {}}]},
        )
        bad_image = await client.post(
            "/api/chat",
            json={"model": "fake-model-1", "stream": False, "messages": [{"role": "user", "images": ["***"]}]},
        )
        orphan = await client.post(
            "/api/chat",
            json={
                "model": "fake-model-1",
                "stream": False,
                "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "1", "tool_name": "t"}],
            },
        )
        string_args = await client.post(
            "/api/chat",
            json={
                "model": "fake-model-1",
                "stream": False,
                "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "t", "arguments": "{}"}}]}],
            },
        )
        too_many = await client.post(
            "/api/chat",
            json={
                "model": "fake-model-1",
                "stream": False,
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"function": {"name": "t", "arguments": {}}}]},
                    {"role": "tool", "content": "1", "tool_name": "t"},
                    {"role": "tool", "content": "2", "tool_name": "t"},
                ],
            },
        )
    for reply in (bad_tool, bad_image, orphan, string_args, too_many):
        assert reply.status_code == 400
        assert isinstance(reply.json()["error"], str)


# ---------------------------------------------------------------------------- keys, models, check


async def test_hosted_key_is_sent_and_never_leaks(
    server: FakeOllamaServer, make_provider: Callable[..., Provider]
) -> None:
    server.api_key = KEY
    provider = make_provider("ollama", server, api_key=KEY)
    try:
        await provider.complete(ask())
        assert chat_requests(server)[-1].headers["authorization"] == f"Bearer {KEY}"
        server.faults.append(Fault(status=401, message=f"invalid api key {KEY}"))
        with pytest.raises(AuthenticationError) as info:
            await provider.complete(ask())
        assert KEY not in str(info.value)
        assert KEY not in repr(info.value)
        assert KEY not in info.value.detail
        assert KEY not in repr(provider)
        assert KEY not in repr(provider.config)
    finally:
        await provider.aclose()


async def test_key_from_environment(
    server: FakeOllamaServer, make_provider: Callable[..., Provider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", KEY)
    server.api_key = KEY
    provider = make_provider("ollama", server)
    try:
        assert (await provider.check()).ok
        assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    finally:
        await provider.aclose()


async def test_local_server_needs_no_key(provider: Provider, server: FakeOllamaServer) -> None:
    await provider.complete(ask())
    assert "authorization" not in chat_requests(server)[-1].headers


def test_hosted_ollama_without_key_is_a_config_error_naming_the_env_var() -> None:
    with pytest.raises(ConfigError, match="OLLAMA_API_KEY"):
        create_provider(ProviderConfig(provider="ollama", base_url="https://ollama.com"))


async def test_list_models(provider: Provider, server: FakeOllamaServer) -> None:
    server.models = ["llama3.1:8b", "qwen3:latest"]
    models = await provider.list_models()
    assert [m.id for m in models] == ["llama3.1:8b", "qwen3:latest"]
    assert all(m.provider == "ollama" for m in models)
    assert server.requests[-1].path == "/api/tags"


async def test_check_good_and_bad_key(server: FakeOllamaServer, make_provider: Callable[..., Provider]) -> None:
    server.api_key = KEY
    good = make_provider("ollama", server, api_key=KEY)
    bad = make_provider("ollama", server, api_key="ollama-wrong-key-SECRET-999")
    try:
        ok = await good.check()
        assert ok.ok
        assert ok.models_visible == 2
        failed = await bad.check()
        assert not failed.ok
        assert "API key" in failed.detail
        assert "ollama-wrong-key-SECRET-999" not in failed.detail
        assert not any(r.path == "/api/chat" for r in server.requests)  # no tokens spent
    finally:
        await good.aclose()
        await bad.aclose()


async def test_fake_version_and_show_routes(server: FakeOllamaServer) -> None:
    async with httpx.AsyncClient(base_url=server.origin) as client:
        version = await client.get("/api/version")
        show = await client.post("/api/show", json={"model": "fake-model-1"})
        missing = await client.post("/api/show", json={"model": "nope"})
        unknown = await client.get("/api/nothing")
    assert version.json() == {"version": server.version}
    assert show.json()["capabilities"] == ["completion", "tools"]
    assert missing.status_code == 404
    assert unknown.status_code == 404


def test_config_for_points_at_the_fake(server: FakeOllamaServer) -> None:
    config = config_for("ollama", server)
    assert config.base_url == server.origin
    assert config.api_key is None


# ---------------------------------------------------------------------------- requests in flight


@pytest.mark.parametrize("streaming", [False, True])
async def test_max_connections_caps_requests_in_flight(make_provider: Callable[..., Provider], streaming: bool) -> None:
    server = start_fake("ollama")  # its own: stalled handlers of earlier tests must not count as in flight
    built = make_provider("ollama", server, options={"max_connections": 2})
    server.turns.extend(FakeTurn(text=f"answer {i}") for i in range(6))
    server.latency = 0.2  # each answer takes a while, so the six calls overlap
    texts: list[str] = []

    async def one() -> None:
        if streaming:
            [done] = [e async for e in built.stream(ask()) if isinstance(e, ResponseDone)]
            texts.append(done.response.text)
        else:
            texts.append((await built.complete(ask())).text)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(one)
    finally:
        await built.aclose()
        server.stop()
    assert sorted(texts) == [f"answer {i}" for i in range(6)]
    assert server.max_in_flight == 2


@pytest.mark.parametrize("value", [0, -3, "lots", 2.5, None, True])
def test_max_connections_must_be_a_positive_whole_number(server: FakeOllamaServer, value: Any) -> None:
    with pytest.raises(ConfigError, match="max_connections must be a whole number of at least 1"):
        create_provider(config_for("ollama", server, options={"max_connections": value}))


def test_max_connections_may_be_given_as_text(server: FakeOllamaServer) -> None:
    provider = create_provider(config_for("ollama", server, options={"max_connections": "8"}))
    assert isinstance(provider, OllamaProvider)
    assert provider._max_in_flight == 8


def test_the_aiohttp_transport_is_the_default_and_httpx_can_be_chosen(server: FakeOllamaServer) -> None:
    from httpx_aiohttp import AiohttpTransport

    def transport_of(provider: Provider) -> object:
        assert isinstance(provider, OllamaProvider)
        return provider._client._client._transport  # the SDK's httpx client's transport

    assert isinstance(transport_of(create_provider(config_for("ollama", server))), AiohttpTransport)
    chosen = create_provider(config_for("ollama", server, options={"http_transport": "httpx"}))
    assert isinstance(transport_of(chosen), httpx.AsyncHTTPTransport)


@pytest.mark.parametrize("family", ["anthropic", "openai", "ollama"])
def test_an_unknown_http_transport_is_a_config_error_naming_the_option(family: str) -> None:
    config = ProviderConfig(
        provider=family, api_key="sk-test", base_url="http://127.0.0.1:9", options={"http_transport": "curl"}
    )
    with pytest.raises(ConfigError, match=r"options.http_transport .* must be 'aiohttp' or 'httpx', not 'curl'"):
        create_provider(config)
