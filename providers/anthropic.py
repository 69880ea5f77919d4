"""Anthropic Messages adapter over the official ``anthropic`` SDK (2.12, built on httpx2).

Streams use the raw events of the Messages stream (``client.messages.create(stream=True)``, or the same
request through the SDK's ``post`` with the events left as decoded JSON: see ``AnthropicProvider.open_stream``) rather
than the SDK's helper accumulators (which re-parse partial tool JSON with jiter on every delta): routekit
assembles text, thinking and tool calls itself, which keeps the per-call CPU at or below the bare SDK call.

Wire facts this module relies on (see the shared folder's reference/provider-wire-formats.md §3):

* ``usage.input_tokens`` excludes cache reads and writes; routekit's ``input_tokens`` includes them.
* ``message_start`` carries the input side of usage, ``message_delta`` the cumulative output (and it may
  restate the input side, which then wins). ``message_stop`` is the terminal event.
* ``event: error`` mid-stream surfaces as ``APIStatusError`` with status 200; the error type is in the body.
* Transport errors while iterating a stream escape the SDK raw (``httpx2.ReadTimeout``,
  ``httpx2.RemoteProtocolError``), and a data line that is not JSON raises ``json.JSONDecodeError``.
* All results of one assistant turn must come back in the next user message, tool results first.
* With thinking on, the assistant turn that made tool calls must be sent back starting with its signed
  thinking blocks, unchanged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anthropic
import httpx2
from opentelemetry import trace  # a dependency of the anthropic SDK, already imported by it

from providers._adapter import Adapter, Call, StreamState
from providers._http import omit_environment_headers, sdk_http_client
from providers._wire import WireView, json_object, request_body
from providers.errors import (
    AuthenticationError,
    BadRequest,
    ContextTooLong,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
    Unavailable,
    error_for_status,
    looks_like_context_overflow,
    parse_retry_after,
)
from providers.schema import CompiledToolset
from providers.stream import ToolCallAssembler
from providers.types import (
    ForceTool,
    ImagePart,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    Part,
    StopReason,
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
    Usage,
    UsageReport,
)

if TYPE_CHECKING:
    from providers.egress import EgressPolicy

# Anthropic requires max_tokens on every request; used when the request sets none.
DEFAULT_MAX_TOKENS = 4096
# Thinking budget when ThinkingConfig gives none: the API minimum is 1024 ("budget_tokens: >= 1024").
MIN_THINKING_BUDGET = 1024
_EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
DEFAULT_THINKING_BUDGET = _EFFORT_BUDGETS["medium"]

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "pause_turn": "pause",
    "refusal": "refusal",
    "model_context_window_exceeded": "context_exceeded",
}

# Anthropic error.type -> taxonomy, for errors whose HTTP status says nothing (event: error mid-stream).
_ERROR_TYPES: dict[str, type[ProviderError]] = {
    "invalid_request_error": BadRequest,
    "authentication_error": AuthenticationError,
    "billing_error": PermissionDenied,
    "permission_error": PermissionDenied,
    "not_found_error": ModelNotFound,
    "request_too_large": ContextTooLong,
    "rate_limit_error": RateLimited,
    "api_error": Unavailable,
    "timeout_error": Timeout,
    "overloaded_error": Overloaded,
}

# Image media types the API accepts inline (Base64ImageSourceParam.media_type).
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


class AnthropicProvider(Adapter):
    """routekit's Provider for the Anthropic Messages API.

    ``config.options`` understood here: ``http_transport`` (``"aiohttp"``, the default, or ``"httpx"``).
    """

    # Transport errors while iterating a stream escape the SDK raw (module doc).
    stream_errors = (anthropic.AnthropicError, httpx2.HTTPError, json.JSONDecodeError, OSError)

    def build_client(self, egress: EgressPolicy | None) -> None:
        config = self.config
        headers: dict[str, Any] = config.header_values()
        if egress is not None:  # the SDK adds ANTHROPIC_CUSTOM_HEADERS from the environment: not the user's
            omit_environment_headers(headers, "ANTHROPIC_CUSTOM_HEADERS", anthropic.Omit())
        self._client = anthropic.AsyncAnthropic(
            # Always explicit: with no key or base URL the SDK would look for them in the environment.
            api_key=config.resolve_api_key(environment=egress is None),
            base_url=config.base_url or self.profile.default_base_url,
            timeout=anthropic.Timeout(config.timeout, connect=config.connect_timeout),
            max_retries=0,  # routekit's resilience layer retries, so that each attempt is metered
            default_headers=headers or None,
            http_client=sdk_http_client(config, anthropic, egress),
        )
        # The same client (same HTTP connection pool) without the SDK's own OpenTelemetry spans, for streams
        # while the application has not configured OpenTelemetry (see ``open_stream``).
        self._untraced_client = self._client.with_options(open_telemetry=False)

    def __repr__(self) -> str:
        return f"AnthropicProvider(name={self.name!r}, base_url={self.config.base_url!r})"

    async def aclose(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ request -> wire

    def to_wire(self, call: Call, *, stream: bool) -> dict[str, Any]:
        """The keyword parameters of ``messages.create`` (the same for a stream: ``stream`` is added on send)."""
        del stream
        request, toolset = call.request, call.toolset
        params: dict[str, Any] = {"model": call.model, "messages": _wire_messages(call.history, toolset, self.name)}
        max_tokens = request.max_tokens
        thinking = request.thinking
        if thinking is not None and thinking.enabled and call.profile.thinking_field == "thinking":
            params["thinking"], max_tokens = _thinking(thinking, max_tokens, self.name, call.model)
        params["max_tokens"] = max_tokens or DEFAULT_MAX_TOKENS
        if request.system:
            params["system"] = request.system
        if request.stop:
            params["stop_sequences"] = request.stop
        if toolset.tools:
            params["tools"] = toolset.wire("anthropic", _wire_tools)
            choice = _tool_choice(request, toolset)
            if choice is not None:
                params["tool_choice"] = choice
        extra: dict[str, Any] = {}
        # anthropic 2.12 dropped temperature/top_p from its typed parameters; the API still reads them.
        if request.temperature is not None:
            extra["temperature"] = request.temperature
        if request.top_p is not None:
            extra["top_p"] = request.top_p
        if extra:
            params["extra_body"] = extra
        user_id = request.metadata.get("user_id")
        if user_id:
            params["metadata"] = {"user_id": user_id}
        return params

    def streams_instead(self, wire: dict[str, Any], call: Call) -> bool:
        """Whether a non-streaming request of this size would be refused by the SDK's own rule (an expected
        generation time over 10 minutes at 128k tokens per hour, or over the model's non-streaming cap): such
        requests are made as streams, which keep the connection busy instead of idle for that long."""
        max_tokens: int = wire["max_tokens"]
        cap = call.profile.nonstreaming_max_tokens
        return max_tokens * 3600 / 128_000 > 600 or (cap is not None and max_tokens > cap)

    # ------------------------------------------------------------------ the SDK calls

    async def send(self, wire: dict[str, Any], call: Call) -> tuple[Any, str | None]:
        """The Messages response (the SDK's ``Message``, or its JSON through :class:`_Event`; None when the body
        is not JSON) and the request id. See :meth:`open_stream` for why usually not ``messages.create``."""
        if _typed_call_wanted():
            response = await self._client.messages.with_raw_response.create(**wire)
            return await response.parse(), response.headers.get("request-id")
        raw = await self._untraced_client.post(
            "/v1/messages", body=request_body(wire, stream=False), cast_to=httpx2.Response
        )
        data = json_object(raw.content)
        return (None if data is None else _Event(data)), raw.headers.get("request-id")

    async def open_stream(self, wire: dict[str, Any], call: Call) -> Any:
        """The streaming Messages request. Usually through the SDK's generic ``post`` with ``cast_to=object``:
        the same endpoint, body, headers and stream handling (``event: error`` still raises in the SDK's stream
        class) as ``messages.create(stream=True)``, which is this very ``post`` with typed events, but the
        events arrive as decoded JSON (read through :class:`_Event`) instead of being built by the SDK's generic
        ``construct_type`` (measured: about 0.25 ms of CPU per call), and on a copy of the client without the
        SDK's OpenTelemetry spans, which build their attributes on every call (about 0.1 ms) even when nothing
        records them. ``messages.create`` itself is used when it adds something (:func:`_typed_call_wanted`).
        :meth:`send` reads the response body the same way.
        """
        if _typed_call_wanted():
            return await self._client.messages.create(**wire, stream=True)
        return await self._untraced_client.post(
            "/v1/messages",
            body=request_body(wire, stream=True),
            cast_to=object,
            stream=True,
            stream_cls=anthropic.AsyncStream[object],
        )

    async def close_stream(self, chunks: Any) -> None:
        await chunks.close()

    async def fetch_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=info.id,
                provider=self.name,
                display_name=getattr(info, "display_name", None),
                context_window=_int(getattr(info, "max_input_tokens", None)),
                max_output_tokens=_int(getattr(info, "max_tokens", None)),
            )
            async for info in self._client.models.list(limit=1000)
        ]

    # ------------------------------------------------------------------ wire -> response

    def from_wire(self, answer: tuple[Any, str | None], call: Call) -> ModelResponse:
        """A Messages API response (the SDK's ``Message`` or its JSON through :class:`_Event`) as routekit's."""
        message, request_id = answer
        if message is None or getattr(message, "type", None) != "message":
            raise Unavailable(
                "the endpoint answered with something that is not a Messages API response; check base_url",
                provider=self.name,
                model=call.model,
                secrets=self._secrets,
            )
        parts: list[Part] = []
        blocks: list[Any] = list(message.content)
        for block in blocks:
            kind = block.type
            if kind == "text":
                parts.append(TextPart(text=block.text))
            elif kind == "thinking":
                parts.append(ThinkingPart(text=block.thinking, signature=block.signature, provider=self.name))
            elif kind == "redacted_thinking":
                parts.append(ThinkingPart(redacted_data=block.data, provider=self.name))
            elif kind == "tool_use":
                arguments = block.input if isinstance(block.input, dict) else {}
                raw = None if isinstance(block.input, dict) else json.dumps(block.input)
                name = call.toolset.canonical_name(block.name)
                parts.append(ToolCallPart(id=block.id, name=name, arguments=arguments, raw_arguments=raw))
        raw_stop = getattr(message, "stop_reason", None)
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=_UsageState().update(getattr(message, "usage", None)).usage(),
            stop_reason=_stop_reason(raw_stop),
            raw_stop_reason=raw_stop,
            model=getattr(message, "model", None) or call.model,
            provider=self.name,
            response_id=getattr(message, "id", None),
            request_id=request_id,
        )

    def stream_state(self, call: Call, chunks: Any) -> _StreamState:
        return _StreamState(self.name, call.model, call.toolset, chunks.response.headers.get("request-id"))

    # ------------------------------------------------------------------ errors

    def map_error(self, exc: BaseException, *, model: str | None, streaming: bool, started: bool) -> ProviderError:
        """SDK, transport and decoding errors as the taxonomy (scrubbed)."""
        del started  # a break before the first event is as interrupted as one after it
        common: dict[str, Any] = {"provider": self.name, "model": model, "secrets": self._secrets}
        if isinstance(exc, anthropic.APIStatusError):
            return _status_error(exc, common)
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return Timeout("no answer within the configured timeout", **common)
        if isinstance(exc, anthropic.APIConnectionError):
            if streaming:  # since anthropic 2.17 a read that fails mid-stream is raised as a connection error
                return StreamInterrupted(f"the connection broke off ({_cause(exc)})", **common)
            return Unavailable(f"could not connect ({_cause(exc)})", **common)
        if isinstance(exc, httpx2.HTTPError | OSError):
            cls: type[ProviderError] = StreamInterrupted if streaming else Unavailable
            return cls(f"the connection broke off ({type(exc).__name__}: {exc})", **common)
        if isinstance(exc, json.JSONDecodeError):
            cls = StreamInterrupted if streaming else Unavailable
            return cls(f"the response is not valid JSON ({exc.msg} at position {exc.pos})", **common)
        return Unavailable(f"unexpected SDK failure ({type(exc).__name__}: {exc})", **common)


def _typed_call_wanted() -> bool:
    """Whether ``messages.create`` adds something over the generic ``post``: the SDK's OpenTelemetry spans,
    when the application configured OpenTelemetry. Decided per call, so OpenTelemetry configured after the
    adapter was made is honoured."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _wire_tools(toolset: CompiledToolset) -> list[dict[str, Any]]:
    """The toolset as Messages ``tools`` (built once per toolset: :meth:`CompiledToolset.wire`)."""
    wire: list[dict[str, Any]] = []
    for tool in toolset.tools:
        entry: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters}
        if tool.description:
            entry["description"] = tool.description
        if tool.strict:
            entry["strict"] = True
        wire.append(entry)
    return wire


