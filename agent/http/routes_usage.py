"""``GET /api/usage``: the signed-in user's usage ledger, grouped."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from agent.http.deps import CurrentUser, State

router = APIRouter(tags=["usage"])

Group = Literal["provider", "model", "day", "session", "config"]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class UsageGroupOut(BaseModel):
    group: dict[str, str | None]
    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    tokens_unknown: int = Field(description="calls whose token counts the provider did not report")
    cost_usd: str = Field(description="exact decimal; a lower bound when cost_unknown > 0")
    cost_unknown: int


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

    def out(t: object) -> UsageGroupOut:
        data = {k: getattr(t, k) for k in UsageGroupOut.model_fields}
        data["cost_usd"] = str(Decimal(data["cost_usd"]).normalize()) if data["cost_usd"] else "0"
        return UsageGroupOut.model_validate(data)

    return UsageOut(by=groups, groups=[out(r) for r in rows], total=out(total[0]) if total else None)
