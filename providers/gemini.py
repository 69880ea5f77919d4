"""Gemini adapter: the Gemini Developer API and Vertex AI through the official google-genai SDK.

What this module maps, and why some of it is less obvious than it looks:

* Transport. The SDK's own choice (aiohttp when installed, else httpx2/httpx), so routekit costs no
  more CPU per call than the raw SDK. ``HttpOptions.timeout`` (milliseconds) is per attempt: on aiohttp
  it bounds the whole attempt including the stream (a total timeout), on httpx each read; a separate
  connect timeout cannot be passed through the SDK's clients. Transport errors of all three libraries
  are mapped.
* Retries. ``HttpRetryOptions(attempts=1)``: one attempt per call (routekit's resilience layer retries
  and meters each attempt); it also stops the SDK's implicit reconnect-after-sleep on aiohttp
  connection errors. Automatic function calling and automatic stream continuation (two SDK loops that
  would issue extra requests) are switched off per request.
* ``complete()`` asks the SDK for the HTTP response as it came (``should_return_http_response``, a public
  config field) and reads its JSON through :class:`_JsonView`: building the SDK's typed response costs
  more CPU than the rest of the adapter, and the request is still built, sent and error-checked by the SDK.
  Streams are read from the SDK's typed chunks.
* Thought signatures are bytes in the SDK and base64 on the wire. Google emits standard base64
  (proto3 JSON); the SDK decodes it, and encodes bytes it sends with the URL-safe alphabet. We store
  the standard base64 text (what the API sent) and decode it back to the same bytes when replaying.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from providers._adapter import Adapter, Call, StreamState
from providers._wire import WireView, json_object
from providers.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ProviderError,
    StreamInterrupted,
    Timeout,
    ToolSchemaError,
    Unavailable,
    error_for_status,
    parse_retry_after,
)
from providers.history import GEMINI_SKIP_SIGNATURE
from providers.schema import CompiledToolset
from providers.stream import ToolCallAssembler, new_call_id
from providers.types import (
    AudioPart,
    ForceTool,
    ImagePart,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    ProviderData,
    ResourcePart,
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
    ToolResultContent,
    ToolResultPart,
    Usage,
    UsageReport,
)

if TYPE_CHECKING:
    from providers.egress import EgressPolicy

# Default API version for the Developer API. google-genai 3.x defaults to "v1", but the features this
# adapter relies on reached the Developer API through v1beta first and v1 has rejected fields it did
# not know yet with "Invalid JSON payload received. Unknown name ..." (python-genai#1398: v1 refused
# systemInstruction/responseSchema; go-genai#83: thinkingConfig unknown). Google's own docs and REST
# examples for function calling, thought signatures, parametersJsonSchema and FunctionResponse.parts
# use /v1beta/. options.api_version overrides it. Vertex keeps the SDK's own default (v1beta1).
DEFAULT_API_VERSION = "v1beta"
# The SDK's default endpoints (google-genai _api_client.py), given explicitly under an egress policy.
_GEMINI_URL = "https://generativelanguage.googleapis.com/"
_VERTEX_EXPRESS_URL = "https://aiplatform.googleapis.com/"

# Documented placeholder for a model-turn functionCall whose thought signature we do not have (history
# written by another provider or an older model): Gemini 3 accepts it instead of a real signature
# (ai.google.dev thought-signatures FAQ). The SDK field is bytes and the SDK sends bytes as URL-safe
# base64, so these 24 bytes appear on the wire as exactly "skip_thought_signature_validator".
SKIP_SIGNATURE = base64.urlsafe_b64decode(GEMINI_SKIP_SIGNATURE)

_FINISH_REASONS: dict[str, StopReason] = {
    "MAX_TOKENS": "max_tokens",
    **dict.fromkeys(
        (
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_RECITATION",
            "MODEL_ARMOR",
        ),
        "content_filter",
    ),
    **dict.fromkeys(
        (
            "MALFORMED_FUNCTION_CALL",
            "UNEXPECTED_TOOL_CALL",
            "MISSING_THOUGHT_SIGNATURE",
            "TOO_MANY_TOOL_CALLS",
            "MALFORMED_RESPONSE",
        ),
        "error",
    ),
}

_TOOL_RESULT_MEDIA = ("image/png", "image/jpeg", "image/webp")  # FunctionResponse.parts (Gemini 3)


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeouts, other transport failures) of every HTTP library the SDK may be using."""
    timeouts: list[type[BaseException]] = [TimeoutError]  # asyncio and aiohttp timeouts derive from it
    failures: list[type[BaseException]] = [OSError]  # ConnectionResetError and friends
    try:
        import aiohttp

        failures.append(aiohttp.ClientError)  # ClientPayloadError, ServerDisconnectedError, ...
    except ImportError:  # pragma: no cover - aiohttp is optional for google-genai
        pass
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:  # pragma: no cover
            continue
        timeouts.append(module.TimeoutException)
        failures.append(module.TransportError)
    return tuple(timeouts), tuple(failures)


