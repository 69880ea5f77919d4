"""The normalized model every part of routekit speaks.

Messages, parts, tool specs, usage, requests, responses and stream events are pydantic models
so that a conversation serializes to JSON and back without losing anything (sessions are stored
and resumed). Binary payloads (images, audio, blobs) travel as base64 in JSON.

Conventions that the adapters rely on:

* ``Usage`` fields are ``None`` when the provider did not say. ``None`` is never replaced by 0:
  an unknown count stays unknown all the way to the usage ledger.
* ``Usage.input_tokens`` counts *every* prompt token the provider processed, cached ones included;
  ``cache_read_tokens`` and ``cache_write_tokens`` are the subsets that hit or filled the cache.
  ``output_tokens`` counts every generated token, reasoning included; ``reasoning_tokens`` is that
  subset. (Anthropic reports uncached input only and Gemini reports thoughts apart from candidates;
  their adapters add the pieces up so that all providers mean the same thing.)
* Tool names in messages and ``ToolSpec`` are canonical routekit names (``server.tool`` for MCP
  tools). Adapters map them to each provider's naming rule and back.
* ``provider_data`` is opaque state one provider needs echoed back (Gemini thought signatures,
  Anthropic signatures, OpenAI reasoning ids). It is tagged with the provider that produced it so
  that the history normalizer can drop it when a conversation moves to another provider.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    """Base for the normalized types: strict about unknown fields, base64 for bytes in JSON."""

    model_config = ConfigDict(
        extra="forbid",
        ser_json_bytes="base64",
        val_json_bytes="base64",
        frozen=False,
    )


class ProviderData(_Model):
    """Opaque per-provider state that must be echoed back to the provider that produced it."""

    provider: str
    data: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- parts


class TextPart(_Model):
    type: Literal["text"] = "text"
    text: str
    provider_data: ProviderData | None = None


class ImagePart(_Model):
    """An image given inline (``data``) or by reference (``url``); exactly one of the two is set."""

    type: Literal["image"] = "image"
    media_type: str = "image/png"
    data: bytes | None = None
    url: str | None = None
    provider_data: ProviderData | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImagePart:
        if (self.data is None) == (self.url is None):
            raise ValueError("ImagePart needs exactly one of `data` (bytes) or `url`")
        return self


class AudioPart(_Model):
    type: Literal["audio"] = "audio"
    media_type: str = "audio/wav"
    data: bytes
    provider_data: ProviderData | None = None


class ResourcePart(_Model):
    """An MCP resource: a link (``uri`` only) or an embedded resource (``text`` or ``data``)."""

    type: Literal["resource"] = "resource"
    uri: str
    name: str | None = None
    title: str | None = None
    description: str | None = None
    media_type: str | None = None
    text: str | None = None
    data: bytes | None = None
    provider_data: ProviderData | None = None


class ThinkingPart(_Model):
    """Model reasoning. ``signature`` (or ``redacted_data``) is opaque and only valid for ``provider``."""

    type: Literal["thinking"] = "thinking"
    text: str = ""
    signature: str | None = None
    redacted_data: str | None = None
    provider: str | None = None
    provider_data: ProviderData | None = None


class ToolCallPart(_Model):
    """A tool call the model made.

    ``arguments`` is always a JSON object. When the provider sent arguments that are not a JSON object
    (truncated or malformed JSON), ``arguments`` is empty and ``raw_arguments`` holds the text so the
    agent loop can hand the error back to the model instead of calling the tool.
    """

    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str | None = None
    provider_data: ProviderData | None = None

    @property
    def arguments_valid(self) -> bool:
        return self.raw_arguments is None


ToolResultContent: TypeAlias = Annotated[TextPart | ImagePart | AudioPart | ResourcePart, Field(discriminator="type")]


class ToolResultPart(_Model):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    content: list[ToolResultContent] = Field(default_factory=list)
    structured: dict[str, Any] | None = None
    is_error: bool = False
    provider_data: ProviderData | None = None

    def text(self) -> str:
        """The result as one text: text parts joined, other parts described, structured content as JSON."""
        from providers._render import render_tool_result_text

        return render_tool_result_text(self)


Part: TypeAlias = Annotated[
    TextPart | ImagePart | AudioPart | ResourcePart | ThinkingPart | ToolCallPart | ToolResultPart,
    Field(discriminator="type"),
]

Role: TypeAlias = Literal["user", "assistant", "tool"]


class Message(_Model):
    """One turn. ``tool`` messages hold only ``ToolResultPart``s answering the previous assistant turn."""

    role: Role
    parts: list[Part] = Field(default_factory=list)

    @classmethod
    def user(cls, text: str, *images: ImagePart) -> Message:
        return cls(role="user", parts=[TextPart(text=text), *images])

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls(role="assistant", parts=[TextPart(text=text)])

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]

    @property
    def tool_results(self) -> list[ToolResultPart]:
        return [p for p in self.parts if isinstance(p, ToolResultPart)]


# --------------------------------------------------------------------------- tools


class ToolAnnotations(_Model):
    """MCP tool annotations (hints, not guarantees)."""

    title: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None


class ToolSpec(_Model):
    """A tool offered to the model. ``name`` is canonical (``server.tool`` for MCP tools)."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    annotations: ToolAnnotations | None = None
    title: str | None = None
    origin: str | None = None  # the MCP server (or other source) the tool came from

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """A digest of the spec's content, the key of the compiled-toolset cache (:mod:`providers.schema`).

        Computed once per spec object: an agent offers the same specs on every step. Replacing a field
        (assignment, ``model_copy(update=...)``) forgets it; a spec's dicts must not be changed in place once
        it has been offered (copy the spec instead).
        """
        return hashlib.blake2b(self.model_dump_json().encode(), digest_size=16).digest()

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__.pop("fingerprint", None)
        super().__setattr__(name, value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        if update:
            copied.__dict__.pop("fingerprint", None)
        return copied


class ForceTool(_Model):
    """``tool_choice`` that forces one named tool."""

    type: Literal["tool"] = "tool"
    name: str


ToolChoice: TypeAlias = Literal["auto", "none", "required"] | ForceTool


# --------------------------------------------------------------------------- usage


class Usage(_Model):
    """Token counts for one model call. ``None`` means the provider did not report it (never 0)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def known(self) -> bool:
        return self.input_tokens is not None and self.output_tokens is not None

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        """Sum two usages field by field; a field unknown on either side stays unknown."""

        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b

        return Usage(
            input_tokens=add(self.input_tokens, other.input_tokens),
            output_tokens=add(self.output_tokens, other.output_tokens),
            cache_read_tokens=add(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens=add(self.cache_write_tokens, other.cache_write_tokens),
            reasoning_tokens=add(self.reasoning_tokens, other.reasoning_tokens),
        )


StopReason: TypeAlias = Literal[
    "end_turn",  # the model finished its answer
    "tool_use",  # the model wants tool results
    "max_tokens",  # output limit reached
    "stop_sequence",  # a stop sequence matched
    "content_filter",  # the provider withheld content (safety, recitation, ...)
    "refusal",  # the model refused
    "pause",  # the provider paused a long turn (Anthropic pause_turn)
    "context_exceeded",  # the context window ran out mid-answer
    "error",  # the provider reported a malformed call or similar failure in-band
    "other",
]


# --------------------------------------------------------------------------- requests


class ThinkingConfig(_Model):
    """Ask for model reasoning. ``budget_tokens`` for Anthropic/Gemini, ``effort`` for OpenAI-style models."""

    enabled: bool = True
    budget_tokens: int | None = None
    effort: Literal["minimal", "low", "medium", "high"] | None = None


class ModelRequest(_Model):
    model: str
    messages: list[Message]
    system: str | None = None
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    thinking: ThinkingConfig | None = None
    strict_tools: bool | None = None  # None: strict where the schema qualifies (OpenAI); False: never
    metadata: dict[str, str] = Field(default_factory=dict)


class ModelResponse(_Model):
    message: Message
    usage: Usage = Field(default_factory=Usage)
    stop_reason: StopReason = "end_turn"
    raw_stop_reason: str | None = None
    model: str
    provider: str
    response_id: str | None = None
    request_id: str | None = None

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return self.message.tool_calls


# --------------------------------------------------------------------------- stream events


class TextDelta(_Model):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ThinkingDelta(_Model):
    type: Literal["thinking_delta"] = "thinking_delta"
    text: str


class ToolCallDelta(_Model):
    """A fragment of a tool call as it streams; ``index`` is the call's position in this response."""

    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    id: str | None = None
    name: str | None = None
    arguments_delta: str = ""


class ToolCallReady(_Model):
    """A tool call whose arguments are complete."""

    type: Literal["tool_call_ready"] = "tool_call_ready"
    call: ToolCallPart


class UsageReport(_Model):
    """Usage as known so far (cumulative). The last one before ``ResponseDone`` is final."""

    type: Literal["usage"] = "usage"
    usage: Usage


class ResponseDone(_Model):
    type: Literal["response_done"] = "response_done"
    response: ModelResponse


StreamEvent: TypeAlias = Annotated[
    TextDelta | ThinkingDelta | ToolCallDelta | ToolCallReady | UsageReport | ResponseDone,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- models


class ModelInfo(_Model):
    id: str
    provider: str
    display_name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None


class CheckResult(_Model):
    """Outcome of ``Provider.check()``: whether the key and endpoint work, without spending tokens."""

    ok: bool
    provider: str
    detail: str
    models_visible: int | None = None
