"""Typed events of an agent run: one stream that the CLI, the HTTP service and Python callers consume.

Events are small frozen dataclasses (not pydantic models): a run emits one per streamed text delta, so
building them must cost next to nothing. Every event has a ``type`` tag and :func:`event_to_dict` turns
any of them into plain JSON-ready data (for SSE and ``--json`` consumers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from providers.types import Usage

if TYPE_CHECKING:
    from agent.session import RunResult

__all__ = [
    "AgentEvent",
    "ApprovalRequested",
    "EventCallback",
    "FallbackUsed",
    "RetryScheduled",
    "RunError",
    "RunFinished",
    "TextChunk",
    "ThinkingChunk",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolProgress",
    "UsageUpdated",
    "event_to_dict",
]


@dataclasses.dataclass(frozen=True, slots=True)
class TextChunk:
    """A piece of the model's answer as it streams."""

    type: ClassVar[str] = "text"
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class ThinkingChunk:
    """A piece of the model's reasoning, when the provider streams it."""

    type: ClassVar[str] = "thinking"
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call is about to run (after validation and approval). ``name`` is canonical (``server.tool``)."""

    type: ClassVar[str] = "tool_started"
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ToolProgress:
    """A running tool reported progress (MCP ``notifications/progress``)."""

    type: ClassVar[str] = "tool_progress"
    call_id: str
    name: str
    progress: float
    total: float | None = None
    message: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call ended (also emitted for calls refused before running: unknown tool, bad arguments, denied)."""

    type: ClassVar[str] = "tool_finished"
    call_id: str
    name: str
    arguments: dict[str, Any]
    duration: float
    is_error: bool
    result_text: str
    executed: bool = True  # False: refused before running (invalid or denied)


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """The approval policy asks the user before a tool call (or a server's sampling request) runs."""

    type: ClassVar[str] = "approval_requested"
    call_id: str
    name: str
    arguments: dict[str, Any]
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A model call failed and is retried on the same provider after ``delay`` seconds."""

    type: ClassVar[str] = "retry"
    provider: str
    model: str
    attempt: int
    delay: float
    error: str


@dataclasses.dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A model call moved to the next provider of the fallback chain."""

    type: ClassVar[str] = "fallback"
    from_provider: str
    from_model: str
    to_provider: str
    to_model: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class UsageUpdated:
    """Usage of one model call (``step``) and of the run so far. ``None`` fields are unknown."""

    type: ClassVar[str] = "usage"
    step: Usage
    total: Usage
    cost_usd: float | None  # the run's cost so far; None when some call's cost is unknown


@dataclasses.dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended (answer, limit, cancellation); ``result`` is what ``Session.run`` returns."""

    type: ClassVar[str] = "final"
    result: RunResult


@dataclasses.dataclass(frozen=True, slots=True)
class RunError:
    """The run failed (provider error after retries and fallbacks, configuration error)."""

    type: ClassVar[str] = "error"
    error: str
    kind: str  # the exception class, e.g. "Overloaded", "ConfigError"


AgentEvent: TypeAlias = (
    TextChunk
    | ThinkingChunk
    | ToolCallStarted
    | ToolProgress
    | ToolCallFinished
    | ApprovalRequested
    | RetryScheduled
    | FallbackUsed
    | UsageUpdated
    | RunFinished
    | RunError
)

EventCallback: TypeAlias = Callable[[AgentEvent], None]


def event_to_dict(event: AgentEvent) -> dict[str, Any]:
    """Plain JSON-ready data for an event, with its ``type`` tag first."""
    out: dict[str, Any] = {"type": event.type}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        if isinstance(value, Usage):
            value = value.model_dump()
        elif field.name == "result":
            value = value.to_dict()
        out[field.name] = value
    return out
