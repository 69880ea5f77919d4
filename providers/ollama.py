"""Ollama adapter (official ``ollama`` SDK 0.6.3, ``/api/chat``).

Wire facts this module relies on (see the shared folder's reference/provider-wire-formats.md §0 and §5):

* Tool calls carry no ids. They arrive whole (arguments already a JSON object), several possibly in one
  NDJSON line. routekit gives each call a fresh id, and sends results back as ``role: tool`` messages
  with ``tool_name``, in the order of the calls.
* Usage exists only on the final ``done: true`` object: ``prompt_eval_count`` (input) and
  ``eval_count`` (output). Ollama omits ``prompt_eval_count`` when the whole prompt came from its
  cache, so an absent count stays ``None`` (unknown), never 0.
* A stream that ends without the ``done: true`` line was cut short.
* Transport. ``options.http_transport``: ``"aiohttp"`` (the default) hands the SDK's httpx client an
  aiohttp transport (``httpx-aiohttp``, the one the anthropic and openai SDKs vendor), about 30% less CPU per
  request than httpx's own; ``"httpx"`` keeps the SDK's default. That transport reports aiohttp failures as
  httpx ones, some of them misleadingly (a refused connection as ``httpx.ConnectTimeout``), so errors are
  mapped from the aiohttp exception underneath when there is one.
* The SDK does not retry, and raises ``ResponseError(text, status)`` for HTTP errors and
  ``ResponseError(text, -1)`` for an ``{"error": ...}`` line in a stream. Transport and JSON errors
  come through raw (``httpx.*``, ``json.JSONDecodeError``; ``ConnectionError`` for refused
  connections outside streams).

Why the request is not sent with ``AsyncClient.chat``: ``chat()`` re-validates tools through ``ollama.Tool``,
which silently drops nested ``properties`` (ollama/ollama-python#724, open at 0.6.3), while the Ollama server
accepts them (ollama/ollama#13508). MCP tools use nested objects routinely, so routekit sends the body it built
(the same JSON ``chat()`` would send, minus the loss) through the SDK's own request method, behind the one shim
:mod:`providers._compat_ollama`: same transport, NDJSON parser and errors.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn
from urllib.parse import urlsplit

import aiohttp
import anyio
import httpx
import ollama
from ollama import AsyncClient, ChatResponse, ListResponse
from pydantic import ValidationError

from providers._adapter import Adapter, Call, StreamState
from providers._compat_ollama import post_chat, post_chat_stream
from providers._http import egress_session_factory, http_transport_choice, shared_ssl_context
from providers.errors import (
    BadRequest,
    ConfigError,
    ContextTooLong,
    ModelNotFound,
    ProviderError,
    StreamInterrupted,
    Timeout,
    Unavailable,
    error_for_status,
    looks_like_context_overflow,
    parse_retry_after,
)
from providers.schema import CompiledToolset
from providers.stream import ToolCallAssembler, new_call_id
from providers.types import (
    AudioPart,
    CheckResult,
    ForceTool,
    ImagePart,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    ResourcePart,
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

_DEFAULT_MAX_CONNECTIONS = 100  # httpx's default pool size
_KEEPALIVE_CONNECTIONS = 20  # httpx's default: idle connections kept (each is checked on every request)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})  # noqa: S104 - compared, not bound
# Hosted Ollama (ollama.com) refuses unauthenticated calls; a local server needs no key.
_HOSTED_SUFFIX = "ollama.com"
# Ollama's `think` takes true/false or a level; the levels it knows are low, medium and high.
_THINK_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
# Errors the SDK (and the httpx client it wraps) can raise from a request or from a stream.
_SDK_ERRORS = (
    ollama.ResponseError,
    ollama.RequestError,
    httpx.HTTPError,
    aiohttp.ClientError,
    ConnectionError,
    TimeoutError,
    ValueError,
)


async def _drop_authorization(request: httpx.Request) -> None:
    """httpx request hook: no Authorization header but the user's (see OllamaProvider under egress)."""
    request.headers.pop("authorization", None)


