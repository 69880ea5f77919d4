"""Fallback across providers mid-conversation, with tool history, and metering of every attempt."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent import ApprovalPolicy, FallbackUsed, Limits, Session
from mcp_bridge import McpHub
from storage import SQLStore
from tests.fakes.base import FakeProviderServer, FakeTurn, Fault
from tests.providers.conftest import config_for

from .conftest import FAMILIES, tool_turn

pytestmark = pytest.mark.anyio


def reset(server: FakeProviderServer) -> FakeProviderServer:
    with server.lock:
        server.turns.clear()
        server.faults.clear()
        server.requests.clear()
    return server


@pytest.mark.parametrize("family", FAMILIES)
async def test_fallback_mid_conversation_with_tool_history(
    family: str, fakes: dict[str, FakeProviderServer], store: SQLStore, hub: McpHub
) -> None:
    backup_family = FAMILIES[(FAMILIES.index(family) + 1) % len(FAMILIES)]
    primary, backup = reset(fakes[family]), reset(fakes[backup_family])
    status = 529 if family == "anthropic" else 500
    primary.turns.append(tool_turn(family, ("t.add", {"a": 20, "b": 22})))
    primary.faults.extend([Fault(status=None), Fault(status=status, message="overloaded right now")])
    backup.turns.append(FakeTurn(text="The sum is 42."))
    events: list[Any] = []
    session = await Session.open(
        provider=config_for(family, primary),
        fallbacks=[config_for(backup_family, backup)],
        store=store,
        hub=hub,
        approval=ApprovalPolicy.auto_all(),
        limits=Limits(check_budget=False),
    )
    async with session:
        result = await session.run("add 20 and 22", on_event=events.append)
    assert result.text == "The sum is 42."
    assert result.stop_reason == "end_turn"
    assert result.provider == backup_family
    [fallback] = [e for e in events if isinstance(e, FallbackUsed)]
    assert (fallback.from_provider, fallback.to_provider) == (family, backup_family)
    # The backup got the whole conversation, tool call and result included, in its own wire format.
    [request] = backup.requests
    body = json.dumps(request.json)
    assert "add 20 and 22" in body
    assert "42" in body
    assert "22" in body
    # Every attempt is metered: the call, the failed attempt, the backup's answer.
    rows = await store.usage.rows(session_id=result.session_id)
    assert [(r["provider"], r["status"]) for r in rows] == [
        (family, "ok"),
        (family, "error"),
        (backup_family, "ok"),
    ]
    assert rows[1]["error_class"] in {"Overloaded", "Unavailable"}
    assert len(primary.requests) == 2
