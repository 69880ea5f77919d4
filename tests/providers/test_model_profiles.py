"""Per-model profiles (``profile_for``) and what the adapters do with them, through the real SDKs and fakes.

The adapters ask the profile (not the model name) which request field carries thinking, whether a
non-streaming request must be streamed, and whether images may travel inside tool results.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from providers.base import Provider, create_provider
from providers.errors import ConfigError
from providers.profiles import DEFAULT_FAMILY, ModelProfile, model_families, profile_for
from providers.schema import compile_tools
from providers.types import (
    ImagePart,
    Message,
    ModelRequest,
    ResponseDone,
    TextPart,
    ThinkingConfig,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)
from tests.fakes.base import FakeProviderServer
from tests.providers.conftest import config_for, start_fake

EFFORT = ThinkingConfig(effort="high")
WEATHER = ToolSpec(
    name="weather.get",
    description="Weather for a city.",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]


def ask(model: str, **fields: object) -> ModelRequest:
    return ModelRequest(model=model, messages=[Message.user("hi")], **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["anthropic", "openai", "gemini", "ollama"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeProviderServer]:
    server = start_fake(request.param)
    try:
        yield server
    finally:
        server.stop()


def fake_of(family: str) -> Iterator[FakeProviderServer]:
    server = start_fake(family)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[FakeProviderServer]:
    yield from fake_of("anthropic")


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeProviderServer]:
    yield from fake_of("openai")


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeProviderServer]:
    yield from fake_of("gemini")


@pytest.fixture(scope="module")
def ollama_fake() -> Iterator[FakeProviderServer]:
    yield from fake_of("ollama")


async def sent(server: FakeProviderServer, family: str, request: ModelRequest, **config: object) -> dict[str, Any]:
    """The body the adapter for ``family`` (``config`` overriding the test config) sends for ``request``."""
    return await last_body(server, create_provider(config_for(family, server, **config)), request)


async def last_body(server: FakeProviderServer, provider: Provider, request: ModelRequest) -> dict[str, Any]:
    server.models = [*server.models, request.model] if request.model not in server.models else server.models
    try:
        await provider.complete(request)
    finally:
        await provider.aclose()
    return server.requests[-1].json


# --------------------------------------------------------------------------- profile_for


def test_profile_for_matches_families_on_the_bare_lower_case_id_and_is_cached() -> None:
    assert profile_for("gemini", "models/Gemini-3-Pro-Preview").family == "gemini-3*"
    assert profile_for("vertex", "publishers/google/models/gemini-2.5-flash").family == "gemini-2.5*"
    assert profile_for("openai", "gpt-4.1-mini").thinking_field is None
    assert profile_for("openai", "o4-mini").thinking_field == "reasoning_effort"
    assert profile_for("azure", "o3").thinking_field == "reasoning_effort"
    assert profile_for("openrouter", "openai/o3").thinking_field == "reasoning"  # OpenRouter's own field
    assert profile_for("groq", "o3").thinking_field is None  # a compatible server: only what it documents
    assert profile_for("anthropic", "claude-opus-4-0").nonstreaming_max_tokens == 8192
    assert profile_for("anthropic", "claude-opus-4-1").nonstreaming_max_tokens is None  # the SDK caps dated ids
    assert profile_for("openai", "o3") is profile_for("openai", "o3")  # one lookup per (provider, model)
    unknown = profile_for("openai", "fake-model-1")
    assert unknown.family == DEFAULT_FAMILY
    assert (unknown.context_window, unknown.max_output_tokens, unknown.vision) == (None, None, None)
    with pytest.raises(ConfigError, match="unknown provider"):
        profile_for("nope", "x")


def test_every_known_family_is_listed_and_its_pattern_gives_its_profile() -> None:
    for provider in ("anthropic", "openai", "gemini", "ollama", "groq"):
        families = model_families(provider)
        assert families[-1].family == DEFAULT_FAMILY
        assert families[-1].capabilities() == profile_for(provider, "no-such-model-anywhere").capabilities()
        for family in families[:-1]:
            assert isinstance(family, ModelProfile)
            # a model id spelled like the pattern gets that family's profile (the rules are ordered so)
            assert profile_for(provider, family.model).capabilities() == family.capabilities()
        assert {f.tool_names for f in families} == {families[-1].tool_names}


# --------------------------------------------------------------------------- thinking: the profile's field


async def test_openai_sends_reasoning_effort_only_to_models_that_take_it(openai_fake: FakeProviderServer) -> None:
    reasoning = await sent(openai_fake, "openai", ask("o3", thinking=EFFORT))
    assert reasoning["reasoning_effort"] == "high"
    plain = await sent(openai_fake, "openai", ask("gpt-4.1-mini", thinking=EFFORT))
    assert "reasoning_effort" not in plain  # GPT-4.1 refuses the field; a fallback to it must not fail
    unknown = await sent(openai_fake, "openai", ask("fake-model-1", thinking=EFFORT))
    assert unknown["reasoning_effort"] == "high"  # a model routekit does not know: the provider's default


async def test_openai_compatible_presets_use_their_own_fields(openai_fake: FakeProviderServer) -> None:
    base = openai_fake.origin + "/v1"
    groq = create_provider(config_for("openai", openai_fake, provider="groq", api_key="gsk_x", base_url=base))
    body = await last_body(openai_fake, groq, ask("o3", thinking=EFFORT, max_tokens=50))
    assert "reasoning_effort" not in body
    assert body["max_tokens"] == 50
    assert "max_completion_tokens" not in body
    router = create_provider(config_for("openai", openai_fake, provider="openrouter", base_url=base))
    body = await last_body(openai_fake, router, ask("openai/o3", thinking=EFFORT, max_tokens=50))
    assert body["reasoning"] == {"effort": "high"}
    openai = create_provider(config_for("openai", openai_fake))
    body = await last_body(openai_fake, openai, ask("o3", max_tokens=50))
    assert body["max_completion_tokens"] == 50


async def test_anthropic_sends_thinking_only_to_models_that_have_it(anthropic_fake: FakeProviderServer) -> None:
    budget = ThinkingConfig(budget_tokens=2048)
    old = await last_body(
        anthropic_fake,
        create_provider(config_for("anthropic", anthropic_fake)),
        ask("claude-3-5-haiku-20241022", thinking=budget),
    )
    assert "thinking" not in old
    assert old["max_tokens"] == 4096  # the default; no room made for a budget that is not sent
    new = await sent(anthropic_fake, "anthropic", ask("claude-sonnet-4-5", thinking=budget))
    assert new["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_ollama_sends_think_only_to_models_that_think(ollama_fake: FakeProviderServer) -> None:
    on = ThinkingConfig(enabled=True)
    plain = await sent(ollama_fake, "ollama", ask("llama3.1", thinking=on))
    assert "think" not in plain
    thinker = await sent(ollama_fake, "ollama", ask("qwen3:8b", thinking=on))
    assert thinker["think"] is True


async def test_gemini_sends_no_thinking_config_to_models_without_one(gemini_fake: FakeProviderServer) -> None:
    off = ThinkingConfig(enabled=False)
    old = await sent(gemini_fake, "gemini", ask("gemini-2.0-flash", thinking=off))
    assert "thinkingConfig" not in old.get("generationConfig", {})
    new = await sent(gemini_fake, "gemini", ask("gemini-2.5-flash", thinking=off))
    assert "thinkingConfig" in new["generationConfig"]


# --------------------------------------------------------------------------- other profile fields


async def test_anthropic_streams_a_request_above_the_models_non_streaming_cap(
    anthropic_fake: FakeProviderServer,
) -> None:
    capped = await sent(anthropic_fake, "anthropic", ask("claude-opus-4-0", max_tokens=10_000))
    assert capped["stream"] is True
    under = await sent(anthropic_fake, "anthropic", ask("claude-opus-4-0", max_tokens=8_000))
    assert "stream" not in under
    other = await sent(anthropic_fake, "anthropic", ask("claude-sonnet-4-5", max_tokens=10_000))
    assert "stream" not in other


async def test_gemini_puts_tool_result_images_in_the_function_response_where_the_profile_allows(
    gemini_fake: FakeProviderServer,
) -> None:
    call = ToolCallPart(id="c1", name=WEATHER.name, arguments={"city": "Oslo"})
    result = ToolResultPart(
        call_id="c1", name=WEATHER.name, content=[TextPart(text="map:"), ImagePart(data=PNG, media_type="image/png")]
    )
    history = [Message.user("weather?"), Message(role="assistant", parts=[call]), Message(role="tool", parts=[result])]
    bodies = {}
    for model in ("gemini-3-flash-preview", "gemini-2.5-flash"):
        request = ModelRequest(model=model, messages=history, tools=[WEATHER])
        bodies[model] = await sent(gemini_fake, "gemini", request)

    def response_of(body: dict[str, object]) -> dict[str, object]:
        contents = body["contents"]
        assert isinstance(contents, list)
        [part] = [p for c in contents for p in c["parts"] if "functionResponse" in p]
        response: dict[str, object] = part["functionResponse"]
        return response

    assert "parts" in response_of(bodies["gemini-3-flash-preview"])
    assert "parts" not in response_of(bodies["gemini-2.5-flash"])


# --------------------------------------------------------------------------- the one tool cache


def test_equal_specs_share_one_compiled_toolset_and_its_wire_envelope() -> None:
    from providers.profiles import get_profile

    first = compile_tools([WEATHER], get_profile("openai"))
    copy = compile_tools([ToolSpec.model_validate(WEATHER.model_dump())], get_profile("openai"))
    assert copy is first
    built: list[int] = []

    def build(toolset: object) -> list[str]:
        built.append(1)
        return ["wire"]

    assert first.wire("probe", build) is copy.wire("probe", build)
    assert built == [1]


async def test_a_changed_spec_is_compiled_again_not_served_from_the_cache(openai_fake: FakeProviderServer) -> None:
    spec = ToolSpec(name="notes.find", input_schema={"type": "object", "properties": {"q": {"type": "string"}}})
    provider = create_provider(config_for("openai", openai_fake))
    try:
        await provider.complete(ask("fake-model-1", tools=[spec]))
        spec.input_schema = {"type": "object", "properties": {"text": {"type": "string"}}}  # assignment
        await provider.complete(ask("fake-model-1", tools=[spec]))
        renamed = spec.model_copy(update={"name": "notes.search"})
        await provider.complete(ask("fake-model-1", tools=[renamed]))
    finally:
        await provider.aclose()
    sent = [r.json["tools"][0]["function"] for r in openai_fake.requests[-3:]]
    assert list(sent[0]["parameters"]["properties"]) == ["q"]
    assert list(sent[1]["parameters"]["properties"]) == ["text"]
    assert sent[2]["name"].startswith("notes_search")  # the copy's new name, not the cached one


async def test_every_adapter_streams_and_completes_through_the_skeleton(fake: FakeProviderServer) -> None:
    family = {"FakeAnthropicServer": "anthropic", "FakeOpenAIServer": "openai"}.get(type(fake).__name__)
    family = family or {"FakeGeminiServer": "gemini", "FakeOllamaServer": "ollama"}[type(fake).__name__]
    provider = create_provider(config_for(family, fake))
    try:
        whole = await provider.complete(ask("fake-model-1"))
        events = [event async for event in provider.stream(ask("fake-model-1"))]
    finally:
        await provider.aclose()
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.text == whole.text
    assert whole.provider == family
