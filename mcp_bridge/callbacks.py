"""Client capabilities the hub offers servers: sampling, elicitation, roots and server log messages.

The agent supplies the handlers (sampling reaches a provider only through a :class:`SamplingHandler` the agent
hands the hub; elicitation goes to a CLI prompt, an HTTP event or a policy through an
:class:`ElicitationHandler`). The hub advertises a capability only when its handler is wired: no handler, no
``sampling`` / ``elicitation`` capability; no configured roots, no ``roots`` capability.

The types here are routekit's, not the SDK's, so the agent never imports ``mcp``; the ``_sdk_*`` adapters at
the bottom translate (they import the SDK lazily and are used by the hub only).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from providers.types import AudioPart, ImagePart, Message, Part, TextPart

if TYPE_CHECKING:
    import mcp_types

    from mcp_bridge.config import RootConfig

__all__ = [
    "ElicitationHandler",
    "ElicitationRequest",
    "ElicitationResponse",
    "ProgressCallback",
    "ProgressEvent",
    "SamplingHandler",
    "SamplingRequest",
    "SamplingResponse",
    "accept_defaults",
    "apply_schema_defaults",
]

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class ProgressEvent:
    """A ``notifications/progress`` for a running tool call."""

    tool: str  # canonical name
    progress: float
    total: float | None = None
    message: str | None = None


ProgressCallback = Callable[[ProgressEvent], Awaitable[None]]


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class SamplingRequest:
    """A server's ``sampling/createMessage``, in routekit's message model."""

    server: str
    messages: list[Message]
    max_tokens: int
    system: str | None = None
    temperature: float | None = None
    stop_sequences: list[str] | None = None
    model_hints: list[str] = field(default_factory=list)
    cost_priority: float | None = None
    speed_priority: float | None = None
    intelligence_priority: float | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class SamplingResponse:
    """The model's answer. ``stop_reason``: ``endTurn``, ``stopSequence``, ``maxTokens`` or another string."""

    message: Message
    model: str
    stop_reason: str | None = "endTurn"


class SamplingHandler(Protocol):
    """Runs a sampling request on a model of the agent's choosing. Raise to refuse (the server sees an error)."""

    async def __call__(self, request: SamplingRequest) -> SamplingResponse: ...


# --------------------------------------------------------------------------- elicitation


@dataclass(frozen=True)
class ElicitationRequest:
    """A server asks the user for input: a form (``schema``) or a URL to visit (``url``)."""

    server: str
    mode: Literal["form", "url"]
    message: str
    schema: dict[str, Any] | None = None
    url: str | None = None
    elicitation_id: str | None = None


@dataclass(frozen=True)
class ElicitationResponse:
    """``accept`` (with ``content`` for forms), ``decline`` or ``cancel``."""

    action: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None


class ElicitationHandler(Protocol):
    async def __call__(self, request: ElicitationRequest) -> ElicitationResponse: ...


def apply_schema_defaults(schema: dict[str, Any] | None, content: dict[str, Any] | None) -> dict[str, Any]:
    """Fill fields the user left out with the schema's ``default`` values (SEP-1034)."""
    filled = dict(content or {})
    properties = (schema or {}).get("properties") or {}
    for key, spec in properties.items():
        if key not in filled and isinstance(spec, dict) and "default" in spec:
            filled[key] = spec["default"]
    return filled


async def accept_defaults(request: ElicitationRequest) -> ElicitationResponse:
    """A policy handler: accept every form with its schema defaults, and every URL elicitation.

    Meant for headless runs and tests; an interactive agent supplies its own handler.
    """
    return ElicitationResponse(action="accept", content={} if request.mode == "form" else None)


# --------------------------------------------------------------------------- SDK adapters (hub-internal)