class OllamaProvider(Adapter):
    """routekit's adapter for a local or hosted Ollama server."""

    call_errors = _SDK_ERRORS
    stream_errors = _SDK_ERRORS

    def build_client(self, egress: EgressPolicy | None) -> None:
        config = self.config
        ambient = egress is None  # the service never uses its own environment (OLLAMA_HOST, OLLAMA_API_KEY)
        from_environment = os.environ.get("OLLAMA_HOST") if ambient else None
        self._host = config.base_url or from_environment or self.profile.default_base_url or ""
        key = config.resolve_api_key(environment=ambient)
        if key is None and _is_hosted(self._host):
            raise ConfigError(
                f"no API key for hosted Ollama at {self._host}: set the environment variable "
                f"{config.key_env_var or 'OLLAMA_API_KEY'} or give the config an api_key."
            )
        headers = config.header_values()
        if key and not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = f"Bearer {key}"
        authorized = any(name.lower() == "authorization" for name in headers)
        # The SDK never retries; httpx's transport does not either (retries=0), so each call is one attempt.
        timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        # Requests in flight at once (``options["max_connections"]``, default httpx's 100). They wait for a
        # slot in routekit's limiter rather than in httpx's pool, whose queue is rescanned in full whenever a
        # connection frees up (measured: 500 runs in flight cost 3x the CPU of 100). A local Ollama serves
        # a few requests at a time anyway (OLLAMA_NUM_PARALLEL); the rest wait at either end.
        self._max_in_flight = _max_connections(config.options.get("max_connections", _DEFAULT_MAX_CONNECTIONS))
        self._slots: anyio.CapacityLimiter | None = None  # made in the event loop, on first use
        limits = httpx.Limits(max_connections=self._max_in_flight, max_keepalive_connections=_KEEPALIVE_CONNECTIONS)
        transport: dict[str, Any] = {}
        if http_transport_choice(config, egress) == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            if egress is not None:
                transport["transport"] = AiohttpTransport(client=egress_session_factory(config, egress))
                transport["follow_redirects"] = False
                if not authorized:  # the SDK adds OLLAMA_API_KEY from the environment when we send none
                    transport["event_hooks"] = {"request": [_drop_authorization]}
            else:
                transport["transport"] = AiohttpTransport(verify=shared_ssl_context(), limits=limits)
        self._client = AsyncClient(
            host=self._host or None, headers=headers, timeout=timeout, limits=limits, **transport
        )

    def __repr__(self) -> str:
        return f"OllamaProvider(name={self.name!r}, host={self._host!r})"

    # ------------------------------------------------------------------ the SDK calls

    async def send(self, wire: dict[str, Any], call: Call) -> ChatResponse:
        async with self._limiter():
            return await post_chat(self._client, wire)

    async def open_stream(self, wire: dict[str, Any], call: Call) -> _Chunks:
        # The stream holds its slot (and connection) until it is closed, whichever task closes it.
        chunks = _Chunks(self._limiter())
        await chunks.limiter.acquire_on_behalf_of(chunks)
        try:
            chunks.lines = await post_chat_stream(self._client, wire)
        except BaseException:
            chunks.limiter.release_on_behalf_of(chunks)
            raise
        return chunks

    def stream_state(self, call: Call, chunks: Any) -> _StreamState:
        return _StreamState(self.name, call.model, call.toolset)

    async def close_stream(self, chunks: Any) -> None:
        await chunks.aclose()

    def _limiter(self) -> anyio.CapacityLimiter:
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(self._max_in_flight)
        return self._slots

    async def fetch_models(self) -> list[ModelInfo]:
        listing: ListResponse = await self._client.list()
        return [ModelInfo(id=m.model, provider=self.name) for m in listing.models if m.model]

    async def check(self) -> CheckResult:
        """Reach the server and list installed models (GET /api/tags): no tokens spent, no key needed locally."""
        try:
            models = await self.list_models()
        except ProviderError as exc:
            return CheckResult(ok=False, provider=self.name, detail=str(exc))
        detail = f"Ollama at {self._host} answered; {len(models)} model(s) installed"
        if not models:
            detail += "; pull one with `ollama pull <model>`"
        return CheckResult(ok=True, provider=self.name, detail=detail, models_visible=len(models))

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]  # untyped in ollama 0.6.3

    # ------------------------------------------------------------------ request

    def to_wire(self, call: Call, *, stream: bool) -> dict[str, Any]:
        """The /api/chat body, shaped like ``ChatRequest.model_dump(exclude_none=True)`` in the SDK."""
        request, toolset, model = call.request, call.toolset, call.model
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        previous_calls: list[ToolCallPart] = []
        for message in call.history:
            messages.extend(self._wire_messages(message, toolset, previous_calls, model))
            if message.role == "assistant":
                previous_calls = message.tool_calls
        body: dict[str, Any] = {
            "model": model,
            "stream": stream,
            "messages": messages,
            "tools": self._tools_for(request, toolset, model),
        }
        options = self._options(request)
        if options:
            body["options"] = options
        thinking = request.thinking
        if thinking is not None and call.profile.thinking_field is not None:
            body["think"] = _THINK_LEVELS[thinking.effort] if thinking.enabled and thinking.effort else thinking.enabled
        keep_alive = self.config.options.get("keep_alive")
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        return body

    def _options(self, request: ModelRequest) -> dict[str, Any]:
        options: dict[str, Any] = {}
        num_ctx = self.config.options.get("num_ctx")
        if num_ctx is not None:
            options["num_ctx"] = num_ctx
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.top_p is not None:
            options["top_p"] = request.top_p
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.stop:
            options["stop"] = list(request.stop)
        return options

    def _tools_for(self, request: ModelRequest, toolset: CompiledToolset, model: str) -> list[dict[str, Any]]:
        """Tools for the body. Ollama has no tool_choice and no parallel_tool_calls switch.

        "none" sends no tools; ForceTool sends only that tool (the model can still answer in text: Ollama
        cannot force a call); "required" keeps every tool, since Ollama cannot force a call at all.
        """
        choice = request.tool_choice
        if choice == "none":
            return []
        tools = toolset.wire("ollama", _wire_tools)
        if isinstance(choice, ForceTool):
            tools = [wire for tool, wire in zip(toolset.tools, tools, strict=True) if tool.spec.name == choice.name]
            if not tools:
                offered = ", ".join(t.spec.name for t in toolset.tools) or "none"
                self._bad_request(
                    f"tool_choice forces tool {choice.name!r}, which is not offered (offered: {offered})", model
                )
        return tools

    def _wire_messages(
        self, message: Message, toolset: CompiledToolset, previous_calls: Sequence[ToolCallPart], model: str
    ) -> list[dict[str, Any]]:
        results = message.tool_results
        out = self._wire_results(results, toolset, previous_calls) if results else []
        texts: list[str] = []
        thinking: list[str] = []
        images: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ImagePart):
                images.append(self._wire_image(part, model))
            elif isinstance(part, ThinkingPart):
                if part.text:
                    thinking.append(part.text)
            elif isinstance(part, ToolCallPart):
                name = toolset.provider_name(part.name)
                calls.append({"function": {"name": name, "arguments": part.arguments}})
            elif isinstance(part, ResourcePart):
                texts.append(_describe_resource(part))
            elif isinstance(part, AudioPart):
                self._bad_request("Ollama does not accept audio input; remove the audio part", model)
        if not (texts or images or calls or thinking):
            return out
        role = "assistant" if message.role == "assistant" else "user"
        wire: dict[str, Any] = {"role": role}
        # Empty fields are left out, as the SDK does (`_copy_messages` drops falsy values).
        content = "\n".join(t for t in texts if t)
        if content:
            wire["content"] = content
        if thinking and role == "assistant":
            wire["thinking"] = "\n".join(thinking)
        if images:
            wire["images"] = images
        if calls and role == "assistant":
            wire["tool_calls"] = calls
        out.append(wire)
        return out

    @staticmethod
    def _wire_results(
        results: list[ToolResultPart], toolset: CompiledToolset, previous_calls: Sequence[ToolCallPart]
    ) -> list[dict[str, Any]]:
        """Tool messages in the order of the calls they answer: Ollama matches results by position."""
        order = {call.id: i for i, call in enumerate(previous_calls)}
        ordered = sorted(results, key=lambda r: order.get(r.call_id, len(order)))
        wire: list[dict[str, Any]] = []
        for result in ordered:
            text = result.text()
            # Ollama has no error flag on tool messages; say it in the content so the model sees it.
            if result.is_error:
                text = f"Error: {text}" if text else "Error: the tool call failed"
            wire.append({"role": "tool", "content": text, "tool_name": toolset.provider_name(result.name)})
        return wire

    def _wire_image(self, part: ImagePart, model: str) -> str:
        if part.data is None:
            self._bad_request(
                f"Ollama accepts images only as inline bytes, not URLs ({part.url}); "
                "download the image and pass its bytes",
                model,
            )
        return base64.b64encode(part.data).decode("ascii")

    def _bad_request(self, message: str, model: str) -> NoReturn:
        raise BadRequest(message, provider=self.name, model=model, secrets=self._secrets)

    # ------------------------------------------------------------------ response

    def from_wire(self, answer: ChatResponse, call: Call) -> ModelResponse:
        msg = answer.message
        parts: list[ThinkingPart | TextPart | ToolCallPart] = []
        if msg.thinking:
            parts.append(ThinkingPart(text=msg.thinking, provider=self.name))
        if msg.content:
            parts.append(TextPart(text=msg.content))
        for tool_call in msg.tool_calls or ():
            name = call.toolset.canonical_name(tool_call.function.name)
            parts.append(ToolCallPart(id=new_call_id(), name=name, arguments=dict(tool_call.function.arguments)))
        has_calls = bool(msg.tool_calls)
        return ModelResponse(
            message=Message(role="assistant", parts=list(parts)),
            usage=_usage(answer),
            stop_reason=_stop_reason(answer.done_reason, has_calls),
            raw_stop_reason=answer.done_reason,
            model=answer.model or call.model,
            provider=self.name,
        )

    # ------------------------------------------------------------------ errors

    def map_error(self, exc: BaseException, *, model: str | None, streaming: bool, started: bool) -> ProviderError:
        """Every SDK, transport and parsing failure as one routekit error (scrubbed).

        ``streaming``: raised while reading a stream (a JSON error there always means a broken stream);
        ``started``: at least one stream line had arrived (a transport error then interrupts the stream).
        """
        common: dict[str, Any] = {"provider": self.name, "model": model, "secrets": self._secrets}
        if isinstance(exc, ollama.ResponseError):
            return _response_error(exc, common)
        underneath = _aiohttp_cause(exc)
        if underneath is not None:
            exc = underneath
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            what = "stopped sending mid-stream" if started else "did not answer"
            return Timeout(f"Ollama at {self._host} {what} within {self.config.timeout:g}s", **common)
        # The SDK turns httpx.ConnectError into a bare ConnectionError outside streams; inside, it is raw.
        if (
            isinstance(exc, httpx.ConnectError | ConnectionRefusedError | aiohttp.ClientConnectorError)
            or type(exc) is ConnectionError
        ):
            return Unavailable(self._connect_hint(), **common)
        if isinstance(exc, httpx.HTTPError | aiohttp.ClientError | ConnectionError):
            if started:
                return StreamInterrupted(f"the connection broke mid-stream ({type(exc).__name__}: {exc})", **common)
            return Unavailable(f"request to Ollama at {self._host} failed ({type(exc).__name__}: {exc})", **common)
        if isinstance(exc, ValueError):  # json.JSONDecodeError, pydantic ValidationError
            what = "a stream line that is not a valid chat chunk" if streaming else "a body that is not a chat response"
            detail = "not JSON" if isinstance(exc, json.JSONDecodeError) else _validation_summary(exc)
            cls = StreamInterrupted if streaming else Unavailable
            return cls(f"Ollama at {self._host} sent {what} ({detail}); is a proxy in the way?", **common)
        return Unavailable(f"unexpected failure talking to Ollama ({type(exc).__name__})", **common)

    def _connect_hint(self) -> str:
        host = urlsplit(self._host if "://" in self._host else f"http://{self._host}").hostname or ""
        if host in _LOCAL_HOSTS:
            return f"Ollama is not running at {self._host} (connection refused); start it with `ollama serve`"
        return f"could not connect to Ollama at {self._host}; check base_url and that the server is up"