# ---------------------------------------------------------------------- error mapping


def _status_error(exc: anthropic.APIStatusError, common: dict[str, Any]) -> ProviderError:
    status = exc.status_code
    error_type = str(exc.type) if exc.type else None
    text = exc.api_message if isinstance(exc.api_message, str) else exc.message
    detail = f"{error_type}: {text}" if error_type else text
    kwargs = {**common, "request_id": exc.request_id, "retry_after": parse_retry_after(exc.response.headers)}
    if 200 <= status < 300:  # `event: error` inside a 200 stream: only the body's type says what happened
        cls = _ERROR_TYPES.get(error_type or "", StreamInterrupted)
        if cls is BadRequest and looks_like_context_overflow(text):
            cls = ContextTooLong
        if cls is ModelNotFound and "model" not in text.lower():
            cls = BadRequest
        return cls(f"error event in the stream: {detail}", **kwargs)
    kwargs["status_code"] = status
    model_missing = status == 404 and error_type == "not_found_error" and "model" in text.lower()
    if status == 413 or error_type == "request_too_large":
        return ContextTooLong(detail, **kwargs)
    return error_for_status(status, text, model_missing=model_missing)(detail, **kwargs)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)


# ---------------------------------------------------------------------- wire mapping (request)


def _thinking(config: ThinkingConfig, max_tokens: int | None, provider: str, model: str) -> tuple[dict[str, Any], int]:
    """The thinking parameter, and a max_tokens that exceeds its budget (the API requires it)."""
    budget = config.budget_tokens or _EFFORT_BUDGETS.get(config.effort or "", DEFAULT_THINKING_BUDGET)
    budget = max(budget, MIN_THINKING_BUDGET)
    if max_tokens is None:
        max_tokens = budget + DEFAULT_MAX_TOKENS
    elif max_tokens <= budget:
        if max_tokens <= MIN_THINKING_BUDGET:
            raise BadRequest(
                f"max_tokens={max_tokens} leaves no room for thinking: Anthropic needs max_tokens above the thinking "
                f"budget (at least {MIN_THINKING_BUDGET}); raise max_tokens or turn thinking off",
                provider=provider,
                model=model,
            )
        budget = max_tokens - 1
    return {"type": "enabled", "budget_tokens": budget}, max_tokens


