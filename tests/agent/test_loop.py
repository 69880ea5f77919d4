"""The agent loop end to end: real SDKs against the fake providers, our stdio MCP server through the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from agent import (
    ApprovalPolicy,
    ApprovalRequest,
    Deny,
    EditArguments,
    Limits,
    RunFinished,
    TextChunk,
    ToolCallFinished,
    ToolCallStarted,
    ToolProgress,
)
from mcp_bridge import McpHub
from providers.types import Message, TextPart, ToolResultPart
from storage import SQLStore, open_store
from tests.fakes.base import FakeProviderServer, FakeToolCall, FakeTurn, Fault

from .conftest import open_session, read_log, tool_turn, wire_name

pytestmark = pytest.mark.anyio


def results_of(message: Message) -> list[ToolResultPart]:
    assert message.role == "tool"
    return message.tool_results


async def stored_roles(store: SQLStore, session_id: str) -> list[str]:
    return [m.message.role for m in await store.messages.list(session_id)]


def calls_since(log: Path, before: int, tool: str) -> list[dict[str, Any]]:
    return [entry for entry in read_log(log)[before:] if entry["tool"] == tool]


# --------------------------------------------------------------------------- tools


async def test_one_tool(family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path) -> None:
    fake.turns.extend([tool_turn(family, ("t.add", {"a": 2, "b": 40})), FakeTurn(text="It is 42.")])
    before = len(read_log(tool_log))
    events: list[Any] = []
    async with await open_session(family, fake, store, hub) as session:
        result = await session.run("What is 2 + 40?", on_event=events.append)
    assert result.stop_reason == "end_turn"
    assert result.text == "It is 42."
    assert [(c.name, c.arguments, c.is_error) for c in result.tool_calls] == [("t.add", {"a": 2, "b": 40}, False)]
    assert calls_since(tool_log, before, "add") == [{"tool": "add", "arguments": {"a": 2, "b": 40}}]
    assert result.usage.input_tokens == 84
    assert result.usage.output_tokens == 18
    # Persisted: prompt, call, result, answer; one usage row per model call; the call finished.
    assert await stored_roles(store, result.session_id) == ["user", "assistant", "tool", "assistant"]
    stored = await store.messages.list(result.session_id)
    assert "42" in results_of(stored[2].message)[0].text()
    rows = await store.usage.rows(session_id=result.session_id)
    assert [(r["status"], r["input_tokens"]) for r in rows] == [("ok", 42), ("ok", 42)]
    [record] = await store.tool_calls.list(result.session_id)
    assert record.status == "finished"
    assert record.result is not None
    assert "42" in record.result.text()
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(e.name, e.arguments) for e in started] == [("t.add", {"a": 2, "b": 40})]
    assert len(finished) == 1
    assert not finished[0].is_error
    assert finished[0].duration > 0
    assert isinstance(events[-1], RunFinished)
    assert events[-1].result == result
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == "It is 42."


async def test_parallel_tools_keep_call_order(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub
) -> None:
    # The slow call comes first: results must still be in call order.
    fake.turns.append(
        tool_turn(family, ("t.slow", {"steps": 5}), ("t.add", {"a": 1, "b": 2}), ("t.add", {"a": 3, "b": 4}))
    )
    fake.turns.append(FakeTurn(text="done"))
    events: list[Any] = []
    async with await open_session(family, fake, store, hub) as session:
        result = await session.run("three tools", on_event=events.append)
        tool_message = session.history[2]
    assert result.text == "done"
    texts = [r.text() for r in results_of(tool_message)]
    assert texts == ["done after 5 steps", "3", "7"]
    assert [r.name for r in results_of(tool_message)] == ["t.slow", "t.add", "t.add"]
    progress = [e.progress for e in events if isinstance(e, ToolProgress)]
    assert progress == [1, 2, 3, 4, 5]
    assert len(result.tool_calls) == 3
    assert not any(c.is_error for c in result.tool_calls)


async def test_tool_error_goes_back_to_the_model(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub
) -> None:
    fake.turns.extend([tool_turn(family, ("t.fail", {"message": "disk on fire"})), FakeTurn(text="The tool failed.")])
    async with await open_session(family, fake, store, hub) as session:
        result = await session.run("try it")
        [tool_result] = results_of(session.history[2])
    assert result.stop_reason == "end_turn"
    assert result.text == "The tool failed."
    assert tool_result.is_error
    assert "tool fail" in tool_result.text()
    assert [(c.name, c.is_error, c.executed) for c in result.tool_calls] == [("t.fail", True, True)]


async def test_unknown_tool(family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub) -> None:
    fake.turns.extend([FakeTurn(tool_calls=[FakeToolCall("no_such_tool", {"x": 1})]), FakeTurn(text="sorry")])
    async with await open_session(family, fake, store, hub) as session:
        result = await session.run("call something")
        [tool_result] = results_of(session.history[2])
    assert result.text == "sorry"
    assert tool_result.is_error
    assert "unknown tool" in tool_result.text()
    assert "t.add" in tool_result.text()
    assert [(c.is_error, c.executed) for c in result.tool_calls] == [(True, False)]


async def test_arguments_not_matching_schema(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path
) -> None:
    before = len(read_log(tool_log))
    fake.turns.extend(
        [
            tool_turn(family, ("t.add", {"a": "two", "b": 2})),
            tool_turn(family, ("t.add", {"a": 2, "b": 2})),
            FakeTurn(text="4"),
        ]
    )
    async with await open_session(family, fake, store, hub) as session:
        result = await session.run("add")
        first = results_of(session.history[2])[0]
        second = results_of(session.history[4])[0]
    assert first.is_error
    assert "do not match its input schema" in first.text()
    assert "/a" not in first.text()
    assert "at a:" in first.text()
    assert second.text() == "4"
    assert not second.is_error
    assert [e["arguments"] for e in calls_since(tool_log, before, "add")] == [{"a": 2, "b": 2}]
    assert result.text == "4"


@pytest.mark.parametrize("family", ["anthropic", "openai"])
async def test_unparseable_json_arguments(family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub) -> None:
    # A JSON string where an object belongs: the adapters keep it as raw_arguments (Gemini and Ollama
    # send arguments as JSON objects on the wire, so they cannot produce this).
    bad: Any = '{"a": 1, "b": '
    fake.turns.extend([FakeTurn(tool_calls=[FakeToolCall(wire_name(family, "t.add"), bad)]), FakeTurn(text="ok")])
    async with await open_session(family, fake, store, hub) as session:
        result = await session.run("add")
        [tool_result] = results_of(session.history[2])
    assert tool_result.is_error
    assert "not a valid JSON object" in tool_result.text()
    assert result.text == "ok"


async def test_invalid_calls_are_retried_a_bounded_number_of_times(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub
) -> None:
    for _ in range(3):
        fake.turns.append(FakeTurn(tool_calls=[FakeToolCall("ghost", {})]))
    async with await open_session(
        family, fake, store, hub, limits=Limits(check_budget=False, max_invalid_steps=3)
    ) as session:
        result = await session.run("loop forever")
        roles = [m.role for m in session.history]
    assert result.stop_reason == "invalid_tool_calls"
    assert result.limit_reached
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert len(fake.requests) == 3


# --------------------------------------------------------------------------- approvals


class Approver:
    def __init__(self, decision: Any) -> None:
        self.decision = decision
        self.requests: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> Any:
        self.requests.append(request)
        return self.decision


async def test_approval_deny(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path
) -> None:
    before = len(read_log(tool_log))
    approver = Approver(Deny("not today"))
    fake.turns.extend([tool_turn(family, ("t.delete_item", {"name": "prod-db"})), FakeTurn(text="ok, not deleted")])
    async with await open_session(family, fake, store, hub, approval=ApprovalPolicy(callback=approver)) as session:
        result = await session.run("delete prod-db")
        [tool_result] = results_of(session.history[2])
    assert [(r.name, r.arguments, r.reason) for r in approver.requests] == [
        ("t.delete_item", {"name": "prod-db"}, "the tool is marked destructive")
    ]
    assert tool_result.is_error
    assert "not today" in tool_result.text()
    assert calls_since(tool_log, before, "delete_item") == []
    assert result.text == "ok, not deleted"


async def test_approval_edit(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path
) -> None:
    before = len(read_log(tool_log))
    approver = Approver(EditArguments({"name": "staging-db"}))
    fake.turns.extend([tool_turn(family, ("t.delete_item", {"name": "prod-db"})), FakeTurn(text="deleted staging")])
    async with await open_session(family, fake, store, hub, approval=ApprovalPolicy(callback=approver)) as session:
        result = await session.run("delete prod-db")
        [tool_result] = results_of(session.history[2])
    assert [e["arguments"] for e in calls_since(tool_log, before, "delete_item")] == [{"name": "staging-db"}]
    assert "deleted staging-db" in tool_result.text()
    assert "edited the arguments" in tool_result.text()
    assert result.tool_calls[0].arguments == {"name": "staging-db"}


async def test_approval_defaults(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path
) -> None:
    # No callback: read-only tools run, destructive ones are refused with a way to allow them; deny lists win.
    before = len(read_log(tool_log))
    fake.turns.extend(
        [
            tool_turn(family, ("t.add", {"a": 1, "b": 1}), ("t.delete_item", {"name": "x"})),
            tool_turn(family, ("t.add", {"a": 5, "b": 5})),
            FakeTurn(text="fine"),
        ]
    )
    policy = ApprovalPolicy(deny=["t.add"])
    async with await open_session(family, fake, store, hub, approval=ApprovalPolicy()) as session:
        await session.run("go", limits=Limits(check_budget=False, max_turns=1))
        first = results_of(session.history[2])
        session.approval = policy
        await session.run("again", limits=Limits(check_budget=False, max_turns=1))
        second = results_of(session.history[5])
    assert first[0].text() == "2"
    assert first[1].is_error
    assert "needs the user's approval" in first[1].text()
    assert second[0].is_error
    assert "deny list" in second[0].text()
    assert [e["tool"] for e in read_log(tool_log)[before:]] == ["add"]


# --------------------------------------------------------------------------- limits

PRICED = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4o", "gemini": "gemini-2.5-flash", "ollama": "llama3.1"}


async def test_limit_max_turns(family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub) -> None:
    fake.turns.extend([tool_turn(family, ("t.add", {"a": 1, "b": 1})), tool_turn(family, ("t.add", {"a": 2, "b": 2}))])
    async with await open_session(family, fake, store, hub, limits=Limits(check_budget=False, max_turns=2)) as session:
        result = await session.run("keep going")
    assert result.stop_reason == "max_turns"
    assert result.limit_reached
    assert "2 model calls" in (result.detail or "")
    assert len(fake.requests) == 2
    # The partial result is saved and valid: every call has its result.
    assert await stored_roles(store, result.session_id) == ["user", "assistant", "tool", "assistant", "tool"]
    assert len(result.tool_calls) == 2


async def test_limit_max_tool_calls(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path
) -> None:
    before = len(read_log(tool_log))
    fake.turns.append(tool_turn(family, ("t.add", {"a": 1, "b": 1}), ("t.add", {"a": 9, "b": 9})))
    async with await open_session(
        family, fake, store, hub, limits=Limits(check_budget=False, max_tool_calls=1)
    ) as session:
        result = await session.run("two calls")
        results = results_of(session.history[2])
    assert result.stop_reason == "max_tool_calls"
    assert results[0].text() == "2"
    assert results[1].is_error
    assert "limit" in results[1].text()
    assert [e["arguments"] for e in calls_since(tool_log, before, "add")] == [{"a": 1, "b": 1}]


@pytest.mark.parametrize(
    ("limit", "reason"), [("max_input_tokens", "max_input_tokens"), ("max_output_tokens", "max_output_tokens")]
)
async def test_limit_tokens(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, limit: str, reason: str
) -> None:
    fake.turns.extend([tool_turn(family, ("t.add", {"a": 1, "b": 1})), FakeTurn(text="never asked")])
    limits = Limits(check_budget=False, **{limit: 5})
    async with await open_session(family, fake, store, hub, limits=limits) as session:
        result = await session.run("tokens")
    assert result.stop_reason == reason
    assert len(fake.requests) == 1
    assert result.usage.input_tokens == 42


async def test_limit_cost(family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub) -> None:
    model = PRICED[family]
    if model not in fake.models:
        fake.models.append(model)
    fake.turns.extend([tool_turn(family, ("t.add", {"a": 1, "b": 1})), FakeTurn(text="second")])
    limits = Limits(check_budget=False, max_cost_usd=0.000001)
    async with await open_session(family, fake, store, hub, limits=limits, model=model) as session:
        result = await session.run("spend")
    if family == "ollama":  # local models cost exactly 0: the cost limit never stops them
        assert result.stop_reason == "end_turn"
        assert result.cost_usd == 0.0
        return
    assert result.stop_reason == "max_cost"
    assert result.cost_usd is not None
    assert result.cost_usd > 0
    assert len(fake.requests) == 1


async def test_limit_timeout(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tmp_path: Path
) -> None:
    never = tmp_path / "never"
    fake.turns.append(tool_turn(family, ("t.wait_for", {"path": str(never)})))
    limits = Limits(check_budget=False, timeout=1.0)
    async with await open_session(family, fake, store, hub, limits=limits) as session:
        result = await session.run("wait")
        [tool_result] = results_of(session.history[2])
    assert result.stop_reason == "timeout"
    assert tool_result.is_error
    assert "interrupted" in tool_result.text()
    [record] = await store.tool_calls.list(result.session_id)
    assert record.status == "interrupted"


async def test_limit_budget(family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub) -> None:
    user = await store.users.create(f"budget-{family}")
    await store.usage.set_budget(user.id, monthly_usd=None, monthly_tokens=50)
    fake.turns.extend([tool_turn(family, ("t.add", {"a": 1, "b": 1})), FakeTurn(text="over budget")])
    async with await open_session(family, fake, store, hub, user=user, limits=Limits()) as session:
        first = await session.run("spend")
        second = await session.run("spend more")
    assert first.stop_reason == "budget"
    assert len(fake.requests) == 1
    assert second.stop_reason == "budget"
    assert len(fake.requests) == 1
    status = await store.usage.check_budget(user.id)
    assert status.exceeded
    assert status.spent_tokens == 51


# --------------------------------------------------------------------------- cancellation


async def test_cancel_mid_stream(family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub) -> None:
    fake.turns.append(FakeTurn(text="The first part of a long answer that never finishes streaming"))
    # Stall after the first text delta (chunk positions differ per wire).
    fake.faults.append(Fault(stall_after={"anthropic": 4, "openai": 2, "gemini": 1, "ollama": 1}[family]))
    seen: list[str] = []
    async with await open_session(family, fake, store, hub) as session:
        async for event in session.stream("talk"):
            if isinstance(event, TextChunk):
                seen.append(event.text)
                session.cancel()
            if isinstance(event, RunFinished):
                result = event.result
        stored = await store.messages.list(session.session_id)
    assert seen
    assert result.stop_reason == "cancelled"
    assert result.text.startswith(seen[0])
    assert [m.message.role for m in stored] == ["user", "assistant"]
    assert stored[1].message.text.startswith(seen[0])
    assert isinstance(stored[1].message.parts[0], TextPart)
    rows = await store.usage.rows(session_id=session.session_id)
    assert [r["status"] for r in rows] == ["aborted"]


async def test_caller_cancellation_saves_partial_state(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tmp_path: Path
) -> None:
    fake.turns.append(tool_turn(family, ("t.wait_for", {"path": str(tmp_path / "never")})))
    async with await open_session(family, fake, store, hub) as session:
        with anyio.move_on_after(1.0):
            await session.run("block")
        roles = await stored_roles(store, session.session_id)
        [record] = await store.tool_calls.list(session.session_id)
    assert roles == ["user", "assistant", "tool"]
    assert record.status == "interrupted"


# --------------------------------------------------------------------------- deltas


async def test_plain_runs_call_the_model_once_per_step_and_deltas_stream_it(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub
) -> None:
    answer = "An answer long enough to arrive in several pieces."
    fake.turns.extend([FakeTurn(text=answer), FakeTurn(text=answer)])
    plain: list[Any] = []
    streamed: list[Any] = []
    async with await open_session(family, fake, store, hub) as session:
        first = await session.run("once", on_event=plain.append)
        second = await session.run("again", on_event=streamed.append, deltas=True)
    assert first.text == second.text == answer
    # Without deltas: one non-streaming call, its text as one chunk.
    assert [e.text for e in plain if isinstance(e, TextChunk)] == [answer]
    # With deltas: the text as the model streamed it, in more than one piece.
    pieces = [e.text for e in streamed if isinstance(e, TextChunk)]
    assert "".join(pieces) == answer
    assert len(pieces) > 1
    rows = await store.usage.rows(session_id=session.session_id)
    assert [bool(r["streamed"]) for r in rows] == [False, True]
    assert rows[0]["ttft_ms"] is None
    assert rows[1]["ttft_ms"] is not None


async def test_a_tool_step_syncs_the_model_responses_only(
    family: str, fake: FakeProviderServer, hub: McpHub, tmp_path: Path
) -> None:
    """Every step is committed before the loop goes on; the fsyncs are saved for the model responses (the
    prompt and the tool's end are covered by the next one, see agent.loop). Read off the SQLite writer's
    own statements: the synchronous level in force at each COMMIT."""
    store = await open_store(f"sqlite:///{tmp_path / 'durable.db'}", key_dir=tmp_path)  # durable (the default)
    statements: list[str] = []
    await store.db.trace(statements.append)  # type: ignore[attr-defined]  # (SQLite's)
    try:
        fake.turns.extend([tool_turn(family, ("t.add", {"a": 1, "b": 2})), FakeTurn(text="3")])
        async with await open_session(family, fake, store, hub) as session:
            result = await session.run("add")
    finally:
        await store.db.trace(None)  # type: ignore[attr-defined]
        await store.close()
    assert result.text == "3"
    level, synced_commits, in_session = "FULL", [], False
    for statement in statements:
        if statement.startswith("PRAGMA synchronous"):
            level = statement.rsplit("=", 1)[1].strip()
        elif statement.startswith("INSERT INTO sessions"):
            in_session = True  # (Session.open committed the local user before)
        elif statement == "COMMIT" and in_session:
            synced_commits.append(level == "FULL")
    # prompt, the step with the call's start, the call's end, the answer
    assert synced_commits == [False, True, False, True]
