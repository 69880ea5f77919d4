"""OpenAI Chat Completions adapter, also used by every OpenAI-compatible preset and Azure OpenAI.

Talks to the API only through the official ``openai`` SDK (``AsyncOpenAI``; ``AsyncAzureOpenAI`` for the
``azure`` preset). SDK retries are off: routekit's resilience layer retries, so each attempt is metered.
Streams go through the SDK's ``post`` with the chunks left as decoded JSON (see ``OpenAIProvider.open_stream``).

Wire facts this module relies on (see the shared folder's reference/provider-wire-formats.md §0-§1):

* Streams carry usage only with ``stream_options.include_usage``, in an extra chunk with ``choices: []``
  after the chunk holding ``finish_reason``; then ``data: [DONE]``.
* The SDK stops silently at ``[DONE]`` *and* when the body ends early, so the adapter treats a stream that
  never delivered a ``finish_reason`` as interrupted. (A cut between the finish chunk and ``[DONE]`` cannot
  be told apart from a server that sends no usage; the answer is complete then, and usage stays unknown.)
* A mid-stream ``data: {"error": ...}`` raises ``openai.APIError``; a non-JSON ``data:`` line raises a raw
  ``json.JSONDecodeError``; transport errors come wrapped as ``APITimeoutError``/``APIConnectionError``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import httpx2
import openai
from openai.types.chat import ChatCompletionMessage
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from providers._adapter import Adapter, Call, StreamState
from providers._http import omit_environment_headers, sdk_http_client
from providers._wire import WireView, json_object, request_body
from providers.errors import (
    ConfigError,
    ContextTooLong,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
    Unavailable,
    error_for_status,
    looks_like_context_overflow,
    parse_retry_after,
    scrub,
)
from providers.schema import CompiledToolset
from providers.stream import ToolCallAssembler, parse_arguments
from providers.types import (
    AudioPart,
    ForceTool,
    ImagePart,
    Message,
    ModelInfo,
    ModelResponse,
    ResourcePart,
    ResponseDone,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
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

# --------------------------------------------------------------------------- rules as data

# OpenAI's own API (and Azure's) deprecated `max_tokens` for `max_completion_tokens` (reasoning models reject
# max_tokens: "Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens' instead"). Compatible
# servers (vLLM, llama.cpp, Groq, Together, ...) only reliably understand `max_tokens`.
_MAX_COMPLETION_TOKENS_PRESETS = frozenset({"openai", "azure"})
# `reasoning_effort` is an OpenAI/Azure request field; compatible servers reject or ignore unknown fields.
_REASONING_EFFORT_PRESETS = frozenset({"openai", "azure"})
# OpenRouter takes reasoning settings as `reasoning: {effort | max_tokens}` (openrouter.ai/docs, reasoning tokens).
_OPENROUTER_REASONING_PRESETS = frozenset({"openrouter"})
# Local servers need no key, but the SDK refuses to build a client without one ("Missing credentials").
_NO_KEY_PLACEHOLDER = "not-needed"
# Azure OpenAI: the latest GA data-plane API version (learn.microsoft.com, Azure OpenAI API version lifecycle).
DEFAULT_AZURE_API_VERSION = "2024-10-21"
# Delta fields that compatible servers use for reasoning text: DeepSeek/vLLM `reasoning_content`,
# OpenRouter/Groq `reasoning`.
_REASONING_FIELDS = ("reasoning_content", "reasoning")
# Prefix marking a failed tool result: Chat Completions `tool` messages have no error flag.
_TOOL_ERROR_PREFIX = "Error: "

_FINISH_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filter",
}
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}
# What the stream loop catches and maps (SDK errors, raw transport/JSON errors the SDK lets through).
_STREAM_ERRORS = (openai.OpenAIError, httpx2.HTTPError, httpx2.StreamError, ValueError, anyio.EndOfStream, OSError)


class OpenAIProvider(Adapter):
    """Chat Completions through ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI`` for the ``azure`` preset).

    ``config.options`` understood here: ``api_version`` (Azure; default :data:`DEFAULT_AZURE_API_VERSION`),
    ``organization`` and ``project`` (OpenAI), ``extra_body`` (a dict merged into every request body, for
    server-specific fields of compatible endpoints), ``http_transport`` (``"aiohttp"``, the default, or
    ``"httpx"``).
    """

    stream_errors = _STREAM_ERRORS
    _client: openai.AsyncOpenAI

    def build_client(self, egress: EgressPolicy | None) -> None:
        config, profile = self.config, self.profile
        # ConfigError naming the env var when a required key is missing; under egress, never from the environment.
        key = config.resolve_api_key(environment=egress is None)
        base_url = config.base_url or profile.default_base_url
        timeout = openai.Timeout(config.timeout, connect=config.connect_timeout)
        headers: dict[str, Any] = config.header_values()
        if self.name != "openai" or egress is not None:
            # The SDK reads OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment for every endpoint;
            # those identifiers are OpenAI's business, not a third-party endpoint's, and in the service they
            # are the operator's, not the user's.
            for option, header in (("organization", "OpenAI-Organization"), ("project", "OpenAI-Project")):
                if not config.options.get(option):
                    headers[header] = openai.Omit()
        if egress is not None:  # and OPENAI_CUSTOM_HEADERS: the operator's headers, not the user's
            omit_environment_headers(headers, "OPENAI_CUSTOM_HEADERS", openai.Omit())
        if self.name == "azure":
            if not base_url:
                raise ConfigError(
                    "Azure OpenAI needs base_url set to the resource endpoint "
                    "(https://<resource>.openai.azure.com); the model is the deployment name."
                )
            self._client = openai.AsyncAzureOpenAI(
                azure_endpoint=base_url,
                api_version=str(config.options.get("api_version") or DEFAULT_AZURE_API_VERSION),
                api_key=key or _NO_KEY_PLACEHOLDER,
                timeout=timeout,
                max_retries=0,
                default_headers=headers or None,
                http_client=sdk_http_client(config, openai, egress),
            )
        else:
            if not base_url:
                raise ConfigError(
                    f"{profile.display_name} needs base_url (the endpoint's URL including /v1, "
                    "e.g. http://localhost:8000/v1)."
                )
            self._client = openai.AsyncOpenAI(
                api_key=key or _NO_KEY_PLACEHOLDER,
                base_url=base_url,
                organization=config.options.get("organization"),
                project=config.options.get("project"),
                timeout=timeout,
                max_retries=0,
                default_headers=headers or None,
                http_client=sdk_http_client(config, openai, egress),
            )

    def __repr__(self) -> str:
        base_url = scrub(str(self._client.base_url), self._secrets)
        return f"OpenAIProvider(provider={self.name!r}, base_url={base_url!r})"

    async def aclose(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ request -> wire

    def to_wire(self, call: Call, *, stream: bool) -> dict[str, Any]:
        """The keyword parameters ``chat.completions.create`` would take (``extra_body`` not yet merged)."""
        request, toolset, profile = call.request, call.toolset, call.profile
        params: dict[str, Any] = {"model": call.model, "messages": self._messages(call)}
        if toolset.tools:
            params["tools"] = toolset.wire("openai", _wire_tools)
            if request.tool_choice is not None:
                params["tool_choice"] = _tool_choice(request.tool_choice, toolset)
            if request.parallel_tool_calls is not None:
                params["parallel_tool_calls"] = request.parallel_tool_calls
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.max_tokens is not None:
            params[profile.max_tokens_field] = request.max_tokens
        if request.stop:
            params["stop"] = list(request.stop)
        extra_body: dict[str, Any] = dict(self.config.options.get("extra_body") or {})
        thinking = request.thinking
        if thinking is not None and thinking.enabled:
            if profile.thinking_field == "reasoning_effort" and thinking.effort is not None:
                params["reasoning_effort"] = thinking.effort
            elif profile.thinking_field == "reasoning":  # OpenRouter's field, in the body
                extra_body["reasoning"] = (
                    {"effort": thinking.effort}
                    if thinking.effort is not None
                    else {"max_tokens": thinking.budget_tokens}
                    if thinking.budget_tokens is not None
                    else {"enabled": True}
                )
        if extra_body:
            params["extra_body"] = extra_body
        if stream:
            params["stream_options"] = {"include_usage": True}
        return params

    def _messages(self, call: Call) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        toolset = call.toolset
        if call.request.system:
            out.append({"role": "system", "content": call.request.system})
        for message in call.history:
            if message.role == "assistant":
                wire = _assistant_message(message, toolset)
                if wire is not None:
                    out.append(wire)
                continue
            results = [p for p in message.parts if isinstance(p, ToolResultPart)]
            if results:
                out.extend(_tool_messages(results, toolset))
            others = [p for p in message.parts if not isinstance(p, ToolResultPart)]
            if others:
                out.append({"role": "user", "content": _user_content(others)})
        return out

    # ------------------------------------------------------------------ the SDK calls

    async def send(self, wire: dict[str, Any], call: Call) -> tuple[dict[str, Any] | None, str | None]:
        """The Chat Completions request, read as JSON (see :meth:`open_stream` for why not ``create``): the
        decoded body (None when it is not JSON) and the request id."""
        response = await self._client.post(
            "/chat/completions",
            body=request_body(wire, stream=False),
            cast_to=httpx2.Response,
            options={"security": {"bearer_auth": True}},  # what create() asks for: the API key as a bearer token
        )
        return json_object(response.content), response.headers.get("x-request-id")

    async def open_stream(self, wire: dict[str, Any], call: Call) -> Any:
        """The streaming Chat Completions request, through the SDK's generic ``post`` with ``cast_to=object``.

        Same endpoint, body, headers, auth and stream handling as ``chat.completions.create(stream=True)``
        (which is this very ``post`` with ``AsyncStream[ChatCompletionChunk]``), minus two costs measured per
        call: the SDK's recursive TypedDict transform of the body (every message and tool schema, key by key;
        the dicts built here are already in wire form, so it would return them unchanged) and building a
        pydantic ``ChatCompletionChunk`` for every chunk (its generic ``construct_type`` walks the type hints
        of each nested field). The chunks arrive as the decoded JSON; :class:`_Chunk` gives the attribute view
        that :class:`_StreamState` reads. Mid-stream ``{"error": ...}`` events still raise ``openai.APIError``
        in the SDK's stream class.
        """
        return await self._client.post(
            "/chat/completions",
            body=request_body(wire, stream=True),
            cast_to=object,
            stream=True,
            stream_cls=openai.AsyncStream[object],
            options={"security": {"bearer_auth": True}},  # what create() asks for: the API key as a bearer token
        )

    async def close_stream(self, chunks: Any) -> None:
        await chunks.close()

    async def fetch_models(self) -> list[ModelInfo]:
        page = await self._client.models.list()
        return [ModelInfo(id=m.id, provider=self.name) async for m in page]

    # ------------------------------------------------------------------ wire -> response

    def from_wire(self, answer: tuple[dict[str, Any] | None, str | None], call: Call) -> ModelResponse:
        data, request_id = answer
        if data is None or not isinstance(data.get("choices"), list):
            raise Unavailable(
                "the endpoint answered with something that is not a chat completion; check base_url",
                provider=self.name,
                model=call.model,
                secrets=self._secrets,
            )
        completion = _Completion(data)
        parts: list[Any] = []
        raw_finish: str | None = None
        refused = False
        choices = completion.choices or []
        if choices:
            choice = choices[0]
            raw_finish = choice.finish_reason
            message = choice.message
            thinking = _reasoning_text(message)
            if thinking:
                parts.append(ThinkingPart(text=thinking, provider=self.name))
            if message.content:
                parts.append(TextPart(text=message.content))
            elif message.refusal:
                refused = True
                parts.append(TextPart(text=message.refusal))
            for tool_call in message.tool_calls or []:
                function = getattr(tool_call, "function", None)
                if function is None:  # custom (non-function) tools are never offered by routekit
                    continue
                arguments, raw = parse_arguments(function.arguments)
                parts.append(
                    ToolCallPart(
                        id=tool_call.id,
                        name=call.toolset.canonical_name(function.name),
                        arguments=arguments,
                        raw_arguments=raw,
                    )
                )
        has_calls = any(isinstance(p, ToolCallPart) for p in parts)
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=_usage(completion.usage),
            stop_reason="refusal" if refused else _stop_reason(raw_finish, has_calls),
            raw_stop_reason=raw_finish,
            model=completion.model or call.model,
            provider=self.name,
            response_id=completion.id,
            request_id=request_id,
        )

    def stream_state(self, call: Call, chunks: Any) -> _StreamState:
        response = getattr(chunks, "response", None)
        request_id = response.headers.get("x-request-id") if response is not None else None
        return _StreamState(provider=self.name, model=call.model, toolset=call.toolset, request_id=request_id)

    # ------------------------------------------------------------------ errors

    def map_error(self, exc: BaseException, *, model: str | None, streaming: bool, started: bool) -> ProviderError:
        """SDK and transport errors as routekit errors (scrubbed)."""
        del started  # a break before the first chunk is as interrupted as one after it
        common: dict[str, Any] = {"provider": self.name, "model": model, "secrets": self._secrets}
        if isinstance(exc, openai.APIStatusError):
            return _status_error(exc, common)
        refused = _connection_failure(exc)
        if isinstance(exc, openai.APITimeoutError) and refused is None:
            return Timeout(f"no answer within {self.config.timeout:g} s", **common)
        if isinstance(exc, openai.APIConnectionError):
            cause = refused or exc.__cause__ or exc
            if streaming:
                return StreamInterrupted(f"connection lost mid-stream ({type(cause).__name__}: {cause})", **common)
            return Unavailable(f"cannot reach {self._client.base_url} ({type(cause).__name__}: {cause})", **common)
        if isinstance(exc, openai.APIResponseValidationError):
            return Unavailable(
                f"the endpoint's answer is not valid OpenAI JSON ({exc.message}); check base_url", **common
            )
        if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
            return _in_stream_error(exc, common)
        if isinstance(exc, json.JSONDecodeError):
            if streaming:
                return StreamInterrupted(f"corrupt chunk in the stream (not JSON: {exc.msg})", **common)
            return Unavailable(f"the endpoint's answer is not JSON ({exc.msg}); check base_url", **common)
        if isinstance(exc, httpx2.TimeoutException) and refused is None:
            return Timeout(f"no answer within {self.config.timeout:g} s", **common)
        if streaming:
            return StreamInterrupted(f"the stream broke off ({type(exc).__name__}: {exc})", **common)
        return Unavailable(f"request failed ({type(exc).__name__}: {exc})", **common)


def _status_error(exc: openai.APIStatusError, common: dict[str, Any]) -> ProviderError:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = str(body.get("message") or exc.message)
    code = str(body.get("code") or "")
    status = exc.status_code
    cls = error_for_status(status, message, model_missing=code == "model_not_found")
    if code == "context_length_exceeded":
        cls = ContextTooLong
    retry_after = parse_retry_after(exc.response.headers)
    return cls(message, status_code=status, request_id=exc.request_id, retry_after=retry_after, **common)


# --------------------------------------------------------------------------- wire helpers


def _wire_tools(toolset: CompiledToolset) -> list[dict[str, Any]]:
    """The toolset as Chat Completions ``tools`` (built once per toolset: :meth:`CompiledToolset.wire`)."""
    return [_wire_tool(tool.name, tool.description, tool.parameters, tool.strict) for tool in toolset.tools]


def _wire_tool(name: str, description: str, parameters: dict[str, Any], strict: bool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    if description:
        function["description"] = description
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(choice: str | ForceTool, toolset: CompiledToolset) -> str | dict[str, Any]:
    if isinstance(choice, ForceTool):
        return {"type": "function", "function": {"name": toolset.provider_name(choice.name)}}
    return choice


def _assistant_message(message: Message, toolset: CompiledToolset) -> dict[str, Any] | None:
    """Text and tool calls; thinking is not sent back (Chat Completions has no field for it)."""
    text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
    calls = [
        {
            "id": p.id,
            "type": "function",
            "function": {
                "name": toolset.provider_name(p.name),
                "arguments": p.raw_arguments
                if p.raw_arguments is not None
                else json.dumps(p.arguments, ensure_ascii=False, separators=(",", ":")),
            },
        }
        for p in message.parts
        if isinstance(p, ToolCallPart)
    ]
    if not calls and not text:
        return None  # e.g. a turn that held only another provider's thinking
    wire: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        wire["tool_calls"] = calls
    return wire


def _tool_messages(results: Sequence[ToolResultPart], toolset: CompiledToolset) -> list[dict[str, Any]]:
    """One ``tool`` message per result, then the results' images in one ``user`` message.

    A ``tool`` message's content may only hold text, so images returned by a tool cannot travel there. They
    follow in a ``user`` message right after the batch of tool messages (a user message between two tool
    messages would break the rule that every call is answered before the next user turn); the tool message
    keeps the text rendering, which names each image, so the model can connect the two.
    """
    out: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for result in results:
        text = result.text()
        if result.is_error:
            text = _TOOL_ERROR_PREFIX + text
        out.append({"role": "tool", "tool_call_id": result.call_id, "content": text})
        result_images = [p for p in result.content if isinstance(p, ImagePart)]
        if result_images:
            label = f"Images returned by tool {toolset.provider_name(result.name)} (call {result.call_id}):"
            images.append({"type": "text", "text": label})
            images.extend(_image(p) for p in result_images)
    if images:
        out.append({"role": "user", "content": images})
    return out


def _user_content(parts: Sequence[Any]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts)
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            content.append(_image(part))
        elif isinstance(part, AudioPart) and part.media_type in _AUDIO_FORMATS:
            data = base64.b64encode(part.data).decode("ascii")
            content.append(
                {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO_FORMATS[part.media_type]}}
            )
        elif isinstance(part, (AudioPart, ResourcePart)):
            content.append({"type": "text", "text": _describe(part)})
        # ThinkingPart / ToolCallPart in a user turn carry nothing the model can use here.
    return content or ""


def _describe(part: AudioPart | ResourcePart) -> str:
    holder = ToolResultPart(call_id="-", name="-", content=[part])
    return holder.text()


def _image(part: ImagePart) -> dict[str, Any]:
    if part.url is not None:
        url = part.url
    else:
        url = f"data:{part.media_type};base64,{base64.b64encode(part.data or b'').decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


class _Completion(WireView):
    """A chat completion as decoded JSON; ``model_extra`` (read on the message) holds the fields
    ``ChatCompletionMessage`` does not declare (where compatible servers put reasoning text)."""

    __slots__ = ()
    DECLARED = frozenset(ChatCompletionMessage.model_fields)


class _Chunk(WireView):
    """A streamed chunk as decoded JSON; ``model_extra`` holds the fields ``ChoiceDelta`` does not declare
    (where compatible servers put reasoning text, see :func:`_reasoning_text`)."""

    __slots__ = ()
    DECLARED = frozenset(ChoiceDelta.model_fields)


def _reasoning_text(obj: Any) -> str | None:
    """Reasoning text a compatible server put in an extra field (DeepSeek, OpenRouter, vLLM, Groq)."""
    extra = getattr(obj, "model_extra", None) or {}
    for name in _REASONING_FIELDS:
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _stop_reason(raw: str | None, has_calls: bool) -> StopReason:
    # Some compatible servers (vLLM, llama.cpp, Ollama /v1) answer "stop" even when the turn holds tool calls.
    if has_calls and raw in ("stop", None):
        return "tool_use"
    if raw is None:
        return "end_turn"
    return _FINISH_REASONS.get(raw, "other")


def _usage(usage: Any) -> Usage:
    """prompt_tokens already includes cached tokens and completion_tokens includes reasoning (our convention)."""
    if usage is None:
        return Usage()
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        input_tokens=getattr(usage, "prompt_tokens", None),
        output_tokens=getattr(usage, "completion_tokens", None),
        cache_read_tokens=getattr(prompt_details, "cached_tokens", None),
        cache_write_tokens=getattr(prompt_details, "cache_write_tokens", None),
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", None),
    )


def _connection_failure(exc: BaseException) -> OSError | None:
    """The connection error under a "timeout": the SDK's aiohttp transport (httpx-aiohttp) maps every aiohttp
    connection error, a refused connection included, to ``ConnectTimeout``, which the SDK raises as
    ``APITimeoutError``. A non-timeout ``OSError`` in the cause chain says what really happened."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__
    return None