class _StreamState(StreamState):
    """What one stream has produced so far (for ResponseDone and for StreamInterrupted.partial)."""

    unfinished: ClassVar[str] = "the NDJSON stream ended without its final `done: true` object"

    def __init__(self, provider: str, model: str, toolset: CompiledToolset) -> None:
        self.provider = provider
        self.model = model
        self.toolset = toolset
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls = ToolCallAssembler()
        self.chunks = 0
        self.done: ModelResponse | None = None

    @property
    def finished(self) -> bool:
        return self.done is not None

    def stream_events(self, chunk: ChatResponse) -> list[StreamEvent]:
        if self.done is not None:
            return []  # nothing follows the final object; read to the end so the connection is reused
        self.chunks += 1
        events: list[StreamEvent] = []
        msg = chunk.message
        if chunk.model:
            self.model = chunk.model
        if msg.thinking:
            self.thinking.append(msg.thinking)
            events.append(ThinkingDelta(text=msg.thinking))
        if msg.content:
            self.text.append(msg.content)
            events.append(TextDelta(text=msg.content))
        for call in msg.tool_calls or ():
            # Whole calls, no ids, all "at index 0": each one is a new call with a fresh id (two calls
            # of the same tool must stay two calls).
            call_id = new_call_id()
            name = self.toolset.canonical_name(call.function.name)
            arguments = dict(call.function.arguments)
            position = self.calls.add(id=call_id, name=name, arguments=arguments)
            events.append(ToolCallDelta(index=position, id=call_id, name=name, arguments_delta=json.dumps(arguments)))
            events.append(ToolCallReady(call=ToolCallPart(id=call_id, name=name, arguments=arguments)))
        if chunk.done:
            usage = _usage(chunk)
            events.append(UsageReport(usage=usage))
            stop = _stop_reason(chunk.done_reason, len(self.calls) > 0)
            self.done = self._assemble(usage, stop, chunk.done_reason)
        return events

    def response(self) -> ModelResponse:
        return self.done if self.done is not None else self._assemble(Usage(), "other", None)

    def partial(self, error: ProviderError) -> ModelResponse | None:
        """What arrived, when anything did or the stream broke (an HTTP error before the first line: nothing)."""
        if self.chunks or isinstance(error, StreamInterrupted):
            return self._assemble(Usage(), "other", None)
        return None

    def _assemble(self, usage: Usage, stop: StopReason, raw: str | None) -> ModelResponse:
        parts: list[ThinkingPart | TextPart | ToolCallPart] = []
        if self.thinking:
            parts.append(ThinkingPart(text="".join(self.thinking), provider=self.provider))
        if self.text:
            parts.append(TextPart(text="".join(self.text)))
        parts.extend(self.calls.complete())
        return ModelResponse(
            message=Message(role="assistant", parts=list(parts)),
            usage=usage,
            stop_reason=stop,
            raw_stop_reason=raw,
            model=self.model,
            provider=self.provider,
        )