def _tool_choice(request: ModelRequest, toolset: CompiledToolset) -> dict[str, Any] | None:
    choice = request.tool_choice
    wire: dict[str, Any]
    if choice == "none":
        return {"type": "none"}  # disable_parallel_tool_use is not accepted on "none"
    if isinstance(choice, ForceTool):
        wire = {"type": "tool", "name": toolset.provider_name(choice.name)}
    elif choice == "required":
        wire = {"type": "any"}
    elif choice == "auto" or request.parallel_tool_calls is False:
        wire = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        wire["disable_parallel_tool_use"] = True
    return wire


def _wire_messages(history: Iterable[Message], toolset: CompiledToolset, provider: str) -> list[dict[str, Any]]:
    """Normalized history -> Anthropic messages: tool messages become user turns, same-role turns merge."""
    out: list[dict[str, Any]] = []
    for message in history:
        role = "assistant" if message.role == "assistant" else "user"
        if role == "assistant":
            blocks = _assistant_blocks(message.parts, toolset, provider)
        else:
            blocks = _user_blocks(message.parts)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _assistant_blocks(parts: Sequence[Part], toolset: CompiledToolset, provider: str) -> list[dict[str, Any]]:
    thinking: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ThinkingPart):
            # Only this provider's signed blocks can go back (unchanged); others would fail verification.
            if part.provider != provider:
                continue
            if part.redacted_data:
                thinking.append({"type": "redacted_thinking", "data": part.redacted_data})
            elif part.signature:
                thinking.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
        elif isinstance(part, TextPart):
            if part.text:
                rest.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCallPart):
            name = toolset.provider_name(part.name)
            rest.append({"type": "tool_use", "id": part.id, "name": name, "input": part.arguments})
        elif not isinstance(part, ToolResultPart):
            text = _describe(part)
            if text:
                rest.append({"type": "text", "text": text})
    # Thinking first: the API wants the turn to open with its thinking when it carries tool calls.
    return thinking + rest if thinking else rest


