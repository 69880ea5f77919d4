"""OpenAI Chat Completions adapter (and the OpenAI-compatible presets) against the fake OpenAI server.

The real ``openai`` SDK talks HTTP to ``tests.fakes.openai.FakeOpenAIServer`` on 127.0.0.1; nothing of the
project is mocked. The fake validates requests like the real API, so a request it accepts is well formed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
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
from providers.openai import OpenAIProvider
from providers.types import (
    ForceTool,
    ImagePart,
    Message,
    ModelRequest,
    ModelResponse,
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
from tests.fakes.base import FakeToolCall, FakeTurn, FakeUsage, Fault
from tests.fakes.openai import FakeOpenAIServer
from tests.providers.conftest import TEST_KEYS, config_for, start_fake

KEY = str(TEST_KEYS["openai"])

WEATHER = ToolSpec(
    name="weather.get_forecast",  # canonical MCP-style name: the dot is illegal for OpenAI
    description="Forecast for a city",
    input_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
CLOCK = ToolSpec(name="clock_now", description="Current time", input_schema={"type": "object", "properties": {}})
PNG = b"\x89PNG\r\n\x1a\nfake-image-bytes"


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeOpenAIServer]:
    # One server per module: stopping a ThreadingHTTPServer costs half a second (its poll interval).
    fake = start_fake("openai")
    assert isinstance(fake, FakeOpenAIServer)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def server(shared_server: FakeOpenAIServer) -> FakeOpenAIServer:
    shared_server.reset()
    return shared_server


@pytest.fixture
async def build(server: FakeOpenAIServer) -> AsyncIterator[Callable[..., Provider]]:
    built: list[Provider] = []

    def make(**overrides: Any) -> Provider:
        provider = create_provider(config_for("openai", server, **overrides))
        built.append(provider)
        return provider

    yield make
    for provider in built:
        await provider.aclose()


@pytest.fixture
async def provider(build: Callable[..., Provider]) -> Provider:
    return build()


def ask(text: str = "What is the weather in Paris?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model="", messages=[Message.user(text)], **kwargs)


async def collect(provider: Provider, request: ModelRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


def done(events: list[StreamEvent]) -> ModelResponse:
    assert isinstance(events[-1], ResponseDone)
    assert sum(isinstance(e, ResponseDone) for e in events) == 1
    return events[-1].response


def last_body(server: FakeOpenAIServer) -> dict[str, Any]:
    return server.requests[-1].json


def assert_no_secret(error: BaseException) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert isinstance(error, ProviderError)
    assert KEY not in error.detail


# --------------------------------------------------------------------------- requests on the wire


@pytest.mark.anyio
async def test_text_completion_maps_request_and_response(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="Sunny, 21C.", usage=FakeUsage(input_tokens=120, output_tokens=30)))
    response = await provider.complete(
        ask(system="You are terse.", temperature=0.2, top_p=0.9, max_tokens=256, stop=["END", "STOP"])
    )
    body = last_body(server)
    assert server.requests[-1].path == "/v1/chat/completions"
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "fake-model-1"
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["max_completion_tokens"] == 256
    assert "max_tokens" not in body
    assert body["stop"] == ["END", "STOP"]
    assert "stream" not in body or body["stream"] is False
    assert "tools" not in body
    assert "parallel_tool_calls" not in body
    assert response.text == "Sunny, 21C."
    assert response.stop_reason == "end_turn"
    assert response.raw_stop_reason == "stop"
    assert response.provider == "openai"
    assert response.model == "fake-model-1"
    assert response.response_id is not None
    assert response.response_id.startswith("chatcmpl-")
    assert response.request_id is not None
    assert response.request_id.startswith("req_fake")
    assert response.usage.input_tokens == 120
    assert response.usage.output_tokens == 30


@pytest.mark.anyio
async def test_tool_round_trip_non_streaming(server: FakeOpenAIServer, provider: Provider) -> None:
    first = await provider.complete(ask(tools=[WEATHER]))
    wire_tool = last_body(server)["tools"][0]
    assert wire_tool["type"] == "function"
    wire_name = wire_tool["function"]["name"]
    assert wire_name != WEATHER.name
    assert "." not in wire_name
    assert wire_tool["function"]["description"] == "Forecast for a city"
    assert wire_tool["function"]["parameters"]["properties"]["city"] == {"type": "string"}
    assert "strict" not in wire_tool["function"]  # the compiler did not mark this tool strict
    assert first.stop_reason == "tool_use"
    assert first.raw_stop_reason == "tool_calls"
    [call] = first.tool_calls
    assert call.name == WEATHER.name  # back to the canonical name
    assert call.arguments == {"city": 'Paris, "FR" {x}'}

    result = ToolResultPart(call_id=call.id, name=call.name, content=[TextPart(text="21C and sunny")])
    history = [Message.user("What is the weather in Paris?"), first.message, Message(role="tool", parts=[result])]
    second = await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    messages = last_body(server)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": wire_name, "arguments": json.dumps(call.arguments, separators=(",", ":"))},
            }
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "21C and sunny"}
    assert second.text == "The answer is 42."
    assert second.stop_reason == "end_turn"


@pytest.mark.anyio
async def test_tool_round_trip_streaming(server: FakeOpenAIServer, provider: Provider) -> None:
    events = await collect(provider, ask(tools=[WEATHER]))
    body = last_body(server)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) >= 3  # id/name fragment plus several argument pieces
    assert deltas[0].name == WEATHER.name
    assert deltas[0].id is not None
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    response = done(events)
    assert [c.name for c in ready] == [WEATHER.name]
    assert response.tool_calls == ready
    assert ready[0].arguments == {"city": 'Paris, "FR" {x}'}
    assert response.stop_reason == "tool_use"
    assert response.request_id is not None
    assert response.request_id.startswith("req_fake")

    result = ToolResultPart(call_id=ready[0].id, name=WEATHER.name, content=[TextPart(text="21C")])
    history = [Message.user("weather?"), response.message, Message(role="tool", parts=[result])]
    events = await collect(provider, ModelRequest(model="", messages=history, tools=[WEATHER]))
    final = done(events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The answer is 42."
    assert final.text == "The answer is 42."
    assert last_body(server)["messages"][-1] == {"role": "tool", "tool_call_id": ready[0].id, "content": "21C"}


PARALLEL = FakeTurn(
    tool_calls=[
        FakeToolCall("weather_get_forecast", {"city": "Paris"}, id="call_a"),
        FakeToolCall("clock_now", {}, id="call_b"),
    ]
)


@pytest.mark.anyio
async def test_parallel_calls_non_streaming(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(PARALLEL)
    response = await provider.complete(ask(tools=[CLOCK], parallel_tool_calls=True))
    assert last_body(server)["parallel_tool_calls"] is True
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_a", "weather_get_forecast", {"city": "Paris"}),
        ("call_b", "clock_now", {}),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("style", ["openai", "all_index_0", "whole", "no_index"])
async def test_parallel_calls_streaming_with_compatible_server_quirks(
    server: FakeOpenAIServer, provider: Provider, style: Any
) -> None:
    server.tool_call_style = style
    server.turns.append(PARALLEL)
    events = await collect(provider, ask(tools=[CLOCK], parallel_tool_calls=False))
    assert last_body(server)["parallel_tool_calls"] is False
    response = done(events)
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_a", "weather_get_forecast", {"city": "Paris"}),
        ("call_b", "clock_now", {}),
    ]
    assert [e.call.id for e in events if isinstance(e, ToolCallReady)] == ["call_a", "call_b"]
    assert {e.index for e in events if isinstance(e, ToolCallDelta)} == {0, 1}


@pytest.mark.anyio
async def test_anonymous_whole_calls_at_index_0_get_distinct_ids(server: FakeOpenAIServer, provider: Provider) -> None:
    server.tool_call_style = "anonymous_index_0"
    server.turns.append(PARALLEL)
    response = done(await collect(provider, ask(tools=[CLOCK])))
    calls = response.tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("weather_get_forecast", {"city": "Paris"}), ("clock_now", {})]
    assert len({c.id for c in calls}) == 2
    assert all(c.id for c in calls)


STRICT_TOOL = ToolSpec(
    name="notes.add",
    description="Add a note",
    input_schema={
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["title", "tags"],
        "additionalProperties": False,
    },
)


@pytest.mark.anyio
async def test_strict_tools_on_the_wire(server: FakeOpenAIServer, build: Callable[..., Provider]) -> None:
    provider = build()
    response = await provider.complete(ask(tools=[STRICT_TOOL]))  # the fake checks the strict rules
    function = last_body(server)["tools"][0]["function"]
    assert function["strict"] is True
    assert function["parameters"]["additionalProperties"] is False
    assert response.tool_calls[0].name == "notes.add"
    await provider.complete(ask(tools=[STRICT_TOOL], strict_tools=False))
    assert "strict" not in last_body(server)["tools"][0]["function"]
    groq = build(provider="groq")  # the profile does not accept strict schemas
    await groq.complete(ask(tools=[STRICT_TOOL]))
    assert "strict" not in last_body(server)["tools"][0]["function"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (ForceTool(name="weather.get_forecast"), "force"),
    ],
)
async def test_tool_choice_on_the_wire(
    server: FakeOpenAIServer, provider: Provider, choice: Any, expected: str
) -> None:
    await provider.complete(ask(tools=[WEATHER, CLOCK], tool_choice=choice))
    body = last_body(server)
    if expected == "force":
        wire_name = body["tools"][0]["function"]["name"]
        assert body["tool_choice"] == {"type": "function", "function": {"name": wire_name}}
    else:
        assert body["tool_choice"] == expected


@pytest.mark.anyio
async def test_images_in_user_turn_and_in_tool_results(server: FakeOpenAIServer, provider: Provider) -> None:
    user = Message.user(
        "Compare these",
        ImagePart(data=PNG, media_type="image/png"),
        ImagePart(url="https://example.com/cat.jpg", media_type="image/jpeg"),
    )
    call = ToolCallPart(id="call_shot", name="browser.screenshot", arguments={"url": "https://example.com"})
    results = [
        ToolResultPart(
            call_id="call_shot",
            name="browser.screenshot",
            content=[TextPart(text="captured"), ImagePart(data=PNG, media_type="image/png")],
        ),
    ]
    history = [
        user,
        Message(role="assistant", parts=[TextPart(text="Taking one."), call]),
        Message(role="tool", parts=results),
    ]
    response = await provider.complete(ModelRequest(model="", messages=history))
    messages = last_body(server)["messages"]
    import base64

    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert messages[0]["content"] == [
        {"type": "text", "text": "Compare these"},
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    assert messages[1]["content"] == "Taking one."
    assert messages[2]["role"] == "tool"
    assert messages[2]["tool_call_id"] == "call_shot"
    assert messages[2]["content"].startswith("captured\n[image image/png")
    # The image cannot go in the tool message: it follows in a user message after the tool messages.
    assert messages[3]["role"] == "user"
    assert messages[3]["content"][0]["type"] == "text"
    assert "call_shot" in messages[3]["content"][0]["text"]
    assert messages[3]["content"][1] == {"type": "image_url", "image_url": {"url": data_url}}
    assert response.text == "The answer is 42."


@pytest.mark.anyio
async def test_tool_error_result_is_marked(server: FakeOpenAIServer, provider: Provider) -> None:
    call = ToolCallPart(id="call_1", name="clock_now", arguments={})
    result = ToolResultPart(call_id="call_1", name="clock_now", content=[TextPart(text="clock broken")], is_error=True)
    history = [Message.user("time?"), Message(role="assistant", parts=[call]), Message(role="tool", parts=[result])]
    await provider.complete(ModelRequest(model="", messages=history, tools=[CLOCK]))
    assert last_body(server)["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "Error: clock broken",
    }


@pytest.mark.anyio
async def test_long_foreign_call_ids_are_remapped_for_openai(server: FakeOpenAIServer, provider: Provider) -> None:
    long_id = "toolu_" + "x" * 60  # longer than OpenAI's 40-character limit
    call = ToolCallPart(id=long_id, name="clock_now", arguments={})
    result = ToolResultPart(call_id=long_id, name="clock_now", content=[TextPart(text="noon")])
    history = [Message.user("time?"), Message(role="assistant", parts=[call]), Message(role="tool", parts=[result])]
    response = await provider.complete(ModelRequest(model="", messages=history, tools=[CLOCK]))
    messages = last_body(server)["messages"]
    sent_id = messages[1]["tool_calls"][0]["id"]
    assert len(sent_id) <= 40
    assert messages[2]["tool_call_id"] == sent_id
    assert response.text  # the fake accepted the request


@pytest.mark.anyio
async def test_reasoning_effort_for_openai(server: FakeOpenAIServer, provider: Provider) -> None:
    await provider.complete(ask(thinking=ThinkingConfig(effort="high")))
    assert last_body(server)["reasoning_effort"] == "high"
    await provider.complete(ask())
    assert "reasoning_effort" not in last_body(server)


# --------------------------------------------------------------------------- presets


@pytest.mark.anyio
async def test_compatible_preset_uses_max_tokens_and_no_reasoning_effort(
    server: FakeOpenAIServer, build: Callable[..., Provider]
) -> None:
    provider = build(provider="groq")
    response = await provider.complete(ask(max_tokens=64, thinking=ThinkingConfig(effort="low")))
    body = last_body(server)
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body
    assert "reasoning_effort" not in body
    assert response.provider == "groq"


@pytest.mark.anyio
async def test_openrouter_reasoning_settings_go_in_the_body(
    server: FakeOpenAIServer, build: Callable[..., Provider]
) -> None:
    provider = build(provider="openrouter")
    await provider.complete(ask(thinking=ThinkingConfig(budget_tokens=2000)))
    assert last_body(server)["reasoning"] == {"max_tokens": 2000}


@pytest.mark.anyio
async def test_local_preset_without_key_sends_placeholder(
    server: FakeOpenAIServer, build: Callable[..., Provider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = build(provider="vllm", api_key=None)
    response = await provider.complete(ask())
    assert server.requests[-1].headers["authorization"] == "Bearer not-needed"
    assert response.provider == "vllm"
    assert response.text


@pytest.mark.anyio
async def test_openai_org_and_project_from_env_reach_only_openai(
    server: FakeOpenAIServer, build: Callable[..., Provider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-private")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-private")
    await build(provider="groq").complete(ask())
    third_party = server.requests[-1].headers
    assert "openai-organization" not in third_party
    assert "openai-project" not in third_party
    await build().complete(ask())
    assert server.requests[-1].headers["openai-organization"] == "org-private"


def test_openai_compatible_without_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        create_provider(ProviderConfig(provider="openai-compatible", default_model="m"))


@pytest.mark.anyio
async def test_azure_uses_deployment_path_api_version_and_api_key_header(server: FakeOpenAIServer) -> None:
    config = ProviderConfig(
        provider="azure",
        api_key=KEY,
        base_url=server.origin,
        default_model="fake-model-1",
        timeout=5.0,
        options={"api_version": "2024-10-21"},
    )
    provider = create_provider(config)
    try:
        response = await provider.complete(ask(max_tokens=32))
        request = server.requests[-1]
        assert request.path == "/openai/deployments/fake-model-1/chat/completions"
        assert request.query["api-version"] == ["2024-10-21"]
        assert request.headers["api-key"] == KEY
        assert response.text == "The answer is 42."
        assert response.provider == "azure"
        assert last_body(server)["max_completion_tokens"] == 32
        models = await provider.list_models()
        assert server.requests[-1].path == "/openai/models"
        assert [m.id for m in models] == server.models
    finally:
        await provider.aclose()


# --------------------------------------------------------------------------- stream details and stop reasons


@pytest.mark.anyio
async def test_stream_text_and_deepseek_style_reasoning(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="Final answer.", thinking="Let me think about it."))
    events = await collect(provider, ask())
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert thinking == "Let me think about it."
    assert text == "Final answer."
    response = done(events)
    assert isinstance(response.message.parts[0], ThinkingPart)
    assert response.message.parts[0].text == thinking
    assert response.message.parts[0].provider == "openai"
    assert response.text == "Final answer."
    reports = [e for e in events if isinstance(e, UsageReport)]
    assert reports
    assert reports[-1].usage == response.usage
    assert response.usage.input_tokens == 42


@pytest.mark.anyio
async def test_openrouter_style_reasoning_field_non_streaming(server: FakeOpenAIServer, provider: Provider) -> None:
    server.thinking_field = "reasoning"
    server.turns.append(FakeTurn(text="42", thinking="adding numbers"))
    response = await provider.complete(ask())
    assert [type(p) for p in response.message.parts] == [ThinkingPart, TextPart]
    assert response.message.parts[0].text == "adding numbers"  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("length", "max_tokens"), ("content_filter", "content_filter"), ("function_call", "tool_use"), ("weird", "other")],
)
async def test_finish_reasons(server: FakeOpenAIServer, provider: Provider, raw: str, expected: str) -> None:
    server.turns.append(FakeTurn(text="partial", stop=raw))
    response = await provider.complete(ask())
    assert response.stop_reason == expected
    assert response.raw_stop_reason == raw
    server.turns.append(FakeTurn(text="partial", stop=raw))
    streamed = done(await collect(provider, ask()))
    assert streamed.stop_reason == expected
    assert streamed.raw_stop_reason == raw


@pytest.mark.anyio
async def test_stop_with_tool_calls_from_compatible_server_means_tool_use(
    server: FakeOpenAIServer, provider: Provider
) -> None:
    server.turns.append(FakeTurn(tool_calls=[FakeToolCall("clock_now", {})], stop="stop"))
    response = await provider.complete(ask(tools=[CLOCK]))
    assert response.stop_reason == "tool_use"
    assert response.raw_stop_reason == "stop"


# --------------------------------------------------------------------------- usage


@pytest.mark.anyio
async def test_usage_cache_and_reasoning_tokens(server: FakeOpenAIServer, provider: Provider) -> None:
    usage = FakeUsage(input_tokens=1000, output_tokens=300, cache_read_tokens=800, reasoning_tokens=200)
    server.turns.append(FakeTurn(text="hi", usage=usage))
    response = await provider.complete(ask())
    assert response.usage.input_tokens == 1000  # includes the cached 800
    assert response.usage.cache_read_tokens == 800
    assert response.usage.output_tokens == 300  # includes the 200 reasoning tokens
    assert response.usage.reasoning_tokens == 200
    assert response.usage.cache_write_tokens is None  # OpenAI does not report cache writes
    server.turns.append(FakeTurn(text="hi", usage=usage))
    streamed = done(await collect(provider, ask()))
    assert streamed.usage == response.usage


@pytest.mark.anyio
async def test_usage_without_details_leaves_cache_and_reasoning_unknown(
    server: FakeOpenAIServer, provider: Provider
) -> None:
    server.usage_details = False
    response = await provider.complete(ask())
    assert response.usage.input_tokens == 42
    assert response.usage.output_tokens == 9
    assert response.usage.cache_read_tokens is None
    assert response.usage.reasoning_tokens is None


@pytest.mark.anyio
async def test_missing_usage_is_unknown_not_zero(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(FakeTurn(text="no usage here", usage=None))
    response = await provider.complete(ask())
    assert response.usage.model_dump(exclude_none=True) == {}
    assert not response.usage.known
    server.turns.append(FakeTurn(text="no usage here", usage=None))
    events = await collect(provider, ask())
    streamed = done(events)
    assert streamed.text == "no usage here"
    assert streamed.usage.model_dump(exclude_none=True) == {}
    assert [e.usage for e in events if isinstance(e, UsageReport)] == [streamed.usage]


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "Invalid 'messages[0].content': bad", BadRequest),
        (401, "Incorrect API key provided: sk-test-****SECRET.", AuthenticationError),
        (403, "Project does not have access to this region", PermissionDenied),
        (400, "This model's maximum context length is 128000 tokens. However, you requested 200000.", ContextTooLong),
        (500, "The server had an error while processing your request.", Unavailable),
        (503, "Service temporarily unavailable", Unavailable),
        (529, "The engine is currently overloaded", Overloaded),
    ],
)
async def test_http_errors_map_to_taxonomy(
    server: FakeOpenAIServer, provider: Provider, status: int, message: str, expected: type[ProviderError]
) -> None:
    for streaming in (False, True):
        server.faults.append(Fault(status=status, message=message))
        call = collect(provider, ask()) if streaming else provider.complete(ask())
        with pytest.raises(expected) as info:
            await call
        error = info.value
        assert type(error) is expected
        assert error.status_code == status
        assert error.provider == "openai"
        assert error.model == "fake-model-1"
        assert error.request_id == "req_error0001"
        assert_no_secret(error)


@pytest.mark.anyio
async def test_context_length_code_maps_to_context_too_long(server: FakeOpenAIServer, provider: Provider) -> None:
    server.faults.append(Fault(status=400, message="Request too large.", error_type="invalid_request_error"))
    with pytest.raises(BadRequest) as plain:
        await provider.complete(ask())
    assert type(plain.value) is BadRequest
    server.faults.append(Fault(status=400, message="Your input exceeds the context window of this model."))
    with pytest.raises(ContextTooLong):
        await provider.complete(ask())


@pytest.mark.anyio
async def test_rate_limit_carries_retry_after(server: FakeOpenAIServer, provider: Provider) -> None:
    server.faults.append(Fault(status=429, message="Rate limit reached", headers={"retry-after": "7"}))
    with pytest.raises(RateLimited) as info:
        await provider.complete(ask())
    assert info.value.retry_after == 7.0
    assert info.value.retryable
    server.faults.append(Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "1500"}))
    with pytest.raises(RateLimited) as streamed:
        await collect(provider, ask())
    assert streamed.value.retry_after == 1.5
    assert len(server.requests) == 2  # SDK retries are off: one attempt each


@pytest.mark.anyio
async def test_timeout(server: FakeOpenAIServer, build: Callable[..., Provider]) -> None:
    provider = build(timeout=0.3)
    server.faults.append(Fault(delay=1.5))
    with pytest.raises(Timeout) as info:
        await provider.complete(ask())
    assert info.value.retryable
    assert info.value.model == "fake-model-1"


@pytest.mark.anyio
async def test_non_json_body_is_unavailable(server: FakeOpenAIServer, provider: Provider) -> None:
    server.faults.append(Fault(non_json=True))
    with pytest.raises(Unavailable, match="base_url"):
        await provider.complete(ask())


@pytest.mark.anyio
async def test_unknown_model_lists_available_models(server: FakeOpenAIServer, provider: Provider) -> None:
    with pytest.raises(ModelNotFound) as info:
        await provider.complete(ModelRequest(model="gpt-nope", messages=[Message.user("hi")]))
    error = info.value
    assert error.available == ["fake-model-1", "fake-model-2"]
    assert "fake-model-2" in str(error)
    assert "gpt-nope" in str(error)
    assert error.status_code == 404
    with pytest.raises(ModelNotFound):
        await collect(provider, ModelRequest(model="gpt-nope", messages=[Message.user("hi")]))


# --------------------------------------------------------------------------- stream faults


FIRST_PIECE = "Hello world! "  # the first of the three text chunks


def text_turn() -> FakeTurn:
    # chunks: 0 role, 1-3 text pieces ("Hello world! ", "This is a lon", "ger answer."), 4 finish, 5 usage, 6 [DONE]
    return FakeTurn(text="Hello world! This is a longer answer.")


@pytest.mark.anyio
async def test_connection_reset_mid_stream(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(text_turn())
    server.faults.append(Fault(reset_after=3))
    seen: list[StreamEvent] = []

    async def consume() -> None:
        async for event in provider.stream(ask()):
            seen.append(event)

    with pytest.raises(StreamInterrupted) as info:
        await consume()
    partial = info.value.partial
    assert partial is not None
    streamed = "".join(e.text for e in seen if isinstance(e, TextDelta))
    assert streamed
    assert partial.text == streamed
    assert "Hello world! This is a longer answer.".startswith(partial.text)
    assert partial.usage.input_tokens is None
    assert not any(isinstance(e, ResponseDone) for e in seen)
    assert_no_secret(info.value)


@pytest.mark.anyio
async def test_clean_early_end_of_stream(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(
        FakeTurn(text="Partial answer", tool_calls=[FakeToolCall("clock_now", {"tz": "UTC"}, id="call_x")])
    )
    # chunks: 0 role, 1-3 text, 4 call id/name, 5-7 arguments, 8 finish, 9 usage, 10 [DONE]
    server.faults.append(Fault(end_after=6))
    with pytest.raises(StreamInterrupted, match="finish_reason") as info:
        await collect(provider, ask(tools=[CLOCK]))
    partial = info.value.partial
    assert partial is not None
    assert partial.text == "Partial answer"
    [call] = partial.tool_calls
    assert call.id == "call_x"
    assert call.name == "clock_now"
    assert call.raw_arguments is not None
    assert not call.arguments_valid


@pytest.mark.anyio
async def test_cut_after_finish_chunk_keeps_the_answer_with_unknown_usage(
    server: FakeOpenAIServer, provider: Provider
) -> None:
    # The SDK ends silently both at [DONE] and at a clean cut; after finish_reason the answer is whole,
    # only the usage chunk is missing, so usage is reported unknown instead of failing the call.
    server.turns.append(text_turn())
    server.faults.append(Fault(end_after=5))  # 0 role, 1-3 text, 4 finish; usage chunk and [DONE] never sent
    events = await collect(provider, ask())
    response = done(events)
    assert response.text == "Hello world! This is a longer answer."
    assert response.stop_reason == "end_turn"
    assert response.usage.input_tokens is None
    assert response.usage.output_tokens is None


@pytest.mark.anyio
async def test_corrupt_chunk(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(text_turn())
    server.faults.append(Fault(corrupt_at=2))
    with pytest.raises(StreamInterrupted, match="corrupt") as info:
        await collect(provider, ask())
    assert info.value.partial is not None
    assert info.value.partial.text == FIRST_PIECE


@pytest.mark.anyio
async def test_provider_error_event_mid_stream(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(text_turn())
    server.faults.append(Fault(error_event_at=2, message="The server had an error while processing your request."))
    with pytest.raises(StreamInterrupted, match="server had an error") as info:
        await collect(provider, ask())
    assert info.value.partial is not None
    assert info.value.partial.text == FIRST_PIECE
    server.turns.append(text_turn())
    server.faults.append(Fault(error_event_at=1, message="Rate limit reached", error_type="rate_limit_error"))
    with pytest.raises(RateLimited) as limited:
        await collect(provider, ask())
    assert limited.value.partial is not None


@pytest.mark.anyio
async def test_stall_mid_stream_times_out_with_partial(
    server: FakeOpenAIServer, build: Callable[..., Provider]
) -> None:
    provider = build(timeout=0.5)
    server.stall_seconds = 3.0  # the server thread gives up soon after the client did
    server.turns.append(text_turn())
    server.faults.append(Fault(stall_after=2))
    with pytest.raises(Timeout) as info:
        await collect(provider, ask())
    assert info.value.partial is not None
    assert info.value.partial.text == FIRST_PIECE


@pytest.mark.anyio
async def test_consumer_may_stop_early(server: FakeOpenAIServer, provider: Provider) -> None:
    server.turns.append(text_turn())
    stream = provider.stream(ask())
    first = await stream.__anext__()
    assert isinstance(first, TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    response = await provider.complete(ask())  # the client is still usable
    assert response.text == "The answer is 42."


# --------------------------------------------------------------------------- models, check, keys


@pytest.mark.anyio
async def test_list_models_and_check(server: FakeOpenAIServer, provider: Provider) -> None:
    models = await provider.list_models()
    assert [(m.id, m.provider) for m in models] == [("fake-model-1", "openai"), ("fake-model-2", "openai")]
    assert server.requests[-1].path == "/v1/models"
    result = await provider.check()
    assert result.ok
    assert result.models_visible == 2
    assert result.provider == "openai"


@pytest.mark.anyio
async def test_check_with_bad_key(server: FakeOpenAIServer, provider: Provider) -> None:
    server.valid_keys = {"sk-some-other-valid-key-000000"}
    result = await provider.check()
    assert not result.ok
    assert "API key" in result.detail
    assert KEY not in result.detail
    assert KEY[:12] not in result.detail
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(ask())
    assert_no_secret(info.value)
    assert "sk-" not in str(info.value)  # even the masked key OpenAI echoes is scrubbed


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        create_provider(ProviderConfig(provider="openai", default_model="gpt-4o-mini"))
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GROQ_API_KEY"):
        create_provider(ProviderConfig(provider="groq", default_model="llama"))


def test_repr_hides_the_key(server: FakeOpenAIServer) -> None:
    provider = create_provider(config_for("openai", server))
    assert KEY not in repr(provider)
    assert KEY not in repr(provider.config)


# --------------------------------------------------------------------------- the fake validates like the API


@pytest.fixture
async def raw_client(server: FakeOpenAIServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server.origin + "/v1", max_retries=0)
    yield client
    await client.close()


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}


FN = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": []}, "empty array"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "a.b"}}],
            },
            "does not match pattern",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            },
            "missing properties",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "strict": True,
                            "parameters": {
                                "type": "object",
                                "properties": {"a": {"type": "string"}},
                                "required": ["a"],
                            },
                        },
                    }
                ],
            },
            "additionalProperties",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "strict": True,
                            "parameters": {
                                "type": "object",
                                "properties": {"a": {"type": "string"}},
                                "additionalProperties": False,
                            },
                        },
                    }
                ],
            },
            "every key in properties",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": None, "tool_calls": [_call("c" * 41)]},
                    {"role": "tool", "tool_call_id": "c" * 41, "content": "r"},
                ],
                "tools": [FN],
            },
            "maximum length 40",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": None, "tool_calls": [_call("c1"), _call("c2")]},
                    {"role": "tool", "tool_call_id": "c1", "content": "r"},
                    {"role": "user", "content": "next"},
                ],
                "tools": [FN],
            },
            "did not have response messages: c2",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c9", "content": "r"}]},
            "must be a response to a preceeding message",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}, "only allowed when 'tools'"),
    ],
)
async def test_fake_rejects_what_the_api_rejects(
    raw_client: openai.AsyncOpenAI, body: dict[str, Any], fragment: str
) -> None:
    extra = {k: v for k, v in body.items() if k != "messages"}
    with pytest.raises(openai.BadRequestError) as info:
        await raw_client.chat.completions.create(model="fake-model-1", messages=body["messages"], **extra)
    assert fragment in str(info.value.body)
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "invalid_request_error"


@pytest.mark.anyio
async def test_fake_accepts_a_valid_strict_tool_round_trip(raw_client: openai.AsyncOpenAI) -> None:
    strict = {
        "type": "function",
        "function": {
            "name": "f",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "object", "properties": {}, "additionalProperties": False, "required": []}
                },
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    }
    completion = await raw_client.chat.completions.create(
        model="fake-model-1",
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [_call("c1")]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
        tools=[strict],  # type: ignore[list-item]
    )
    assert completion.choices[0].message.content == "The answer is 42."


# ---------------------------------------------------------------------------- the JSON path

_PER_REQUEST_HEADERS = {"x-stainless-retry-count", "x-stainless-read-timeout", "idempotency-key", "content-length"}


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
async def test_json_path_sends_what_create_sends(server: FakeOpenAIServer, provider: Provider, streaming: bool) -> None:
    """complete() and stream() post the body and read JSON; the request must be the one
    ``chat.completions.create`` builds from the same parameters, and both must read alike."""
    assert isinstance(provider, OpenAIProvider)
    server.turns.extend([FakeTurn(tool_calls=[FakeToolCall("weather", {"city": "Oslo"})]) for _ in range(2)])
    request = ask(tools=[WEATHER], system="S", temperature=0.5, max_tokens=99)
    if streaming:
        [done] = [e async for e in provider.stream(request) if isinstance(e, ResponseDone)]
        ours = done.response
    else:
        ours = await provider.complete(request)
    params = provider.to_wire(provider.prepare(request), stream=False)
    if streaming:
        params["stream_options"] = {"include_usage": True}
    sdk = provider._client.chat.completions
    reply = await sdk.create(**params, stream=True) if streaming else await sdk.create(**params)
    if streaming:
        async for _ in reply:
            pass
    json_path, typed_path = server.requests[-2:]
    headers = [
        {k: v for k, v in r.headers.items() if k.lower() not in _PER_REQUEST_HEADERS} for r in (json_path, typed_path)
    ]
    assert json_path.json == typed_path.json
    assert headers[0] == headers[1]
    assert ours.tool_calls[0].arguments == {"city": "Oslo"}
    assert ours.request_id is not None
