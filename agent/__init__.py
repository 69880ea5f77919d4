"""routekit's agent runtime: sessions, the durable agent loop, limits, approvals, events.

Importing ``agent`` imports no provider SDK and not the ``mcp`` SDK; they load when a session opens.

    from agent import Session, Limits, ApprovalPolicy

    async with await Session.open(provider="anthropic", mcp="mcp.json") as session:
        result = await session.run("List the files in /tmp")
"""

from agent.approval import (
    ApprovalCallback,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    Approve,
    Deny,
    EditArguments,
)
from agent.events import (
    AgentEvent,
    ApprovalRequested,
    EventCallback,
    FallbackUsed,
    RetryScheduled,
    RunError,
    RunFinished,
    TextChunk,
    ThinkingChunk,
    ToolCallFinished,
    ToolCallStarted,
    ToolProgress,
    UsageUpdated,
    event_to_dict,
)
from agent.limits import Limits, StopReason
from agent.session import LOCAL_USER, RunResult, SamplingRouter, Session, ToolCallSummary

__all__ = [
    "LOCAL_USER",
    "AgentEvent",
    "ApprovalCallback",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalRequested",
    "Approve",
    "Deny",
    "EditArguments",
    "EventCallback",
    "FallbackUsed",
    "Limits",
    "RetryScheduled",
    "RunError",
    "RunFinished",
    "RunResult",
    "SamplingRouter",
    "Session",
    "StopReason",
    "TextChunk",
    "ThinkingChunk",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolCallSummary",
    "ToolProgress",
    "UsageUpdated",
    "event_to_dict",
]
