"""``GET /api/usage``: the signed-in user's usage ledger, grouped."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from agent.http.deps import CurrentUser, State
from storage import UsageTotals

router = APIRouter(tags=["usage"])

Group = Literal["provider", "model", "day", "session", "config"]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class KnownOut(BaseModel):
    """What is known for sure: each field summed over the calls that reported it (lower bounds)."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: str = Field(description="exact decimal: the cost of the calls that could be priced")


_UNKNOWN = "null when any call of the group did not report it (see known for what is)"


class UsageGroupOut(BaseModel):
    group: dict[str, str | None]
    calls: int
    failed_calls: int
    input_tokens: int | None = Field(description=_UNKNOWN)
    output_tokens: int | None = Field(description=_UNKNOWN)
    cache_read_tokens: int | None = Field(description=_UNKNOWN)
    cache_write_tokens: int | None = Field(description=_UNKNOWN)
    reasoning_tokens: int | None = Field(description=_UNKNOWN)
    tokens_unknown: int = Field(description="calls whose input or output token count the provider did not report")
    cost_usd: str | None = Field(description="exact decimal; null when the cost of any call is unknown")
    cost_unknown: int = Field(description="calls whose cost is unknown")
    known: KnownOut

    @classmethod
    def of(cls, totals: UsageTotals) -> UsageGroupOut:
        known = totals.known
        return cls(
            group=totals.group,
            calls=totals.calls,
            failed_calls=totals.failed_calls,
            input_tokens=totals.input_tokens,
            output_tokens=totals.output_tokens,
            cache_read_tokens=totals.cache_read_tokens,
            cache_write_tokens=totals.cache_write_tokens,
            reasoning_tokens=totals.reasoning_tokens,
            tokens_unknown=totals.tokens_unknown,
            cost_usd=None if totals.cost_usd is None else _decimal(totals.cost_usd),
            cost_unknown=totals.cost_unknown,
            known=KnownOut(
                input_tokens=known.input_tokens or 0,
                output_tokens=known.output_tokens or 0,
                cache_read_tokens=known.cache_read_tokens or 0,
                cache_write_tokens=known.cache_write_tokens or 0,
                reasoning_tokens=known.reasoning_tokens or 0,
                cost_usd=_decimal(totals.known_cost_usd),
            ),
        )


def _decimal(value: Decimal) -> str:
    """Exact, without an exponent (``Decimal.normalize`` alone would give ``1E+1``)."""
    return format(value.normalize(), "f")


class UsageOut(BaseModel):
    by: list[str]
    groups: list[UsageGroupOut]
    total: UsageGroupOut | None


def _day(value: str | None, name: str) -> str | None:
    if value is not None and not _DAY.match(value):
        raise HTTPException(400, f"{name} must be a UTC day as YYYY-MM-DD, got {value!r}")
    return value


@router.get("/api/usage", response_model=UsageOut, summary="Your usage, grouped (tokens and cost)")
async def usage(
    user: CurrentUser,
    state: State,
    by: Annotated[list[Group] | None, Query(description="group by; repeat for several")] = None,
    since: str | None = None,
    until: str | None = None,
    session_id: str | None = None,
) -> UsageOut:
    groups = list(dict.fromkeys(by or []))
    if session_id is not None:
        session = await state.store.sessions.get(session_id)
        if session.user_id != user.id:
            raise HTTPException(404, f"no session with id {session_id!r}")
    window = {"since_day": _day(since, "since"), "until_day": _day(until, "until"), "session_id": session_id}
    rows = await state.store.usage.report(groups, user_id=user.id, **window)
    total = await state.store.usage.report([], user_id=user.id, **window)
    return UsageOut(
        by=groups,
        groups=[UsageGroupOut.of(r) for r in rows],
        total=UsageGroupOut.of(total[0]) if total else None,
    )