class _Chunks:
    """The SDK's NDJSON lines of one stream, holding a slot of the adapter's limiter until closed."""

    __slots__ = ("limiter", "lines")

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self.limiter = limiter
        self.lines: AsyncIterator[ChatResponse] | None = None

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> ChatResponse:
        assert self.lines is not None
        return await self.lines.__anext__()

    async def aclose(self) -> None:
        """Close the HTTP response (also for a consumer that stops iterating early) and free the slot."""
        try:
            close = getattr(self.lines, "aclose", None)
            if close is not None:
                await close()
        finally:
            self.limiter.release_on_behalf_of(self)


def _response_error(exc: ollama.ResponseError, common: dict[str, Any]) -> ProviderError:
    message = str(exc.error)
    status = exc.status_code
    headers = _error_headers(exc)
    common["retry_after"] = parse_retry_after(headers) if headers is not None else None
    common["request_id"] = headers.get("x-request-id") if headers is not None else None
    lowered = message.lower()
    model_missing = "model" in lowered and "not found" in lowered
    if status > 0:
        common["status_code"] = status
        cls = error_for_status(status, message, model_missing=model_missing)
    elif model_missing:  # an {"error": ...} line inside a 200 stream
        cls = ModelNotFound
    elif looks_like_context_overflow(message):
        cls = ContextTooLong
    else:
        cls = Unavailable
    if cls is ModelNotFound and common.get("model"):
        message += f"; pull it with `ollama pull {common['model']}`"
    return cls(message, **common)


