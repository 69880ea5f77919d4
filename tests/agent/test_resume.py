"""Crash and resume: kill -9 the agent process while a tool runs, then resume in another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import ApprovalPolicy, Limits, Session
from mcp_bridge import McpHub
from providers.history import INTERRUPTED_RESULT_TEXT
from storage import open_store
from tests.fakes.base import FakeProviderServer, FakeTurn, Fault
from tests.providers.conftest import base_url_for, config_for

from .conftest import FAMILIES, read_log, server_entry, tool_turn

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def start_worker(
    family: str, fake: FakeProviderServer, home: Path, log: Path, prompt: str = "run the blocking tool"
) -> subprocess.Popen[str]:
    mcp = {"mcpServers": {"t": server_entry(log)}}
    args = [
        sys.executable,
        "-m",
        "tests.agent.crash_worker",
        family,
        base_url_for(family, fake),
        f"sqlite:///{home / 'crash.db'}",
        str(home),
        json.dumps(mcp),
        prompt,
    ]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_running(proc: subprocess.Popen[str], log: Path, tool: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(entry["tool"] == tool for entry in read_log(log)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError("the tool never started")


async def crash_during(family: str, fake: FakeProviderServer, home: Path, log: Path, tool: str, path: Path) -> str:
    fake.turns.append(tool_turn(family, (tool, {"path": str(path)})))
    proc = start_worker(family, fake, home, log)
    try:
        wait_until_running(proc, log, tool.removeprefix("t."))
        os.kill(proc.pid, signal.SIGKILL)  # between the tool's start and its end
    finally:
        proc.wait(timeout=10)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("SESSION "), line
    return line.split()[1]


@pytest.mark.parametrize("family", FAMILIES)
async def test_crash_then_resume_does_not_repeat_a_non_idempotent_call(
    family: str, fake: FakeProviderServer, hub: McpHub, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    session_id = await crash_during(family, fake, tmp_path, log, "t.wait_for", tmp_path / "never")
    store = await open_store(f"sqlite:///{tmp_path / 'crash.db'}", key_dir=tmp_path)
    try:
        [record] = await store.tool_calls.list(session_id)
        assert record.status == "started"  # the crash left it open
        fake.turns.append(FakeTurn(text="The wait was interrupted; I did not retry it."))
        session = await Session.resume(
            session_id,
            provider=config_for(family, fake),
            store=store,
            hub=hub,
            approval=ApprovalPolicy.auto_all(),
            limits=Limits(check_budget=False),
        )
        async with session:
            assert session.history[-1].role == "assistant"
            assert session.history[-1].tool_calls
            result = await session.resume_run()
            roles = [m.role for m in session.history]
        assert result.stop_reason == "end_turn"
        assert result.text.startswith("The wait was interrupted")
        # Not repeated: the tool ran once (in the killed process), and the model was told.
        assert [e["tool"] for e in read_log(log)] == ["wait_for"]
        assert roles == ["user", "assistant", "tool", "assistant"]
        tool_message = session.history[2]
        assert tool_message.tool_results[0].is_error
        assert "not repeated" in tool_message.tool_results[0].text()
        # The provider accepted the resumed history (tool call answered) and saw the interruption.
        body = json.dumps(fake.requests[-1].json)
        assert "not repeated" in body
        [record] = await store.tool_calls.list(session_id)
        assert record.status == "interrupted"
        stored = [m.message.role for m in await store.messages.list(session_id)]
        assert stored == roles
    finally:
        await store.close()


async def test_crash_then_resume_reruns_a_read_only_call(
    fakes: dict[str, FakeProviderServer], hub: McpHub, tmp_path: Path
) -> None:
    family = "anthropic"
    fake = fakes[family]
    with fake.lock:
        fake.turns.clear()
        fake.requests.clear()
    log = tmp_path / "calls.jsonl"
    gate = tmp_path / "gate"
    session_id = await crash_during(family, fake, tmp_path, log, "t.wait_for_ro", gate)
    gate.write_text("open")  # the re-run finishes at once
    store = await open_store(f"sqlite:///{tmp_path / 'crash.db'}", key_dir=tmp_path)
    try:
        fake.turns.append(FakeTurn(text="finished after resume"))
        session = await Session.resume(
            session_id, provider=config_for(family, fake), store=store, hub=hub, approval=ApprovalPolicy.auto_all()
        )
        async with session:
            result = await session.resume_run(limits=Limits(check_budget=False))
            tool_result = session.history[2].tool_results[0]
        assert result.text == "finished after resume"
        assert not tool_result.is_error
        assert "appeared (read-only)" in tool_result.text()
        assert INTERRUPTED_RESULT_TEXT not in tool_result.text()
        [record] = await store.tool_calls.list(session_id)
        assert record.status == "finished"
    finally:
        await store.close()


@pytest.mark.parametrize("family", ["anthropic", "openai"])
async def test_crash_during_first_model_call_keeps_the_prompt(
    family: str, fake: FakeProviderServer, hub: McpHub, tmp_path: Path
) -> None:
    """Kill -9 while the first model call is in flight: the prompt is already stored, and resuming completes."""
    prompt = f"a prompt that must survive ({family})"
    fake.faults.append(Fault(delay=30.0))  # the first model call hangs until the worker is killed
    proc = start_worker(family, fake, tmp_path, tmp_path / "calls.jsonl", prompt)
    try:
        deadline = time.monotonic() + 60
        while not any(prompt in json.dumps(r.body if isinstance(r.body, dict) else {}) for r in list(fake.requests)):
            if proc.poll() is not None:
                raise AssertionError(f"worker exited early: {proc.stderr.read() if proc.stderr else ''}")
            assert time.monotonic() < deadline, "the first model call never reached the fake"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the model call is in flight
    finally:
        proc.wait(timeout=10)
    assert proc.stdout is not None
    session_id = proc.stdout.readline().split()[1]
    store = await open_store(f"sqlite:///{tmp_path / 'crash.db'}", key_dir=tmp_path)
    try:
        stored = await store.messages.list(session_id)
        assert [(m.message.role, m.message.text) for m in stored] == [("user", prompt)]
        fake.turns.append(FakeTurn(text="answered after the crash"))
        session = await Session.resume(
            session_id,
            provider=config_for(family, fake),
            store=store,
            hub=hub,
            approval=ApprovalPolicy.auto_all(),
            limits=Limits(check_budget=False),
        )
        async with session:
            result = await session.resume_run()
        assert result.stop_reason == "end_turn"
        assert result.text == "answered after the crash"
        assert prompt in json.dumps(fake.requests[-1].json)  # the resumed call carried the stored prompt
        stored = await store.messages.list(session_id)
        assert [m.message.role for m in stored] == ["user", "assistant"]
        assert (await store.usage.rows(session_id=session_id))[-1]["status"] == "ok"
    finally:
        await store.close()