def _sampling_message_to_message(message: Any) -> Message:
    parts: list[Part] = []
    blocks = message.content if isinstance(message.content, list) else [message.content]
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(TextPart(text=block.text))
        elif kind == "image":
            parts.append(ImagePart(media_type=block.mime_type, data=base64.b64decode(block.data)))
        elif kind == "audio":
            parts.append(AudioPart(media_type=block.mime_type, data=base64.b64decode(block.data)))
        else:
            parts.append(TextPart(text=f"[{kind} content not supported by routekit sampling]"))
    role = "assistant" if message.role == "assistant" else "user"
    return Message(role=role, parts=parts)


def sdk_sampling_callback(server: str, handler: SamplingHandler) -> Any:
    """Wrap ``handler`` as the SDK's sampling callback."""

    async def callback(context: Any, params: mcp_types.CreateMessageRequestParams) -> Any:
        import mcp_types as types

        prefs = params.model_preferences
        request = SamplingRequest(
            server=server,
            messages=[_sampling_message_to_message(m) for m in params.messages],
            max_tokens=params.max_tokens,
            system=params.system_prompt,
            temperature=params.temperature,
            stop_sequences=params.stop_sequences,
            model_hints=[h.name for h in (prefs.hints or []) if h.name] if prefs else [],
            cost_priority=prefs.cost_priority if prefs else None,
            speed_priority=prefs.speed_priority if prefs else None,
            intelligence_priority=prefs.intelligence_priority if prefs else None,
            metadata=params.metadata,
        )
        try:
            response = await handler(request)
        except Exception as exc:
            _log.warning("sampling request from MCP server %r failed: %s", server, exc)
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"sampling failed: {type(exc).__name__}")
        return types.CreateMessageResult(
            role="assistant",
            content=_first_sampling_content(response.message),
            model=response.model,
            stop_reason=response.stop_reason,
        )

    return callback


def _first_sampling_content(message: Message) -> Any:
    import mcp_types as types

    text = message.text
    if text or not message.parts:
        return types.TextContent(text=text)
    for part in message.parts:
        if isinstance(part, ImagePart) and part.data is not None:
            return types.ImageContent(data=base64.b64encode(part.data).decode(), mime_type=part.media_type)
        if isinstance(part, AudioPart):
            return types.AudioContent(data=base64.b64encode(part.data).decode(), mime_type=part.media_type)
    return types.TextContent(text="")


def elicitation_request_from_sdk(server: str, params: Any) -> ElicitationRequest:
    if getattr(params, "mode", "form") == "url":
        return ElicitationRequest(
            server=server, mode="url", message=params.message, url=params.url, elicitation_id=params.elicitation_id
        )
    return ElicitationRequest(server=server, mode="form", message=params.message, schema=params.requested_schema)


def sdk_elicitation_callback(server: str, handler: ElicitationHandler) -> Any:
    """Wrap ``handler`` as the SDK's elicitation callback; accepted forms get the schema's defaults filled in."""

    async def callback(context: Any, params: Any) -> Any:
        import mcp_types as types

        request = elicitation_request_from_sdk(server, params)
        try:
            response = await handler(request)
        except Exception as exc:
            _log.warning("elicitation handler for MCP server %r failed: %s", server, exc)
            return types.ElicitResult(action="cancel")
        if response.action != "accept":
            return types.ElicitResult(action=response.action)
        if request.mode == "url":
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content=apply_schema_defaults(request.schema, response.content))

    return callback


def sdk_roots_callback(roots: list[RootConfig]) -> Any:
    async def callback(context: Any) -> Any:
        import mcp_types as types

        return types.ListRootsResult(roots=[types.Root(uri=r.uri, name=r.name) for r in roots])

    return callback


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


def server_logger(server: str) -> logging.Logger:
    return logging.getLogger(f"mcp_bridge.server.{server}")


def sdk_logging_callback(server: str) -> Any:
    """Server ``notifications/message`` → Python logging under ``mcp_bridge.server.<name>``."""
    target = server_logger(server)

    async def callback(params: mcp_types.LoggingMessageNotificationParams) -> None:
        data = params.data if isinstance(params.data, str) else repr(params.data)
        origin = f"{params.logger}: " if params.logger else ""
        target.log(_LEVELS.get(params.level, logging.INFO), "%s%s", origin, data[:4000])

    return callback
