"""Approval policies: which tool calls (and MCP sampling requests) run at once, which ask, which are refused.

Order of the rules, first match wins:

1. ``deny`` globs (canonical names such as ``fs.delete_*``): refused.
2. ``ask`` globs: asked.
3. ``auto`` globs: run.
4. ``mode`` when set (``"auto"``, ``"ask"``, ``"deny"``): applies to every other call.
5. Defaults: the server's config (``trust: auto`` or an ``auto_approve`` match) runs the call — the user
   said so in their own config; a ``destructive`` hint asks; a ``read_only`` hint runs; anything else
   follows the server's trust setting (``ask`` unless configured otherwise).

Annotations are hints from the server, not guarantees; that is why an explicit configuration always
wins over them and why an unannotated tool is asked about by default.

"Ask" goes to an async callback that answers :class:`Approve`, :class:`Deny` (with a reason the model
sees) or :class:`EditArguments` (run with other arguments). Without a callback, "ask" means refuse,
with a message saying how to allow the tool.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from providers.types import ToolSpec

__all__ = [
    "ApprovalCallback",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "Approve",
    "Deny",
    "EditArguments",
    "Verdict",
]

Verdict: TypeAlias = Literal["auto", "ask", "deny"]


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What the user is asked about. ``kind`` is ``"tool"`` or ``"sampling"`` (an MCP server wants a model call)."""

    kind: Literal["tool", "sampling"]
    name: str  # canonical tool name, or the server name for sampling
    arguments: dict[str, Any]
    call_id: str
    spec: ToolSpec | None = None
    reason: str = ""  # why the policy asks (e.g. "the tool is marked destructive")


@dataclass(frozen=True, slots=True)
class Approve:
    pass


@dataclass(frozen=True, slots=True)
class Deny:
    reason: str = "the user denied this call"


@dataclass(frozen=True, slots=True)
class EditArguments:
    arguments: dict[str, Any]


ApprovalDecision: TypeAlias = Approve | Deny | EditArguments
ApprovalCallback: TypeAlias = Callable[[ApprovalRequest], Awaitable[ApprovalDecision]]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class ApprovalPolicy:
    """See the module docstring for the order of the rules."""

    mode: Verdict | None = None
    auto: Sequence[str] = field(default_factory=tuple)
    ask: Sequence[str] = field(default_factory=tuple)
    deny: Sequence[str] = field(default_factory=tuple)
    callback: ApprovalCallback | None = None
    sampling: Verdict | None = None  # None: the requesting server's trust setting ("auto" runs, else ask)

    @classmethod
    def auto_all(cls) -> ApprovalPolicy:
        """Run every tool call without asking (for trusted, headless setups and tests)."""
        return cls(mode="auto", sampling="auto")

    def verdict(self, spec: ToolSpec | None, name: str, *, server_auto: bool) -> tuple[Verdict, str]:
        """The verdict for a call to ``name`` and the reason, for the user and the model."""
        if _matches(name, self.deny):
            return "deny", f"{name!r} is on the deny list"
        if _matches(name, self.ask):
            return "ask", f"{name!r} is on the ask list"
        if _matches(name, self.auto):
            return "auto", "on the auto list"
        if self.mode is not None:
            return self.mode, f"the approval mode is {self.mode!r}"
        if server_auto:
            return "auto", "the server is trusted in the MCP config"
        hints = spec.annotations if spec is not None else None
        if hints is not None and hints.destructive:
            return "ask", "the tool is marked destructive"
        if hints is not None and hints.read_only:
            return "auto", "the tool is marked read-only"
        return "ask", "the server is not marked trusted and the tool is not marked read-only"

    def sampling_verdict(self, server_auto: bool) -> Verdict:
        if self.sampling is not None:
            return self.sampling
        if self.mode == "deny":
            return "deny"
        return "auto" if server_auto or self.mode == "auto" else "ask"
