"""Wire names across a resume: a session whose model saw routekit's old always-hashed names resumes cleanly.

Stored history holds canonical names (``t.add``), so a stored session does not depend on the wire names;
a resumed request renders tools and history with today's names (``t_add``). A model that still answers
with an old name (``t_add_<8 hex>``, as routekit offered it before) is mapped back to the tool.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import ApprovalPolicy, Limits, Session
from mcp_bridge import McpHub
from providers._schema_names import hashed_name
from providers.profiles import get_profile
from storage import SQLStore
from tests.fakes.base import FakeProviderServer, FakeToolCall, FakeTurn
from tests.providers.conftest import config_for

from .conftest import open_session, read_log

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("family", ["anthropic", "ollama", "openai"])  # Gemini takes `t.add` verbatim
async def test_a_session_whose_model_used_old_hashed_names_resumes(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path
) -> None:
    old = hashed_name("t.add", get_profile(family).tool_names)
    assert old.startswith("t_add_")
    fake.turns.extend([FakeTurn(tool_calls=[FakeToolCall(old, {"a": 2, "b": 3})]), FakeTurn(text="5")])
    before = len(read_log(tool_log))
    async with await open_session(family, fake, store, hub) as session:
        first = await session.run("What is 2 + 3?")
    assert [(c.name, c.is_error) for c in first.tool_calls] == [("t.add", False)]
    stored = await store.messages.list(first.session_id)
    assert [p.name for p in stored[1].message.tool_calls] == ["t.add"]  # canonical in storage

    with fake.lock:
        fake.requests.clear()
    fake.turns.extend([FakeTurn(tool_calls=[FakeToolCall(old, {"a": 1, "b": 1})]), FakeTurn(text="2")])
    resumed = await Session.resume(
        first.session_id,
        provider=config_for(family, fake),
        store=store,
        hub=hub,
        approval=ApprovalPolicy.auto_all(),
        limits=Limits(check_budget=False),
    )
    async with resumed:
        second = await resumed.run("And 1 + 1?")
    assert second.text == "2"
    assert [(c.name, c.arguments, c.is_error) for c in second.tool_calls] == [("t.add", {"a": 1, "b": 1}, False)]
    assert [e["arguments"] for e in read_log(tool_log)[before:] if e["tool"] == "add"] == [
        {"a": 2, "b": 3},
        {"a": 1, "b": 1},
    ]
    # The resumed request offers the tool, and shows the stored call, under today's name only.
    body = json.dumps(fake.requests[0].json)
    assert '"t_add"' in body
    assert old not in body
    assert body.count('"t_add"') >= 2  # the tool definition and the call in history