def _in_stream_error(exc: openai.APIError, common: dict[str, Any]) -> ProviderError:
    """An ``{"error": ...}`` event inside a 200 stream: classify by its type/code, else a broken stream."""
    kind = f"{exc.type or ''} {exc.code or ''}".lower()
    message = f"provider error event mid-stream: {exc.message}"
    if "rate_limit" in kind:
        return RateLimited(message, **common)
    if "context_length" in kind or looks_like_context_overflow(exc.message):
        return ContextTooLong(message, **common)
    return StreamInterrupted(message, **common)


@dataclass
class _StreamState(StreamState):
    """What a stream delivered so far; builds the final (or partial) ModelResponse."""

    unfinished: ClassVar[str] = "the stream ended before the final chunk (no finish_reason / [DONE])"

    provider: str
    model: str
    toolset: CompiledToolset
    request_id: str | None = None
    response_id: str | None = None
    served_model: str | None = None
    finish_reason: str | None = None
    refused: bool = False
    usage: Usage = field(default_factory=Usage)
    usage_reported: bool = False
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    calls: ToolCallAssembler = field(default_factory=ToolCallAssembler)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def stream_events(self, chunk: Any) -> list[StreamEvent]:
        chunk = _Chunk(chunk)
        events: list[StreamEvent] = []
        self.response_id = self.response_id or getattr(chunk, "id", None)
        self.served_model = self.served_model or getattr(chunk, "model", None)
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) not in (0, None):
                continue  # routekit never asks for n > 1
            delta = getattr(choice, "delta", None)
            if delta is not None:
                self._delta(delta, events)
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = _usage(usage)
            self.usage_reported = True
            events.append(UsageReport(usage=self.usage))
        return events

    def _delta(self, delta: Any, events: list[StreamEvent]) -> None:
        thinking = _reasoning_text(delta)
        if thinking:
            self.thinking.append(thinking)
            events.append(ThinkingDelta(text=thinking))
        if delta.content:
            self.text.append(delta.content)
            events.append(TextDelta(text=delta.content))
        elif getattr(delta, "refusal", None):
            self.refused = True
            self.text.append(delta.refusal)
            events.append(TextDelta(text=delta.refusal))
        for call in delta.tool_calls or []:
            function = getattr(call, "function", None)
            name = getattr(function, "name", None)
            arguments = getattr(function, "arguments", None)
            position = self.calls.add(
                index=getattr(call, "index", None), id=getattr(call, "id", None), name=name, arguments=arguments
            )
            events.append(
                ToolCallDelta(
                    index=position,
                    id=getattr(call, "id", None),
                    name=self.toolset.canonical_name(name) if name else None,
                    arguments_delta=arguments or "",
                )
            )

    def closing_events(self) -> list[StreamEvent]:
        """Chat Completions streams announce no end of a tool call: every call is ready at the end; and at
        least one UsageReport, even when usage is unknown."""
        final = self.response()
        events: list[StreamEvent] = [ToolCallReady(call=call) for call in final.tool_calls]
        if not self.usage_reported:
            events.append(UsageReport(usage=final.usage))
        events.append(ResponseDone(response=final))
        return events

    def response(self) -> ModelResponse:
        parts: list[Any] = []
        if self.thinking:
            parts.append(ThinkingPart(text="".join(self.thinking), provider=self.provider))
        if self.text:
            parts.append(TextPart(text="".join(self.text)))
        calls = self.calls.complete()
        for call in calls:
            call.name = self.toolset.canonical_name(call.name)
        parts.extend(calls)
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=self.usage,
            stop_reason="refusal" if self.refused else _stop_reason(self.finish_reason, bool(calls)),
            raw_stop_reason=self.finish_reason,
            model=self.served_model or self.model,
            provider=self.provider,
            response_id=self.response_id,
            request_id=self.request_id,
        )
