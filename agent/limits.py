"""Usage limits of one run, and the user's monthly budget from storage.

:class:`Limits` is configuration; :class:`LimitTracker` counts one run against it. Checks are cheap
arithmetic on counters kept in memory: the budget is read once when the run starts and the run's own
spending is added locally, so no limit costs a database round trip per step.

When a limit is reached the loop stops at the next safe point (before the next model call, or before
running tool calls beyond the tool-call limit), saves what it has, and returns a result whose
``stop_reason`` names the limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeAlias

from providers.errors import ConfigError
from providers.types import Usage

__all__ = ["LimitReason", "LimitTracker", "Limits", "StopReason"]

LimitReason: TypeAlias = Literal[
    "max_turns",
    "max_tool_calls",
    "max_input_tokens",
    "max_output_tokens",
    "max_cost",
    "timeout",
    "budget",
    "invalid_tool_calls",
]

StopReason: TypeAlias = Literal[
    "end_turn",  # the model gave its final answer
    "max_tokens",  # the model's answer was cut by its output-token limit
    "refusal",  # the model refused or the provider filtered the answer
    "cancelled",  # the caller cancelled the run
    "error",  # a provider or configuration error ended the run
    LimitReason,
]

LIMIT_REASONS: frozenset[str] = frozenset(LimitReason.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-run limits; ``None`` means unlimited.

    ``max_turns`` counts model calls of one run. ``max_tool_calls`` counts tool calls that run.
    ``max_input_tokens`` / ``max_output_tokens`` and ``max_cost_usd`` sum every model call of the run
    (sampling requests from MCP servers included). ``timeout`` is the run's wall-clock time in seconds.
    ``check_budget`` stops the run when the user's monthly budget in storage is spent.
    ``max_invalid_steps``: consecutive model responses with an unknown tool or malformed arguments
    tolerated before the run stops (each time, the model gets the error back and may correct itself).
    ``max_parallel_tools``: tool calls of one step run at most this many at a time.
    """

    max_turns: int | None = 25
    max_tool_calls: int | None = 100
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_cost_usd: float | Decimal | None = None
    timeout: float | None = None
    check_budget: bool = True
    max_invalid_steps: int = 3
    max_parallel_tools: int = 8

    def __post_init__(self) -> None:
        for name in ("max_turns", "max_tool_calls", "max_input_tokens", "max_output_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"Limits.{name} must not be negative, got {value}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"Limits.timeout must be positive seconds, got {self.timeout}")
        if self.max_parallel_tools < 1 or self.max_invalid_steps < 1:
            raise ConfigError("Limits.max_parallel_tools and Limits.max_invalid_steps must be at least 1")


class LimitTracker:
    """Counts one run against :class:`Limits` (and the budget left when the run started)."""

    __slots__ = (
        "_budget_left_tokens",
        "_budget_left_usd",
        "_started",
        "cost_known",
        "cost_usd",
        "input_tokens",
        "invalid_steps",
        "limits",
        "output_tokens",
        "tool_calls",
        "turns",
        "usage",
    )

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.turns = 0
        self.tool_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = Decimal(0)
        self.cost_known = True
        self.invalid_steps = 0
        self.usage = Usage.model_construct(
            input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0
        )
        self._budget_left_usd: Decimal | None = None
        self._budget_left_tokens: int | None = None
        self._started = time.monotonic()

    def set_budget(self, left_usd: Decimal | None, left_tokens: int | None) -> None:
        self._budget_left_usd, self._budget_left_tokens = left_usd, left_tokens

    @property
    def deadline_seconds(self) -> float | None:
        if self.limits.timeout is None:
            return None
        return max(0.0, self.limits.timeout - (time.monotonic() - self._started))

    def add_usage(self, usage: Usage | None, cost: Decimal | None) -> None:
        """Account for one model call (or attempt) that cost ``usage`` / ``cost``. ``self.usage`` is the run's
        total, a field unknown (None) once any call left it unknown; the limits count the known tokens."""
        if usage is not None:
            self.input_tokens += usage.input_tokens or 0
            self.output_tokens += usage.output_tokens or 0
            self.usage = self.usage + usage
        if cost is None:
            if usage is not None and usage.known:
                self.cost_known = False
        else:
            self.cost_usd += cost

    def before_model_call(self) -> LimitReason | None:
        """The limit that forbids another model call, if any."""
        lim = self.limits
        if lim.max_turns is not None and self.turns >= lim.max_turns:
            return "max_turns"
        return self.spending_reached()

    def spending_reached(self) -> LimitReason | None:
        lim = self.limits
        if lim.max_input_tokens is not None and self.input_tokens >= lim.max_input_tokens:
            return "max_input_tokens"
        if lim.max_output_tokens is not None and self.output_tokens >= lim.max_output_tokens:
            return "max_output_tokens"
        if lim.max_cost_usd is not None and self.cost_usd >= Decimal(str(lim.max_cost_usd)):
            return "max_cost"
        if self._budget_left_usd is not None and self.cost_usd >= self._budget_left_usd:
            return "budget"
        tokens = self.input_tokens + self.output_tokens
        if self._budget_left_tokens is not None and tokens >= self._budget_left_tokens:
            return "budget"
        return None

    def tool_calls_allowed(self, wanted: int) -> int:
        """How many of ``wanted`` tool calls may still run."""
        if self.limits.max_tool_calls is None:
            return wanted
        return max(0, min(wanted, self.limits.max_tool_calls - self.tool_calls))


def describe(reason: str, limits: Limits) -> str:
    """A sentence a user can act on for a stop reason."""
    texts = {
        "max_turns": f"the run reached its limit of {limits.max_turns} model calls (max_turns)",
        "max_tool_calls": f"the run reached its limit of {limits.max_tool_calls} tool calls (max_tool_calls)",
        "max_input_tokens": f"the run used its {limits.max_input_tokens} input tokens (max_input_tokens)",
        "max_output_tokens": f"the run used its {limits.max_output_tokens} output tokens (max_output_tokens)",
        "max_cost": f"the run reached its cost limit of ${limits.max_cost_usd} (max_cost_usd)",
        "timeout": f"the run exceeded its wall-clock limit of {limits.timeout} s (timeout)",
        "budget": "the user's monthly budget is spent; raise it or wait for next month",
        "invalid_tool_calls": (
            f"the model made invalid tool calls {limits.max_invalid_steps} times in a row (unknown tools or "
            "malformed arguments)"
        ),
        "cancelled": "the run was cancelled",
    }
    return texts.get(reason, reason)