def _wire_tools(toolset: CompiledToolset) -> list[dict[str, Any]]:
    """The toolset as /api/chat ``tools`` (built once per toolset: :meth:`CompiledToolset.wire`)."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in toolset.tools
    ]


def _usage(chunk: ChatResponse) -> Usage:
    # Absent counts are unknown (None): Ollama drops prompt_eval_count when the prompt was fully cached.
    return Usage(input_tokens=chunk.prompt_eval_count, output_tokens=chunk.eval_count)


def _stop_reason(done_reason: str | None, has_calls: bool) -> StopReason:
    if done_reason == "length":
        return "max_tokens"
    if done_reason in (None, "stop"):
        return "tool_use" if has_calls else "end_turn"
    return "other"  # "load" / "unload" come only from empty requests


def _aiohttp_cause(exc: BaseException) -> BaseException | None:
    """The aiohttp exception an ``httpx_aiohttp`` error was made from: it says what happened (refused,
    timed out, disconnected) where the mapped httpx type may not."""
    cause = exc.__cause__
    return cause if isinstance(cause, aiohttp.ClientError | TimeoutError) else None


def _max_connections(value: Any) -> int:
    """``options.max_connections`` as a positive int (a whole number given as text is accepted)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or str(number) != str(value).strip():
        raise ConfigError(f"options.max_connections must be a whole number of at least 1, not {value!r}")
    return number


def _is_hosted(host: str) -> bool:
    hostname = urlsplit(host if "://" in host else f"http://{host}").hostname or ""
    return hostname == _HOSTED_SUFFIX or hostname.endswith("." + _HOSTED_SUFFIX)


def _error_headers(exc: ollama.ResponseError) -> Mapping[str, str] | None:
    """Response headers of an HTTP error: the SDK raises ``ResponseError(...) from None`` inside its
    ``except httpx.HTTPStatusError`` block, so the original stays reachable as ``__context__``."""
    context = exc.__context__
    if isinstance(context, httpx.HTTPStatusError):
        return context.response.headers
    return None


def _validation_summary(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return f"{exc.error_count()} validation error(s)"
    return type(exc).__name__


def _describe_resource(part: ResourcePart) -> str:
    label = part.name or part.title or part.uri
    if part.text is not None:
        return f"[resource {label} ({part.uri})]\n{part.text}"
    return f"[resource link {label}: {part.uri}]"
