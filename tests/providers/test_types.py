"""The normalized model: lossless JSON round trips (sessions are stored and resumed) and Usage arithmetic."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from providers.types import (
    AudioPart,
    ForceTool,
    ImagePart,
    Message,
    ModelRequest,
    ModelResponse,
    ProviderData,
    ResourcePart,
    ResponseDone,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingConfig,
    ThinkingDelta,
    ThinkingPart,
    ToolAnnotations,
    ToolCallDelta,
    ToolCallPart,
    ToolCallReady,
    ToolResultPart,
    ToolSpec,
    Usage,
    UsageReport,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- strategies


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


texts = st.text(max_size=20)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.-0123456789", min_size=1, max_size=12)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)
provider_data = maybe(st.builds(ProviderData, provider=names, data=json_objects))
counts = maybe(st.integers(min_value=0, max_value=10**12))

text_parts = st.builds(TextPart, text=texts, provider_data=provider_data)
image_parts = st.one_of(
    st.builds(ImagePart, media_type=names, data=st.binary(max_size=32), provider_data=provider_data),
    st.builds(ImagePart, media_type=names, url=texts, provider_data=provider_data),
)
audio_parts = st.builds(AudioPart, media_type=names, data=st.binary(max_size=32), provider_data=provider_data)
resource_parts = st.builds(
    ResourcePart,
    uri=texts,
    name=maybe(texts),
    title=maybe(texts),
    description=maybe(texts),
    media_type=maybe(names),
    text=maybe(texts),
    data=maybe(st.binary(max_size=32)),
    provider_data=provider_data,
)
thinking_parts = st.builds(
    ThinkingPart,
    text=texts,
    signature=maybe(texts),
    redacted_data=maybe(texts),
    provider=maybe(names),
    provider_data=provider_data,
)
tool_call_parts = st.builds(
    ToolCallPart,
    id=names,
    name=names,
    arguments=json_objects,
    raw_arguments=maybe(texts),
    provider_data=provider_data,
)
result_content = st.one_of(text_parts, image_parts, audio_parts, resource_parts)
tool_result_parts = st.builds(
    ToolResultPart,
    call_id=names,
    name=names,
    content=st.lists(result_content, max_size=3),
    structured=maybe(json_objects),
    is_error=st.booleans(),
    provider_data=provider_data,
)
parts = st.one_of(
    text_parts, image_parts, audio_parts, resource_parts, thinking_parts, tool_call_parts, tool_result_parts
)
messages = st.builds(Message, role=st.sampled_from(["user", "assistant", "tool"]), parts=st.lists(parts, max_size=4))
usages = st.builds(
    Usage,
    input_tokens=counts,
    output_tokens=counts,
    cache_read_tokens=counts,
    cache_write_tokens=counts,
    reasoning_tokens=counts,
)
schemas = maybe(st.dictionaries(texts, json_values, max_size=3))
tool_specs = st.builds(
    ToolSpec,
    name=names,
    description=texts,
    input_schema=schemas,
    output_schema=schemas,
    annotations=maybe(
        st.builds(
            ToolAnnotations,
            title=maybe(texts),
            read_only=maybe(st.booleans()),
            destructive=maybe(st.booleans()),
            idempotent=maybe(st.booleans()),
            open_world=maybe(st.booleans()),
        )
    ),
    title=maybe(texts),
    origin=maybe(names),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
requests = st.builds(
    ModelRequest,
    model=names,
    messages=st.lists(messages, max_size=3),
    system=maybe(texts),
    tools=st.lists(tool_specs, max_size=2),
    tool_choice=maybe(st.sampled_from(["auto", "none", "required"]) | st.builds(ForceTool, name=names)),
    parallel_tool_calls=maybe(st.booleans()),
    temperature=maybe(finite),
    top_p=maybe(finite),
    max_tokens=maybe(st.integers(min_value=1, max_value=10**6)),
    stop=maybe(st.lists(texts, max_size=2)),
    thinking=maybe(
        st.builds(
            ThinkingConfig,
            enabled=st.booleans(),
            budget_tokens=maybe(st.integers(min_value=0, max_value=10**6)),
            effort=maybe(st.sampled_from(["minimal", "low", "medium", "high"])),
        )
    ),
    strict_tools=maybe(st.booleans()),
    metadata=st.dictionaries(texts, texts, max_size=2),
)
responses = st.builds(
    ModelResponse,
    message=messages,
    usage=usages,
    stop_reason=st.sampled_from(
        ["end_turn", "tool_use", "max_tokens", "stop_sequence", "content_filter", "refusal", "pause", "error", "other"]
    ),
    raw_stop_reason=maybe(texts),
    model=names,
    provider=names,
    response_id=maybe(texts),
    request_id=maybe(texts),
)
events = st.one_of(
    st.builds(TextDelta, text=texts),
    st.builds(ThinkingDelta, text=texts),
    st.builds(
        ToolCallDelta,
        index=st.integers(min_value=0, max_value=50),
        id=maybe(names),
        name=maybe(names),
        arguments_delta=texts,
    ),
    st.builds(ToolCallReady, call=tool_call_parts),
    st.builds(UsageReport, usage=usages),
    st.builds(ResponseDone, response=responses),
)

EVENT_ADAPTER: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)

# --------------------------------------------------------------------------- round trips


@SETTINGS
@given(messages)
def test_message_round_trips_through_json(message: Message) -> None:
    restored = Message.model_validate_json(message.model_dump_json())
    assert restored == message
    assert [type(p) for p in restored.parts] == [type(p) for p in message.parts]


@SETTINGS
@given(requests)
def test_request_round_trips_through_json(request: ModelRequest) -> None:
    assert ModelRequest.model_validate_json(request.model_dump_json()) == request


@SETTINGS
@given(responses)
def test_response_round_trips_through_json(response: ModelResponse) -> None:
    assert ModelResponse.model_validate_json(response.model_dump_json()) == response


@SETTINGS
@given(events)
def test_stream_event_round_trips_through_json(event: StreamEvent) -> None:
    restored = EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(event))
    assert type(restored) is type(event)
    assert restored == event


def test_bytes_travel_as_base64_and_come_back_as_bytes() -> None:
    payload = bytes(range(256))
    message = Message(
        role="tool",
        parts=[ToolResultPart(call_id="c1", name="shot", content=[ImagePart(data=payload), AudioPart(data=b"\x00")])],
    )
    raw = message.model_dump_json()
    assert "\\u0000" not in raw  # base64, not raw bytes escaped into the JSON
    restored = Message.model_validate_json(raw)
    image = restored.tool_results[0].content[0]
    assert isinstance(image, ImagePart)
    assert image.data == payload


def test_image_part_needs_exactly_one_source() -> None:
    with pytest.raises(ValidationError):
        ImagePart()
    with pytest.raises(ValidationError):
        ImagePart(data=b"x", url="https://example.com/a.png")


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Message.model_validate({"role": "user", "parts": [], "colour": "blue"})


# --------------------------------------------------------------------------- usage

FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@SETTINGS
@given(usages, usages)
def test_usage_addition_keeps_unknown_unknown(a: Usage, b: Usage) -> None:
    total = a + b
    for name in FIELDS:
        left, right = getattr(a, name), getattr(b, name)
        expected = None if left is None or right is None else left + right
        assert getattr(total, name) == expected, name


def test_usage_known_and_total() -> None:
    assert Usage().total_tokens is None
    assert not Usage(input_tokens=3).known
    usage = Usage(input_tokens=3, output_tokens=4)
    assert usage.known
    assert usage.total_tokens == 7
    assert (usage + Usage(input_tokens=1)).output_tokens is None