_TIMEOUT_ERRORS, _TRANSPORT_ERRORS = _transport_errors()

# HTTP responses opened while a stream() advances its SDK generator (see _track_responses).
_OPEN_RESPONSES: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "routekit_gemini_open_responses", default=None
)


async def _track_responses(request: Any, handler: Any) -> Any:
    """aiohttp client middleware: remember the responses a stream opened, so stream() can close them.

    The SDK's streaming generators form reference cycles; when a consumer stops early, closing the
    outer generator leaves the HTTP response open until the garbage collector runs. Closing what we
    recorded here releases the connection deterministically.
    """
    response = await handler(request)
    opened = _OPEN_RESPONSES.get()
    if opened is not None:
        opened.append(response)
    return response


def encode_signature(raw: bytes) -> str:
    """Thought signature bytes -> the standard base64 text the API sends."""
    return base64.b64encode(raw).decode("ascii")


def decode_signature(text: str) -> bytes | None:
    """Stored signature text (standard or URL-safe base64) -> bytes; None when it is not base64."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _bare_model(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def _enum_text(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


# --------------------------------------------------------------------------- response assembly


class _JsonView(WireView):
    """A ``generateContent`` response body (camelCase JSON) read like the SDK's typed response: snake_case
    attributes, a thought signature as bytes, function call arguments as the plain JSON object."""

    __slots__ = ()
    _NAMES: ClassVar[dict[str, str]] = {}

    def __getattr__(self, name: str) -> Any:
        key = self._NAMES.get(name)
        if key is None:
            head, *rest = name.split("_")
            key = self._NAMES[name] = head + "".join(word.title() for word in rest)
        value = self._data.get(key)
        if name == "args":
            return value
        if name == "thought_signature":
            return decode_signature(value) if isinstance(value, str) else None
        return self._view(value)


@dataclass(slots=True)
class _Slot:
    kind: str  # "text" | "thinking" | "call"
    texts: list[str] = field(default_factory=list)
    signature: str | None = None
    position: int = -1  # for calls: position in the assembler


class _ResponseBuilder(StreamState):
    """Builds one ModelResponse from one (complete) or many (streamed) GenerateContentResponse chunks."""

    unfinished: ClassVar[str] = "the response stream ended before the chunk carrying finishReason"

    def __init__(self, provider: str, model: str, toolset: CompiledToolset) -> None:
        self.provider = provider
        self.model = model
        self.toolset = toolset
        self.slots: list[_Slot] = []
        self.assembler = ToolCallAssembler()
        self.metadata: types.GenerateContentResponseUsageMetadata | None = None
        self.finish_reason: str | None = None
        self.block_reason: str | None = None
        self.response_id: str | None = None
        self.model_version: str | None = None
        self.received_any = False

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None or self.block_reason is not None

    def stream_events(self, chunk: Any) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        self.feed(chunk, events)
        return events

    def partial(self, error: ProviderError) -> ModelResponse | None:
        """Nothing when no chunk arrived (the SDK sends the request on the first read: a refusal then)."""
        del error
        return self.response() if self.received_any else None

    def feed(self, chunk: types.GenerateContentResponse | _JsonView, events: list[StreamEvent] | None = None) -> None:
        self.received_any = True
        self.response_id = chunk.response_id or self.response_id
        self.model_version = chunk.model_version or self.model_version
        if chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason is not None:
            self.block_reason = _enum_text(chunk.prompt_feedback.block_reason)
        if chunk.candidates:
            candidate = chunk.candidates[0]
            if candidate.content is not None and candidate.content.parts:
                for part in candidate.content.parts:
                    self._part(part, events)
            if candidate.finish_reason is not None:
                self.finish_reason = _enum_text(candidate.finish_reason)
        if chunk.usage_metadata is not None:
            self.metadata = chunk.usage_metadata
            if events is not None:
                events.append(UsageReport(usage=self.usage()))

    def _part(self, part: types.Part, events: list[StreamEvent] | None) -> None:
        signature = encode_signature(part.thought_signature) if part.thought_signature else None
        call = part.function_call
        if call is not None:
            self._call(call, signature, events)
            return
        if part.text is None and signature is None:
            return  # a part kind routekit does not model (executable code, inline output data, ...)
        kind = "thinking" if part.thought else "text"
        slot = self.slots[-1] if self.slots else None
        if slot is None or slot.kind != kind or slot.signature is not None:
            slot = _Slot(kind=kind)
            self.slots.append(slot)
        if part.text:
            slot.texts.append(part.text)
            if events is not None:
                events.append(ThinkingDelta(text=part.text) if part.thought else TextDelta(text=part.text))
        if signature is not None:
            slot.signature = signature

    def _call(self, call: types.FunctionCall, signature: str | None, events: list[StreamEvent] | None) -> None:
        call_id = call.id or new_call_id()
        name = self.toolset.canonical_name(call.name or "")
        args = call.args or {}
        data = ProviderData(provider=self.provider, data={"thought_signature": signature}) if signature else None
        index = len(self.assembler)
        position = self.assembler.add(index=index, id=call_id, name=name, arguments=args, provider_data=data)
        self.slots.append(_Slot(kind="call", position=position))
        if events is not None:
            events.append(ToolCallDelta(index=position, id=call_id, name=name, arguments_delta=json.dumps(args)))
            events.append(ToolCallReady(call=self.assembler.complete()[position]))

    def usage(self) -> Usage:
        meta = self.metadata
        if meta is None:
            return Usage()
        prompt = meta.prompt_token_count
        candidates = meta.candidates_token_count
        thoughts = meta.thoughts_token_count
        return Usage(
            input_tokens=None if prompt is None else prompt + (meta.tool_use_prompt_token_count or 0),
            output_tokens=None if candidates is None else candidates + (thoughts or 0),
            cache_read_tokens=meta.cached_content_token_count,
            reasoning_tokens=thoughts,
        )

    def response(self) -> ModelResponse:
        calls = self.assembler.complete()
        parts: list[Any] = []
        for slot in self.slots:
            data = (
                ProviderData(provider=self.provider, data={"thought_signature": slot.signature})
                if slot.signature
                else None
            )
            if slot.kind == "call":
                parts.append(calls[slot.position])
            elif slot.kind == "thinking":
                parts.append(
                    ThinkingPart(
                        text="".join(slot.texts), signature=slot.signature, provider=self.provider, provider_data=data
                    )
                )
            else:
                parts.append(TextPart(text="".join(slot.texts), provider_data=data))
        stop, raw = self._stop(bool(calls))
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=self.usage(),
            stop_reason=stop,
            raw_stop_reason=raw,
            model=self.model_version or self.model,
            provider=self.provider,
            response_id=self.response_id,
        )

    def _stop(self, has_calls: bool) -> tuple[StopReason, str | None]:
        if self.finish_reason is None and self.block_reason is not None:
            return "content_filter", self.block_reason
        raw = self.finish_reason
        if raw is None:
            return ("tool_use" if has_calls else "end_turn"), None
        if raw == "STOP":
            return ("tool_use" if has_calls else "end_turn"), raw
        return _FINISH_REASONS.get(raw, "other"), raw


# --------------------------------------------------------------------------- the adapter


_Wire = dict[str, Any]  # a google-genai request object as a dict (Content, Part, FunctionCall, ...)


@dataclass(slots=True)
class _Request:
    """What ``generate_content`` takes besides the model."""

    contents: list[_Wire]
    config: types.GenerateContentConfig


class GeminiProvider(Adapter):
    """routekit adapter for Gemini (Developer API with profile ``gemini``, Vertex AI with ``vertex``)."""

    # ------------------------------------------------------------------ construction

    def build_client(self, egress: EgressPolicy | None) -> None:
        self._vertex = self.profile.name == "vertex"
        self._egress = egress
        self._session: Any = None  # the guarded aiohttp session under an egress policy (closed by aclose)
        form = self.config.options.get("schema_form")
        if form not in (None, "json_schema", "openapi"):
            raise ConfigError(
                f"options.schema_form for {self.profile.display_name} must be 'json_schema' (parameters_json_schema) "
                f"or 'openapi' (parameters), got {form!r}"
            )
        self.schema_form = form
        self._client = genai.Client(**self._client_args(), http_options=self._http_options())

    def _client_args(self) -> dict[str, Any]:
        options = self.config.options
        ambient = self._egress is None  # the service never uses its own environment or cloud credentials
        if not self._vertex:
            return {"vertexai": False, "api_key": self.config.resolve_api_key(environment=ambient)}
        project, location = options.get("project"), options.get("location")
        if project or location:
            if not ambient:
                raise ConfigError(
                    f"{self.profile.display_name} with options.project/location authenticates with the machine's "
                    "application default credentials, which the service never lends to a user: give the config "
                    "an express-mode API key instead"
                )
            # Project mode authenticates with application default credentials, not a key.
            return {"vertexai": True, "project": project, "location": location}
        key = self.config.resolve_api_key(environment=ambient)
        if not key:
            raise ConfigError(
                f"no credentials for {self.profile.display_name}: set options.project and options.location "
                f"(application default credentials), or an express-mode key in {self.config.key_env_var}."
            )
        return {"vertexai": True, "api_key": key}

    def _http_options(self) -> types.HttpOptions:
        version = self.config.options.get("api_version") or (None if self._vertex else DEFAULT_API_VERSION)
        base_url = self.config.base_url
        # Passed by the SDK to every aiohttp request (replacing the session's own middlewares); ignored
        # (filtered out) for httpx clients.
        middlewares: tuple[Any, ...] = (_track_responses,)
        session = None
        if self._egress is not None:
            from providers._http import shared_ssl_context
            from providers.egress import egress_middleware, guarded_session

            # Explicit, or the SDK would take GOOGLE_GEMINI_BASE_URL / GOOGLE_VERTEX_BASE_URL from the environment.
            base_url = base_url or (_VERTEX_EXPRESS_URL if self._vertex else _GEMINI_URL)
            what = f"{self.profile.display_name} endpoint"
            session = self._session = guarded_session(self._egress, what=what, ssl=shared_ssl_context())
            middlewares = (egress_middleware(self._egress, what=what), _track_responses)
        return types.HttpOptions(
            base_url=base_url,
            api_version=version,
            headers=self.config.header_values() or None,
            timeout=int(self.config.timeout * 1000),  # milliseconds; also sent as X-Server-Timeout
            retry_options=types.HttpRetryOptions(attempts=1),
            async_client_args={"middlewares": middlewares},
            aiohttp_client=session,
        )

    # ------------------------------------------------------------------ request mapping

    def _wire_tools(self, toolset: CompiledToolset) -> list[types.Tool]:
        """The toolset as one ``types.Tool`` (built once per toolset: :meth:`CompiledToolset.wire`)."""
        declarations = [self._declaration(tool) for tool in toolset.tools]
        return [types.Tool(function_declarations=declarations)] if declarations else []

    def _declaration(self, tool: Any) -> types.FunctionDeclaration:
        if tool.schema_form == "openapi":
            try:
                schema = types.Schema.model_validate(tool.parameters)
            except ValueError as exc:
                detail = f"not an OpenAPI schema: {exc}"
                raise ToolSchemaError(tool.spec.name, self.name, "parameters", detail) from None
            return types.FunctionDeclaration(name=tool.name, description=tool.description or None, parameters=schema)
        return types.FunctionDeclaration(
            name=tool.name, description=tool.description or None, parameters_json_schema=tool.parameters
        )

    def to_wire(self, call: Call, *, stream: bool) -> _Request:
        del stream  # the same request either way
        request, toolset = call.request, call.toolset
        wire_tools = toolset.wire("gemini", self._wire_tools)  # one toolset per schema form: the key is enough
        contents = self._contents(call.history, toolset, call.profile.tool_result_media is True)
        thinking = self._thinking(request.thinking) if call.profile.thinking_field is not None else None
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            temperature=request.temperature,
            top_p=request.top_p,
            max_output_tokens=request.max_tokens,
            stop_sequences=request.stop or None,
            tools=list(wire_tools) or None,
            tool_config=self._tool_config(request, toolset) if wire_tools else None,
            thinking_config=thinking,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
        )
        # Gemini has no switch for parallel tool calls; request.parallel_tool_calls is not sent.
        return _Request(contents=contents, config=config)

    @staticmethod
    def _tool_config(request: ModelRequest, toolset: CompiledToolset) -> types.ToolConfig | None:
        choice = request.tool_choice
        if choice is None:
            return None
        if isinstance(choice, ForceTool):
            calling = types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=[toolset.provider_name(choice.name)]
            )
        else:
            mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
            calling = types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode(mode))
        return types.ToolConfig(function_calling_config=calling)

    @staticmethod
    def _thinking(thinking: ThinkingConfig | None) -> types.ThinkingConfig | None:
        if thinking is None:
            return None
        if not thinking.enabled:
            return types.ThinkingConfig(include_thoughts=False, thinking_budget=0)
        level = None
        if thinking.effort is not None and thinking.budget_tokens is None:
            level = types.ThinkingLevel(thinking.effort.upper())  # Gemini 3 takes a level, 2.5 a budget
        return types.ThinkingConfig(include_thoughts=True, thinking_budget=thinking.budget_tokens, thinking_level=level)

    def _own_signature(self, data: ProviderData | None) -> bytes | None:
        if data is None or data.provider != self.name:
            return None
        text = data.data.get("thought_signature")
        return decode_signature(text) if isinstance(text, str) and text else None

    # History goes to the SDK as plain dicts (snake_case field names): the SDK validates ``contents``
    # against a wide Union, and for model instances that costs ~7x more CPU than for dicts.

    def _contents(self, messages: list[Message], toolset: CompiledToolset, media: bool) -> list[_Wire]:
        contents: list[_Wire] = []
        previous_role: str | None = None
        for message in messages:
            if message.role == "assistant":
                parts = self._model_parts(message, toolset)
                role = "model"
            else:
                parts = self._user_parts(message, toolset, media)
                role = "user"
            if not parts:
                continue
            if message.role == "tool" and previous_role == "tool" and contents:
                # Consecutive tool messages answer one model turn: Gemini wants them in one content.
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
            previous_role = message.role
        return contents

    def _model_parts(self, message: Message, toolset: CompiledToolset) -> list[_Wire]:
        parts: list[_Wire] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                if part.text:
                    parts.append(_signed({"text": part.text}, self._own_signature(part.provider_data)))
            elif isinstance(part, ToolCallPart):
                call = {"id": part.id, "name": toolset.provider_name(part.name), "args": part.arguments}
                signature = self._own_signature(part.provider_data) or SKIP_SIGNATURE
                parts.append({"function_call": call, "thought_signature": signature})
            elif isinstance(part, ThinkingPart):
                thought_signature = self._own_signature(part.provider_data)
                if thought_signature is None and part.provider == self.name and part.signature:
                    thought_signature = decode_signature(part.signature)
                own = part.provider == self.name or thought_signature is not None
                if own and (part.text or thought_signature):
                    parts.append(_signed({"text": part.text, "thought": True}, thought_signature))
        return parts

    def _user_parts(self, message: Message, toolset: CompiledToolset, media: bool) -> list[_Wire]:
        parts: list[_Wire] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                if part.text:
                    parts.append({"text": part.text})
            elif isinstance(part, ImagePart):
                parts.append(_media_part(part.media_type, part.data, part.url))
            elif isinstance(part, AudioPart):
                parts.append(_media_part(part.media_type, part.data, None))
            elif isinstance(part, ResourcePart):
                parts.append({"text": ToolResultPart(call_id="-", name="-", content=[part]).text()})
            elif isinstance(part, ToolResultPart):
                parts.append(self._function_response(part, toolset, media))
        return parts

    @staticmethod
    def _function_response(result: ToolResultPart, toolset: CompiledToolset, media: bool) -> _Wire:
        images: list[ImagePart] = []
        rest: list[ToolResultContent] = []
        for p in result.content:
            if media and isinstance(p, ImagePart) and p.media_type in _TOOL_RESULT_MEDIA:
                images.append(p)
            else:
                rest.append(p)
        text = result.model_copy(update={"content": rest}).text() if images else result.text()
        response: dict[str, Any]
        if result.is_error:
            response = {"error": text}
        elif result.structured is not None:
            response = result.structured
        else:
            response = {"result": text}
        body: _Wire = {"id": result.call_id, "name": toolset.provider_name(result.name), "response": response}
        if images:
            # Gemini 3 takes media in FunctionResponse.parts (image/png, image/jpeg, image/webp).
            body["parts"] = [_media_part(p.media_type, p.data, p.url) for p in images]
        return {"function_response": body}

    # ------------------------------------------------------------------ calls

    async def send(self, wire: _Request, call: Call) -> Any:
        wire.config.should_return_http_response = True  # the body as JSON text (module doc)
        return await self._client.aio.models.generate_content(
            model=call.model, contents=cast(Any, wire.contents), config=wire.config
        )

    def from_wire(self, answer: Any, call: Call) -> ModelResponse:
        http = answer.sdk_http_response
        data = json_object((http.body if http is not None else None) or b"")
        if data is None:
            raise Unavailable(
                "the response body was not valid JSON (is base_url the Gemini API?)",
                provider=self.name,
                model=call.model,
                secrets=self._secrets,
            )
        builder = _ResponseBuilder(self.name, call.model, call.toolset)
        builder.feed(_JsonView(data))
        return builder.response()

    async def open_stream(self, wire: _Request, call: Call) -> _Chunks:
        chunks = await self._client.aio.models.generate_content_stream(
            model=call.model, contents=cast(Any, wire.contents), config=wire.config
        )
        return _Chunks(chunks)

    def stream_state(self, call: Call, chunks: Any) -> _ResponseBuilder:
        return _ResponseBuilder(self.name, call.model, call.toolset)

    async def close_stream(self, chunks: Any) -> None:
        await chunks.aclose()

    async def fetch_models(self) -> list[ModelInfo]:
        pager = await self._client.aio.models.list(config={"page_size": 1000})
        return [
            ModelInfo(
                id=_bare_model(model.name or ""),
                provider=self.name,
                display_name=model.display_name,
                context_window=model.input_token_limit,
                max_output_tokens=model.output_token_limit,
            )
            async for model in pager
            if model.name
        ]

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aio.aclose()
        with contextlib.suppress(Exception):
            self._client.close()
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()

    # ------------------------------------------------------------------ errors

    def map_error(self, exc: BaseException, *, model: str | None, streaming: bool, started: bool) -> ProviderError:
        """Map anything the SDK or the transport raised onto the routekit taxonomy."""
        common: dict[str, Any] = {"provider": self.name, "model": model, "secrets": self._secrets}
        if isinstance(exc, genai_errors.APIError):
            return _api_error(exc, model, common)
        if isinstance(exc, _TIMEOUT_ERRORS):
            return Timeout(f"no answer within the timeout ({type(exc).__name__})", **common)
        if isinstance(exc, _TRANSPORT_ERRORS):
            if streaming and started:
                return StreamInterrupted(f"connection lost mid-stream ({type(exc).__name__}: {exc})", **common)
            return Unavailable(f"connection failed ({type(exc).__name__}: {exc})", **common)
        if isinstance(exc, genai_errors.UnknownApiResponseError | json.JSONDecodeError):
            what = "a stream chunk" if streaming else "the response body"
            cls = StreamInterrupted if streaming else Unavailable
            return cls(f"{what} was not valid JSON", **common)
        if isinstance(exc, ValueError):
            return BadRequest(f"the request could not be built: {exc}", **common)
        return ProviderError(f"unexpected {type(exc).__name__}: {exc}", **common)


class _Chunks:
    """The SDK's stream of chunks, recording the HTTP responses each read opens (see :func:`_track_responses`)
    so that :meth:`aclose` can close them."""

    __slots__ = ("_chunks", "_opened")

    def __init__(self, chunks: AsyncIterator[types.GenerateContentResponse]) -> None:
        self._chunks = chunks
        self._opened: list[Any] = []

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> types.GenerateContentResponse:
        token = _OPEN_RESPONSES.set(self._opened)  # only around the SDK call, never across the caller's yields
        try:
            return await self._chunks.__anext__()
        finally:
            _OPEN_RESPONSES.reset(token)

    async def aclose(self) -> None:
        """Drop the HTTP response and the SDK's generator. Closing an already finished or broken one may raise;
        nothing is left then."""
        for response in self._opened:
            with contextlib.suppress(Exception):
                response.close()
        with contextlib.suppress(Exception):
            await cast(Any, self._chunks).aclose()


def _api_error(exc: genai_errors.APIError, model: str | None, common: dict[str, Any]) -> ProviderError:
    code = int(exc.code) if exc.code else 500
    message = str(exc.message or exc)
    text = f"{exc.status}: {message}" if exc.status else message
    details = _error_details(exc.details)
    retry_after = _retry_delay(details)
    if retry_after is None and exc.response is not None:
        retry_after = parse_retry_after(getattr(exc.response, "headers", None))
    common = {**common, "status_code": code, "retry_after": retry_after}
    if code == 400 and (_has_reason(details, "API_KEY_INVALID") or "api key not valid" in message.lower()):
        return AuthenticationError(text, **common)  # Gemini answers a bad key with 400, not 401
    # A 404 while generating is the model; while listing models it is the endpoint.
    return error_for_status(code, message, model_missing=model is not None)(text, **common)


def _media_part(media_type: str, data: bytes | None, url: str | None) -> _Wire:
    """A Part (or FunctionResponsePart: same shape for these two fields) carrying media."""
    if data is not None:
        return {"inline_data": {"mime_type": media_type, "data": data}}
    return {"file_data": {"file_uri": url, "mime_type": media_type}}


def _signed(part: _Wire, signature: bytes | None) -> _Wire:
    if signature is not None:
        part["thought_signature"] = signature
    return part


def _error_details(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        inner = body.get("error", body)
        details = inner.get("details") if isinstance(inner, dict) else None
        if isinstance(details, list):
            return [d for d in details if isinstance(d, dict)]
    return []


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` ("1.5s") in the error details, capped like retry-after."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return min(float(match.group(1)), 60.0)
    return None


def _has_reason(details: list[dict[str, Any]], reason: str) -> bool:
    return any(detail.get("reason") == reason for detail in details)
