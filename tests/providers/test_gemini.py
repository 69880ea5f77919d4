"""The Gemini adapter against the fake Gemini API, through the real google-genai SDK over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from providers.base import ProviderConfig
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
from providers.gemini import GeminiProvider
from providers.types import (
    ForceTool,
    ImagePart,
    Message,
    ModelRequest,
    ModelResponse,
    ProviderData,
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
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    UsageReport,
)
from tests.fakes.base import FakeToolCall, FakeTurn, FakeUsage, Fault
from tests.fakes.gemini import FakeGeminiServer, GeminiFault
from tests.providers.conftest import TEST_KEYS, config_for, start_fake

pytestmark = [
    pytest.mark.anyio,
    # google-genai subclasses aiohttp.ClientSession; aiohttp warns about that on every new session.
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

KEY: str = TEST_KEYS["gemini"] or "unset"
PNG = b"\x89PNG\r\n\x1a\nfake-image-bytes"
WEATHER = ToolSpec(
    name="weather.get",
    description="Current weather for a city",
    input_schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
TIME = ToolSpec(name="clock.now", description="Current time", input_schema={"type": "object", "properties": {}})


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeGeminiServer]:
    fake = start_fake("gemini")
    assert isinstance(fake, FakeGeminiServer)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def server(shared_server: FakeGeminiServer) -> FakeGeminiServer:
    """One fake for the module (stopping a server costs half a second); scripts reset per test."""
    fake = shared_server
    with fake.lock:
        fake.turns.clear()
        fake.faults.clear()
        fake.requests.clear()
    fake.valid_keys = None
    fake.usage_extra = {}
    fake.models = list(FakeGeminiServer.DEFAULT_MODELS)
    return fake


def make(server: FakeGeminiServer, **overrides: Any) -> GeminiProvider:
    return GeminiProvider(config_for("gemini", server, **overrides))


def ask(text: str = "What's the weather in Paris?", **fields: Any) -> ModelRequest:
    fields.setdefault("model", "")
    return ModelRequest(messages=[Message.user(text)], **fields)


def last_body(server: FakeGeminiServer) -> dict[str, Any]:
    return server.requests[-1].json


def signature_bytes(text: str) -> bytes:
    cleaned = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))


def result_message(*calls: ToolCallPart, text: str = "21C", is_error: bool = False) -> list[Message]:
    return [
        Message(
            role="tool",
            parts=[ToolResultPart(call_id=c.id, name=c.name, content=[TextPart(text=text)], is_error=is_error)],
        )
        for c in calls
    ]


async def collect(provider: GeminiProvider, request: ModelRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def drain(provider: GeminiProvider, request: ModelRequest, seen: list[StreamEvent]) -> None:
    async for event in provider.stream(request):
        seen.append(event)


async def stream_error(provider: GeminiProvider, request: ModelRequest) -> tuple[ProviderError, list[StreamEvent]]:
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as info:
        await drain(provider, request, seen)
    return info.value, seen


# --------------------------------------------------------------------------- tool round trips


async def test_complete_tool_round_trip_on_the_wire(server: FakeGeminiServer) -> None:
    provider = make(server)
    first = await provider.complete(ask(tools=[WEATHER]))
    assert first.stop_reason == "tool_use"
    assert first.raw_stop_reason == "STOP"
    [call] = first.tool_calls
    assert call.name == "weather.get"
    assert call.arguments == {"city": "Paris"}
    request = server.requests[-1]
    assert request.path == "/v1beta/models/fake-model-1:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    declaration = request.json["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "weather.get"
    assert "$schema" not in declaration["parameters_json_schema"]

    history = [Message.user("What's the weather in Paris?"), first.message, *result_message(call)]
    second = await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    assert second.text == "The answer is 42."
    assert second.stop_reason == "end_turn"
    model_turn, result_turn = last_body(server)["contents"][1:]
    assert model_turn["role"] == "model"
    assert result_turn["role"] == "user"
    assert model_turn["parts"][0]["functionCall"] == {"id": call.id, "name": "weather.get", "args": {"city": "Paris"}}
    assert model_turn["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert result_turn["parts"] == [
        {"functionResponse": {"id": call.id, "name": "weather.get", "response": {"result": "21C"}}}
    ]
    await provider.aclose()


async def test_stream_tool_round_trip(server: FakeGeminiServer) -> None:
    provider = make(server)
    events = await collect(provider, ask(tools=[WEATHER]))
    assert server.requests[-1].path == "/v1beta/models/fake-model-1:streamGenerateContent"
    assert server.requests[-1].query["alt"] == ["sse"]
    kinds = [type(e) for e in events]
    assert kinds == [ToolCallDelta, ToolCallReady, UsageReport, ResponseDone]
    delta, ready, _usage, done = events
    assert isinstance(delta, ToolCallDelta)
    assert json.loads(delta.arguments_delta) == {"city": "Paris"}
    assert isinstance(ready, ToolCallReady)
    assert ready.call.name == "weather.get"
    assert isinstance(done, ResponseDone)
    assert done.response.tool_calls == [ready.call]
    assert done.response.stop_reason == "tool_use"

    history = [Message.user("weather?"), done.response.message, *result_message(ready.call)]
    events = await collect(provider, ModelRequest(model="", messages=history, tools=[WEATHER]))
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 3
    assert "".join(texts) == "The answer is 42."
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.text == "The answer is 42."
    assert sum(isinstance(e, ResponseDone) for e in events) == 1
    await provider.aclose()


async def test_parallel_calls_and_merged_tool_results(server: FakeGeminiServer) -> None:
    server.turns.append(
        FakeTurn(tool_calls=[FakeToolCall("weather.get", {"city": "Paris"}), FakeToolCall("clock.now", {})])
    )
    provider = make(server)
    events = await collect(provider, ask(tools=[WEATHER, TIME]))
    done = events[-1]
    assert isinstance(done, ResponseDone)
    calls = done.response.tool_calls
    assert [c.name for c in calls] == ["weather.get", "clock.now"]
    assert len({c.id for c in calls}) == 2
    assert [e.call.id for e in events if isinstance(e, ToolCallReady)] == [c.id for c in calls]

    history = [Message.user("go"), done.response.message, *result_message(*calls)]
    await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER, TIME]))
    contents = last_body(server)["contents"]
    assert len(contents) == 3  # the two tool messages became one user content
    names = [p["functionResponse"]["name"] for p in contents[2]["parts"]]
    assert names == ["weather.get", "clock.now"]
    await provider.aclose()


# --------------------------------------------------------------------------- Gemini 3: ids and signatures


async def test_gemini3_ids_and_signatures_round_trip(server: FakeGeminiServer) -> None:
    signature = base64.b64encode(b"\xfb\xff\xfe-signed-by-the-model").decode()
    server.turns.append(
        FakeTurn(
            tool_calls=[
                FakeToolCall("weather.get", {"city": "Paris"}, id="fcA1", signature=signature),
                FakeToolCall("weather.get", {"city": "Rome"}, id="fcB2"),
            ]
        )
    )
    provider = make(server, default_model="gemini-3-pro-preview")
    first = await provider.complete(ask(tools=[WEATHER]))
    signed, unsigned = first.tool_calls
    assert (signed.id, unsigned.id) == ("fcA1", "fcB2")
    assert signed.provider_data == ProviderData(provider="gemini", data={"thought_signature": signature})
    assert unsigned.provider_data is None

    history = [Message.user("weather?"), first.message, *result_message(signed, unsigned)]
    second = await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    assert second.text  # the fake rejects unsigned or altered signatures for gemini-3 models
    model_parts = last_body(server)["contents"][1]["parts"]
    assert signature_bytes(model_parts[0]["thoughtSignature"]) == base64.b64decode(signature)
    assert model_parts[1]["thoughtSignature"] == "skip_thought_signature_validator"
    responses = [p["functionResponse"] for p in last_body(server)["contents"][2]["parts"]]
    assert [r["id"] for r in responses] == ["fcA1", "fcB2"]
    await provider.aclose()


async def test_gemini3_accepts_foreign_history(server: FakeGeminiServer) -> None:
    foreign = ToolCallPart(
        id="toolu_01",
        name="weather.get",
        arguments={"city": "Oslo"},
        provider_data=ProviderData(provider="anthropic", data={"thought_signature": "bm90LW91cnM="}),
    )
    history = [
        Message.user("weather?"),
        Message(role="assistant", parts=[TextPart(text="Checking."), foreign]),
        *result_message(foreign),
    ]
    provider = make(server, default_model="gemini-3-pro-preview")
    response = await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    assert response.text == "The answer is 42."
    parts = last_body(server)["contents"][1]["parts"]
    assert parts[0] == {"text": "Checking."}
    assert parts[1]["thoughtSignature"] == "skip_thought_signature_validator"
    await provider.aclose()


async def test_fake_rejects_unsigned_gemini3_function_call(server: FakeGeminiServer) -> None:
    body: dict[str, Any] = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "x"}}}]},
        ]
    }
    url = f"{server.origin}/v1beta/models/gemini-3-pro-preview:generateContent"
    async with httpx.AsyncClient() as client:
        answer = await client.post(url, json=body, headers={"x-goog-api-key": KEY})
        assert answer.status_code == 400
        assert "thought_signature" in answer.json()["error"]["message"]
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
        body["contents"][1]["parts"][0]["thoughtSignature"] = "skip_thought_signature_validator"
        assert (await client.post(url, json=body, headers={"x-goog-api-key": KEY})).status_code == 200


async def test_thinking_parts_and_text_signatures(server: FakeGeminiServer) -> None:
    thought_sig = base64.b64encode(b"thought-signature-bytes").decode()
    server.turns.append(FakeTurn(thinking="Let me think.", thinking_signature=thought_sig, text="Done."))
    provider = make(server, default_model="gemini-3-pro-preview")
    request = ask(thinking=ThinkingConfig(budget_tokens=1024))
    events = await collect(provider, request)
    # google-genai sends the thinking config as a snake_case model dump (the API accepts both spellings).
    assert last_body(server)["generationConfig"]["thinkingConfig"] == {
        "include_thoughts": True,
        "thinking_budget": 1024,
    }
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["Let me think."]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    thinking, text = done.response.message.parts
    assert isinstance(thinking, ThinkingPart)
    assert thinking.text == "Let me think."
    assert thinking.signature == thought_sig
    assert thinking.provider == "gemini"
    assert thinking.provider_data == ProviderData(provider="gemini", data={"thought_signature": thought_sig})
    assert isinstance(text, TextPart)
    assert text.text == "Done."

    await provider.complete(
        ModelRequest(model="", messages=[Message.user("q"), done.response.message, Message.user("more")])
    )
    sent = last_body(server)["contents"][1]["parts"]
    assert sent[0]["thought"] is True
    assert sent[0]["text"] == "Let me think."
    assert signature_bytes(sent[0]["thoughtSignature"]) == b"thought-signature-bytes"
    assert sent[1] == {"text": "Done."}
    await provider.aclose()


async def test_text_part_signature_is_kept_and_echoed(server: FakeGeminiServer) -> None:
    provider = make(server)
    own = TextPart(
        text="Earlier answer.",
        provider_data=ProviderData(provider="gemini", data={"thought_signature": "c2lnLXRleHQ="}),
    )
    history = [Message.user("a"), Message(role="assistant", parts=[own]), Message.user("b")]
    await provider.complete(ModelRequest(model="", messages=history))
    part = last_body(server)["contents"][1]["parts"][0]
    assert part["text"] == "Earlier answer."
    assert signature_bytes(part["thoughtSignature"]) == b"sig-text"
    await provider.aclose()


# --------------------------------------------------------------------------- request mapping


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (ForceTool(name="clock.now"), {"mode": "ANY", "allowedFunctionNames": ["clock.now"]}),
    ],
)
async def test_tool_choice_on_the_wire(server: FakeGeminiServer, choice: ToolChoice, expected: dict[str, Any]) -> None:
    provider = make(server)
    await provider.complete(ask(tools=[WEATHER, TIME], tool_choice=choice))
    assert last_body(server)["toolConfig"] == {"functionCallingConfig": expected}
    await provider.aclose()


async def test_generation_parameters_and_system_on_the_wire(server: FakeGeminiServer) -> None:
    provider = make(server)
    await provider.complete(ask(system="Be brief.", temperature=0.3, top_p=0.9, max_tokens=256, stop=["END", "STOP"]))
    body = last_body(server)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}], "role": "user"}
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 256,
        "stopSequences": ["END", "STOP"],
    }
    assert "tools" not in body
    assert "toolConfig" not in body
    await provider.aclose()


async def test_images_on_the_wire(server: FakeGeminiServer) -> None:
    provider = make(server)
    message = Message.user(
        "Describe these.",
        ImagePart(media_type="image/png", data=PNG),
        ImagePart(media_type="image/jpeg", url="https://example.com/cat.jpg"),
    )
    await provider.complete(ModelRequest(model="", messages=[message]))
    parts = last_body(server)["contents"][0]["parts"]
    assert parts[0] == {"text": "Describe these."}
    # Blob/FileData go out as snake_case model dumps inside camelCase part keys (the API takes both).
    assert parts[1]["inlineData"]["mime_type"] == "image/png"
    assert base64.urlsafe_b64decode(parts[1]["inlineData"]["data"]) == PNG
    assert parts[2] == {"fileData": {"file_uri": "https://example.com/cat.jpg", "mime_type": "image/jpeg"}}
    await provider.aclose()


def _image_result(call: ToolCallPart) -> Message:
    return Message(
        role="tool",
        parts=[
            ToolResultPart(
                call_id=call.id,
                name=call.name,
                content=[TextPart(text="a chart"), ImagePart(media_type="image/png", data=PNG)],
            )
        ],
    )


async def test_tool_result_images_as_function_response_parts_on_gemini3(server: FakeGeminiServer) -> None:
    call = ToolCallPart(id="c1", name="weather.get", arguments={"city": "Paris"})
    history = [Message.user("chart?"), Message(role="assistant", parts=[call]), _image_result(call)]
    provider = make(server, default_model="gemini-3-pro-preview")
    await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    response = last_body(server)["contents"][2]["parts"][0]["functionResponse"]
    assert response["response"] == {"result": "a chart"}
    [media] = response["parts"]
    assert media["inline_data"]["mime_type"] == "image/png"
    assert base64.urlsafe_b64decode(media["inline_data"]["data"]) == PNG
    await provider.aclose()


async def test_tool_result_images_as_text_before_gemini3(server: FakeGeminiServer) -> None:
    call = ToolCallPart(id="c1", name="weather.get", arguments={"city": "Paris"})
    history = [Message.user("chart?"), Message(role="assistant", parts=[call]), _image_result(call)]
    provider = make(server, default_model="gemini-2.5-flash")
    await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    response = last_body(server)["contents"][2]["parts"][0]["functionResponse"]
    assert "parts" not in response
    assert response["response"]["result"].startswith("a chart\n[image image/png")
    await provider.aclose()


async def test_tool_result_error_and_structured_content(server: FakeGeminiServer) -> None:
    failed = ToolCallPart(id="c1", name="weather.get", arguments={"city": "Atlantis"})
    structured = ToolCallPart(id="c2", name="clock.now", arguments={})
    history = [
        Message.user("go"),
        Message(role="assistant", parts=[failed, structured]),
        Message(
            role="tool",
            parts=[
                ToolResultPart(
                    call_id="c1", name="weather.get", content=[TextPart(text="no such city")], is_error=True
                ),
                ToolResultPart(call_id="c2", name="clock.now", content=[TextPart(text="{}")], structured={"hour": 9}),
            ],
        ),
    ]
    provider = make(server)
    await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER, TIME]))
    responses = [p["functionResponse"]["response"] for p in last_body(server)["contents"][2]["parts"]]
    assert responses == [{"error": "no such city"}, {"hour": 9}]
    await provider.aclose()


RICH = ToolSpec(
    name="notes.search",
    description="Search notes",
    input_schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Search",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "title": "Query", "default": "x"},
            "limit": {"type": ["integer", "null"]},
        },
        "required": ["query"],
    },
)


async def test_openapi_schema_form_sends_parameters(server: FakeGeminiServer) -> None:
    provider = make(server, options={"schema_form": "openapi"})
    response = await provider.complete(ask(tools=[RICH]))
    assert response.tool_calls[0].name == "notes.search"  # the fake accepted the OpenAPI subset
    [declaration] = last_body(server)["tools"][0]["functionDeclarations"]
    assert "parameters_json_schema" not in declaration
    parameters = declaration["parameters"]
    assert parameters["type"] == "OBJECT"
    assert parameters["properties"]["query"]["type"] == "STRING"
    assert not {"additionalProperties", "additional_properties", "title", "$schema"} & set(parameters)
    assert parameters["properties"]["limit"] == {"type": "INTEGER", "nullable": True}
    await provider.aclose()


async def test_bad_schema_form_option(server: FakeGeminiServer) -> None:
    with pytest.raises(ConfigError, match="schema_form"):
        make(server, options={"schema_form": "yaml"})


async def test_api_version_option_and_extra_headers(server: FakeGeminiServer) -> None:
    provider = make(server, options={"api_version": "v1"}, extra_headers={"x-team": "routekit"})
    await provider.complete(ask())
    request = server.requests[-1]
    assert request.path == "/v1/models/fake-model-1:generateContent"
    assert request.headers["x-team"] == "routekit"
    await provider.aclose()


async def test_vertex_express_mode_url_shape(server: FakeGeminiServer) -> None:
    config = ProviderConfig(
        provider="vertex", api_key=KEY, base_url=server.origin, default_model="fake-model-1", timeout=5.0
    )
    provider = GeminiProvider(config)
    response = await provider.complete(ask(tools=[WEATHER]))
    assert response.tool_calls[0].name == "weather.get"
    assert response.provider == "vertex"
    assert server.requests[-1].path == "/v1beta1/publishers/google/models/fake-model-1:generateContent"
    events = await collect(provider, ask())
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.text == "The answer is 42."
    assert server.requests[-1].path == "/v1beta1/publishers/google/models/fake-model-1:streamGenerateContent"
    models = await provider.list_models()
    assert server.requests[-1].path == "/v1beta1/publishers/google/models"
    assert [m.id for m in models] == server.models
    await provider.aclose()


async def test_vertex_without_credentials_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY"):
        GeminiProvider(ProviderConfig(provider="vertex", default_model="m"))


# --------------------------------------------------------------------------- usage and stop reasons


async def test_usage_with_cache_reasoning_and_tool_prompt_tokens(server: FakeGeminiServer) -> None:
    server.usage_extra = {"toolUsePromptTokenCount": 5}
    server.turns.append(
        FakeTurn(
            text="ok", usage=FakeUsage(input_tokens=100, output_tokens=30, cache_read_tokens=40, reasoning_tokens=12)
        )
    )
    provider = make(server)
    usage = (await provider.complete(ask())).usage
    assert (usage.input_tokens, usage.output_tokens) == (105, 30)
    assert (usage.cache_read_tokens, usage.reasoning_tokens, usage.cache_write_tokens) == (40, 12, None)
    await provider.aclose()


async def test_stream_usage_is_cumulative_and_final(server: FakeGeminiServer) -> None:
    server.turns.append(FakeTurn(text="a longer answer", usage=FakeUsage(input_tokens=50, output_tokens=21)))
    provider = make(server)
    events = await collect(provider, ask())
    reports = [e.usage.output_tokens or 0 for e in events if isinstance(e, UsageReport)]
    assert reports == sorted(reports)
    assert reports[-1] == 21
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.usage.input_tokens == 50
    await provider.aclose()


async def test_missing_usage_is_unknown(server: FakeGeminiServer) -> None:
    server.turns.extend([FakeTurn(text="ok", usage=None), FakeTurn(text="ok", usage=None)])
    provider = make(server)
    usage = (await provider.complete(ask())).usage
    assert usage.input_tokens is None
    assert usage.output_tokens is None
    assert usage.reasoning_tokens is None
    events = await collect(provider, ask())
    assert not any(isinstance(e, UsageReport) for e in events)
    assert isinstance(events[-1], ResponseDone)
    assert not events[-1].response.usage.known
    await provider.aclose()


@pytest.mark.parametrize(
    ("raw", "stop"),
    [
        ("MAX_TOKENS", "max_tokens"),
        ("SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("LANGUAGE", "other"),
    ],
)
async def test_stop_reasons(server: FakeGeminiServer, raw: str, stop: str) -> None:
    server.turns.append(FakeTurn(text="partial", stop=raw))
    provider = make(server)
    response = await provider.complete(ask())
    assert (response.stop_reason, response.raw_stop_reason) == (stop, raw)
    await provider.aclose()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (GeminiFault(status=400, message="Invalid value at 'contents'"), BadRequest),
        (GeminiFault(status=401, message="Request had invalid authentication credentials."), AuthenticationError),
        (GeminiFault(status=403, message="The caller does not have permission"), PermissionDenied),
        (GeminiFault(status=500, message="An internal error has occurred."), Unavailable),
        (GeminiFault(status=503, message="The service is currently unavailable."), Unavailable),
        (GeminiFault(status=503, message="The model is overloaded. Please try again later."), Overloaded),
        (GeminiFault(status=529, message="overloaded"), Overloaded),
        (
            GeminiFault(
                status=400,
                message="The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ),
            ContextTooLong,
        ),
    ],
)
async def test_http_errors(server: FakeGeminiServer, fault: Fault, expected: type[ProviderError]) -> None:
    server.faults.append(fault)
    provider = make(server)
    with pytest.raises(expected) as info:
        await provider.complete(ask())
    assert type(info.value) is expected
    assert info.value.status_code == fault.status
    assert info.value.provider == "gemini"
    assert fault.message in str(info.value)
    await provider.aclose()


async def test_rate_limit_retry_info(server: FakeGeminiServer) -> None:
    server.faults.append(
        GeminiFault(status=429, message="Resource has been exhausted (e.g. check quota).", retry_delay="1.5s")
    )
    provider = make(server)
    with pytest.raises(RateLimited) as info:
        await provider.complete(ask())
    assert info.value.retry_after == 1.5
    assert "RESOURCE_EXHAUSTED" in str(info.value)
    server.faults.append(GeminiFault(status=429, message="slow down", headers={"retry-after": "7"}))
    with pytest.raises(RateLimited) as info:
        await provider.complete(ask())
    assert info.value.retry_after == 7.0
    await provider.aclose()


async def test_rate_limit_before_the_stream_starts(server: FakeGeminiServer) -> None:
    server.faults.append(GeminiFault(status=429, message="quota", retry_delay="3s"))
    provider = make(server)
    error, seen = await stream_error(provider, ask())
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0
    assert seen == []
    assert error.partial is None
    await provider.aclose()


async def test_unknown_model_lists_available_models(server: FakeGeminiServer) -> None:
    provider = make(server)
    with pytest.raises(ModelNotFound) as info:
        await provider.complete(ask(model="gemini-9-ultra"))
    assert info.value.status_code == 404
    assert info.value.available == server.models
    assert "fake-model-2" in str(info.value)
    assert "gemini-9-ultra" in str(info.value)
    await provider.aclose()


async def test_timeout_before_headers() -> None:
    # Its own server: the delayed handler wakes up after the test and must not take a later test's turn.
    server = start_fake("gemini")
    try:
        server.faults.append(Fault(delay=2.0))
        provider = GeminiProvider(config_for("gemini", server, timeout=0.3))
        with pytest.raises(Timeout):
            await provider.complete(ask())
        await provider.aclose()
    finally:
        server.stop()


async def test_non_json_body(server: FakeGeminiServer) -> None:
    server.faults.append(Fault(non_json=True))
    provider = make(server)
    with pytest.raises(Unavailable, match="not valid JSON"):
        await provider.complete(ask())
    await provider.aclose()


async def test_connection_refused_is_unavailable() -> None:
    config = ProviderConfig(
        provider="gemini", api_key=KEY, base_url="http://127.0.0.1:9", default_model="m", timeout=2.0
    )
    provider = GeminiProvider(config)
    with pytest.raises(Unavailable):
        await provider.complete(ask())
    await provider.aclose()


# --------------------------------------------------------------------------- broken streams


def _text_turn() -> FakeTurn:
    return FakeTurn(text="Hello there, friend.", usage=FakeUsage(input_tokens=10, output_tokens=6))


async def test_stream_stall_times_out_with_partial(server: FakeGeminiServer) -> None:
    server.turns.append(_text_turn())
    server.faults.append(Fault(stall_after=1))
    provider = make(server, timeout=0.5)
    error, seen = await stream_error(provider, ask())
    assert isinstance(error, Timeout)
    assert error.partial is not None
    assert error.partial.text == "Hello t"
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["Hello t"]
    await provider.aclose()


async def test_stream_connection_reset_mid_stream(server: FakeGeminiServer) -> None:
    server.turns.append(_text_turn())
    server.faults.append(Fault(reset_after=2))
    provider = make(server)
    error, _ = await stream_error(provider, ask())
    assert isinstance(error, StreamInterrupted)
    assert error.partial is not None
    assert error.partial.text == "Hello there, f"
    assert error.partial.usage.input_tokens == 10
    await provider.aclose()


async def test_stream_clean_early_end(server: FakeGeminiServer) -> None:
    server.turns.append(_text_turn())
    server.faults.append(Fault(end_after=2))
    provider = make(server)
    error, seen = await stream_error(provider, ask())
    assert isinstance(error, StreamInterrupted)
    assert "finishReason" in str(error)
    assert error.partial is not None
    assert error.partial.text == "Hello there, f"
    assert error.partial.usage.input_tokens == 10
    assert error.partial.usage.output_tokens == 4
    assert not any(isinstance(e, ResponseDone) for e in seen)
    await provider.aclose()


async def test_stream_corrupt_chunk(server: FakeGeminiServer) -> None:
    server.turns.append(_text_turn())
    server.faults.append(Fault(corrupt_at=1))
    provider = make(server)
    error, _ = await stream_error(provider, ask())
    assert isinstance(error, StreamInterrupted)
    assert "not valid JSON" in str(error)
    assert error.partial is not None
    assert error.partial.text == "Hello t"
    await provider.aclose()


@pytest.mark.parametrize(("status", "expected"), [("INTERNAL", Unavailable), ("RESOURCE_EXHAUSTED", RateLimited)])
async def test_stream_error_event_mid_stream(
    server: FakeGeminiServer, status: str, expected: type[ProviderError]
) -> None:
    server.turns.append(_text_turn())
    server.faults.append(Fault(error_event_at=1, error_type=status, message="backend hiccup"))
    provider = make(server)
    error, _ = await stream_error(provider, ask())
    assert type(error) is expected
    assert "backend hiccup" in str(error)
    assert error.partial is not None
    assert error.partial.text == "Hello t"
    await provider.aclose()


async def test_stream_closed_when_consumer_stops_early(server: FakeGeminiServer) -> None:
    server.turns.append(_text_turn())
    server.faults.append(Fault(stall_after=1))  # the server would hang if we kept reading
    provider = make(server)
    stream = provider.stream(ask())
    async for event in stream:
        assert isinstance(event, TextDelta)
        break
    await stream.aclose()  # type: ignore[attr-defined]
    # The SDK's aiohttp session for this loop must hold no connection any more (released, not leaked).
    [session] = provider._client._api_client._aiohttp_sessions.values()
    for _ in range(200):  # the SDK's inner generators close on the next loop iterations
        if not session.connector._acquired:
            break
        await anyio.sleep(0.01)
    assert not session.connector._acquired
    await provider.aclose()
    assert session.closed


# --------------------------------------------------------------------------- secrets, models, check, config


async def test_key_never_appears_in_errors(server: FakeGeminiServer) -> None:
    provider = make(server)
    errors: list[ProviderError] = []
    for fault in (
        GeminiFault(status=400, message=f"API key not valid. Please pass a valid API key. Got {KEY}"),
        GeminiFault(status=403, message=f"key={KEY} denied"),
        Fault(error_event_at=0, message=f"echo {KEY}"),
    ):
        server.faults.append(fault)
        call = provider.complete(ask()) if fault.error_event_at is None else collect(provider, ask())
        with pytest.raises(ProviderError) as info:
            await call
        errors.append(info.value)
    assert isinstance(errors[0], AuthenticationError)
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in error.detail
    assert KEY not in repr(provider.config)
    await provider.aclose()


async def test_list_models_and_check(server: FakeGeminiServer) -> None:
    provider = make(server)
    models = await provider.list_models()
    assert server.requests[-1].path == "/v1beta/models"
    assert [m.id for m in models] == server.models
    assert models[0].context_window == 1048576
    assert models[0].provider == "gemini"
    result = await provider.check()
    assert result.ok
    assert result.models_visible == len(server.models)
    assert not any(":generateContent" in r.path for r in server.requests)  # no tokens spent
    await provider.aclose()


async def test_check_with_bad_key(server: FakeGeminiServer) -> None:
    server.valid_keys = {"AIzaTheOnlyGoodKey0000000"}
    provider = make(server)
    result = await provider.check()
    assert not result.ok
    assert "API key not valid" in result.detail
    assert KEY not in result.detail
    with pytest.raises(AuthenticationError):
        await provider.complete(ask())
    await provider.aclose()


async def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        GeminiProvider(ProviderConfig(provider="gemini", default_model="gemini-2.5-flash"))


# --------------------------------------------------------------------------- the fake validates like the API


@pytest.mark.parametrize(
    ("declaration", "fragment"),
    [
        ({"name": "9starts-with-digit", "parameters_json_schema": {"type": "object"}}, "Invalid function name"),
        ({"name": "has space", "parameters_json_schema": {"type": "object"}}, "Invalid function name"),
        (
            {"name": "f", "parameters": {"type": "OBJECT"}, "parameters_json_schema": {"type": "object"}},
            "mutually exclusive",
        ),
        ({"name": "f", "parameters_json_schema": {"$schema": "x", "type": "object"}}, "$schema"),
        ({"name": "f", "parameters": {"type": "OBJECT", "additionalProperties": False}}, "additionalProperties"),
        ({"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": ["string", "null"]}}}}, "type"),
        ({"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"oneOf": []}}}}, "oneOf"),
        ({"name": "f", "parameters": {"type": "STRING"}}, "must be OBJECT"),
        ({"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"enum": ["x"]}}}}, "must be specified"),
        (
            {"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": "STRING", "anyOf": []}}}},
            "any_of",
        ),
    ],
)
async def test_fake_rejects_invalid_declarations(
    server: FakeGeminiServer, declaration: dict[str, Any], fragment: str
) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": [{"functionDeclarations": [declaration]}],
    }
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{server.origin}/v1beta/models/fake-model-1:generateContent", json=body, headers={"x-goog-api-key": KEY}
        )
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]["message"]


async def test_fake_rejects_non_object_response_and_unanswered_calls(server: FakeGeminiServer) -> None:
    call = {
        "role": "model",
        "parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g", "args": {}}}],
    }
    bad_response = {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": ["not", "an", "object"]}}]}
    one_answer = {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "x"}}}]}
    user = {"role": "user", "parts": [{"text": "hi"}]}
    url = f"{server.origin}/v1/models/fake-model-1:generateContent"
    async with httpx.AsyncClient() as client:
        first = await client.post(url, json={"contents": [user, call, bad_response]}, headers={"x-goog-api-key": KEY})
        second = await client.post(url, json={"contents": [user, call, one_answer]}, headers={"x-goog-api-key": KEY})
    assert first.status_code == 400
    assert "protobuf.Struct" in first.json()["error"]["message"]
    assert second.status_code == 400
    assert "number of function response parts" in second.json()["error"]["message"]


async def test_response_fields(server: FakeGeminiServer) -> None:
    server.turns.append(FakeTurn(text="hi", model="gemini-2.5-flash-001"))
    provider = make(server)
    response = await provider.complete(ask())
    assert isinstance(response, ModelResponse)
    assert response.model == "gemini-2.5-flash-001"
    assert response.response_id == "resp-fake-1"
    assert response.provider == "gemini"
    assert response.message.role == "assistant"
    await provider.aclose()


# ---------------------------------------------------------------------------- the JSON path and the typed path

SIGNATURE = base64.b64encode(b"\xfa\x00signature/bytes+").decode()  # "+" and "/": the standard alphabet

JSON_VS_TYPED_TURNS = [
    FakeTurn(text="plain answer"),
    FakeTurn(thinking="Let me think.", thinking_signature=SIGNATURE, text="Done."),
    FakeTurn(
        text="calling two tools",
        tool_calls=[
            FakeToolCall(
                "weather_get", {"city": "Paris", "nested": {"units": ["C", "F"], "n": 1.5}}, id="fc-1", signature="c2ln"
            ),
            FakeToolCall("clock_now", {}, id="fc-2", signature=SIGNATURE),
        ],
    ),
    FakeTurn(
        text="cut", stop="MAX_TOKENS", usage=FakeUsage(input_tokens=100, cache_read_tokens=40, reasoning_tokens=12)
    ),
    FakeTurn(text="no usage", usage=None),
    FakeTurn(text="", stop="SAFETY"),
    FakeTurn(text="versioned", model="gemini-3-pro-preview-001"),
]


@pytest.mark.parametrize("turn", JSON_VS_TYPED_TURNS, ids=lambda t: (t.text or t.stop or "empty")[:12])
async def test_complete_reads_the_json_body_as_the_sdks_typed_response_would(
    server: FakeGeminiServer, turn: FakeTurn
) -> None:
    """complete() reads the raw body (should_return_http_response); the same response read through the SDK's
    typed GenerateContentResponse must give the same ModelResponse."""
    from providers.gemini import _ResponseBuilder

    server.usage_extra = {"toolUsePromptTokenCount": 5}
    server.turns.extend([turn, turn])
    provider = make(server, default_model="gemini-3-pro-preview")
    request = ask(tools=[WEATHER, TIME], thinking=ThinkingConfig(budget_tokens=512))
    try:
        from_json = await provider.complete(request)
        call = provider.prepare(request)
        wire = provider.to_wire(call, stream=False)
        typed = await provider._client.aio.models.generate_content(
            model=call.model, contents=wire.contents, config=wire.config
        )
        builder = _ResponseBuilder(provider.name, call.model, call.toolset)
        builder.feed(typed)
        from_typed = builder.response()
    finally:
        await provider.aclose()
    json_request, typed_request = server.requests[-2:]
    assert json_request.json == typed_request.json  # the same request either way
    assert from_json == from_typed
    assert from_json.text == turn.text
    assert len(from_json.tool_calls) == len(turn.tool_calls)