def _user_blocks(parts: Sequence[Part]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ToolResultPart):
            results.append(_tool_result(part))
        elif isinstance(part, TextPart):
            if part.text:
                rest.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            rest.append(_image(part))
        elif not isinstance(part, ThinkingPart | ToolCallPart):
            text = _describe(part)
            if text:
                rest.append({"type": "text", "text": text})
    # tool_result blocks must come first in a user message.
    return results + rest if results else rest


def _tool_result(part: ToolResultPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
    content: list[dict[str, Any]] = []
    for item in part.content:
        if isinstance(item, TextPart):
            if item.text:
                content.append({"type": "text", "text": item.text})
        elif isinstance(item, ImagePart):
            content.append(_image(item))
        else:
            text = _describe(item)
            if text:
                content.append({"type": "text", "text": text})
    if not content and part.structured is not None:
        content.append({"type": "text", "text": json.dumps(part.structured, ensure_ascii=False)})
    if content:
        block["content"] = content
    if part.is_error:
        block["is_error"] = True
    return block


def _image(part: ImagePart) -> dict[str, Any]:
    if part.url is not None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    if part.media_type not in _IMAGE_TYPES:
        return {"type": "text", "text": f"[image {part.media_type}: {len(part.data or b'')} bytes, not supported]"}
    data = base64.b64encode(part.data or b"").decode("ascii")
    return {"type": "image", "source": {"type": "base64", "media_type": part.media_type, "data": data}}


def _describe(part: Part) -> str:
    """Text for a part Anthropic cannot take natively (audio, resources), via the shared rendering."""
    if isinstance(part, ToolCallPart | ToolResultPart | ThinkingPart):
        return ""
    return ToolResultPart(call_id="-", name="-", content=[part]).text()


# ---------------------------------------------------------------------- wire mapping (response)


def _stop_reason(raw: str | None) -> StopReason:
    if raw is None:
        return "other"
    return _STOP_REASONS.get(raw, "other")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class _UsageState:
    """Usage as reported so far; later reports overwrite the fields they carry."""

    uncached_input: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    output: int | None = None
    thinking: int | None = None

    def update(self, usage: object) -> _UsageState:
        if usage is None:
            return self
        for attr, wire in (
            ("uncached_input", "input_tokens"),
            ("cache_read", "cache_read_input_tokens"),
            ("cache_write", "cache_creation_input_tokens"),
            ("output", "output_tokens"),
        ):
            value = _int(getattr(usage, wire, None))
            if value is not None:
                setattr(self, attr, value)
        details = getattr(usage, "output_tokens_details", None)
        thinking = _int(getattr(details, "thinking_tokens", None))
        if thinking is not None:
            self.thinking = thinking
        return self

    def usage(self) -> Usage:
        total = None
        if self.uncached_input is not None:
            total = self.uncached_input + (self.cache_read or 0) + (self.cache_write or 0)
        return Usage(
            input_tokens=total,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            reasoning_tokens=self.thinking,
        )


@dataclass(slots=True)
class _Block:
    kind: str  # text | thinking | redacted_thinking | tool_use | other
    text: list[str] = field(default_factory=list)
    signature: str = ""
    data: str = ""
    position: int = -1  # tool_use: the call's position in the assembler


class _Event(WireView):
    """A streamed Messages event as decoded JSON; a tool_use block's ``input`` stays the plain object it is
    in the SDK's models."""

    __slots__ = ()
    RAW_FIELDS = frozenset({"input"})


class _StreamState(StreamState):
    """Turns raw stream events into routekit events and remembers what arrived (for ``partial``)."""

    unfinished: ClassVar[str] = "the stream ended without message_stop"

    def __init__(self, provider: str, model: str, toolset: CompiledToolset, request_id: str | None) -> None:
        self.provider = provider
        self.model = model
        self.toolset = toolset
        self.request_id = request_id
        self.response_id: str | None = None
        self.raw_stop: str | None = None
        self.stopped = False
        self.usage = _UsageState()
        self.blocks: dict[int, _Block] = {}
        self.calls = ToolCallAssembler()
        self.ready: dict[int, ToolCallPart] = {}

    @property
    def finished(self) -> bool:
        return self.stopped

    def stream_events(self, chunk: Any) -> list[StreamEvent]:
        event = _Event(chunk) if isinstance(chunk, dict) else chunk
        kind = event.type
        if kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        if kind == "content_block_start":
            return self._start(event.index, event.content_block)
        if kind == "content_block_stop":
            return self._stop(event.index)
        if kind == "message_start":
            message = event.message
            self.response_id = getattr(message, "id", None)
            self.model = getattr(message, "model", None) or self.model
            return self._usage(getattr(message, "usage", None))
        if kind == "message_delta":
            self.raw_stop = getattr(event.delta, "stop_reason", None) or self.raw_stop
            return self._usage(getattr(event, "usage", None))
        if kind == "message_stop":
            self.stopped = True
        return []

    def _usage(self, usage: object) -> list[StreamEvent]:
        if usage is None:
            return []
        return [UsageReport(usage=self.usage.update(usage).usage())]

    def _start(self, index: int, block: Any) -> list[StreamEvent]:
        kind = block.type
        if kind == "text":
            state = self.blocks[index] = _Block("text")
            if block.text:
                state.text.append(block.text)
                return [TextDelta(text=block.text)]
        elif kind == "thinking":
            state = self.blocks[index] = _Block("thinking", signature=block.signature or "")
            if block.thinking:
                state.text.append(block.thinking)
                return [ThinkingDelta(text=block.thinking)]
        elif kind == "redacted_thinking":
            self.blocks[index] = _Block("redacted_thinking", data=block.data)
        elif kind == "tool_use":
            name = self.toolset.canonical_name(block.name)
            given = block.input if isinstance(block.input, dict) and block.input else None
            position = self.calls.add(index=index, id=block.id, name=name, arguments=given)
            self.blocks[index] = _Block("tool_use", position=position)
            return [ToolCallDelta(index=position, id=block.id, name=name)]
        else:
            self.blocks[index] = _Block("other")  # server tools and the like: not routekit's to run
        return []

    def _delta(self, index: int, delta: Any) -> list[StreamEvent]:
        state = self.blocks.get(index)
        if state is None:
            return []
        kind = delta.type
        if kind == "text_delta":
            state.text.append(delta.text)
            return [TextDelta(text=delta.text)]
        if kind == "input_json_delta":
            if not delta.partial_json:
                return []
            self.calls.add(index=index, arguments=delta.partial_json)
            return [ToolCallDelta(index=state.position, arguments_delta=delta.partial_json)]
        if kind == "thinking_delta":
            state.text.append(delta.thinking)
            return [ThinkingDelta(text=delta.thinking)]
        if kind == "signature_delta":
            state.signature = delta.signature
        return []

    def _stop(self, index: int) -> list[StreamEvent]:
        state = self.blocks.get(index)
        if state is None or state.kind != "tool_use":
            return []
        call = self.calls.complete()[state.position]
        self.ready[state.position] = call
        return [ToolCallReady(call=call)]

    def response(self) -> ModelResponse:
        """The response as far as it arrived: only tool calls whose block closed are included."""
        parts: list[Part] = []
        for _, state in sorted(self.blocks.items()):
            if state.kind == "text":
                parts.append(TextPart(text="".join(state.text)))
            elif state.kind == "thinking":
                text = "".join(state.text)
                parts.append(ThinkingPart(text=text, signature=state.signature or None, provider=self.provider))
            elif state.kind == "redacted_thinking":
                parts.append(ThinkingPart(redacted_data=state.data, provider=self.provider))
            elif state.kind == "tool_use" and state.position in self.ready:
                parts.append(self.ready[state.position])
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=self.usage.usage(),
            stop_reason=_stop_reason(self.raw_stop),
            raw_stop_reason=self.raw_stop,
            model=self.model,
            provider=self.provider,
            response_id=self.response_id,
            request_id=self.request_id,
        )
