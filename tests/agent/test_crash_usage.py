"""kill -9 during a model call: the attempt still leaves a usage row ("interrupted", unknown counts) once the
session is resumed or, for a claimed run whose claim lapsed, once the store is opened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from agent import ApprovalPolicy, Limits, Session
from mcp_bridge import McpHub
from storage import open_store
from tests.fakes.base import FakeProviderServer, FakeTurn, Fault
from tests.providers.conftest import base_url_for, config_for

from .conftest import read_log, tool_turn
from .test_resume import start_worker, wait_until_running

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def wait_for_request(fake: FakeProviderServer, proc: subprocess.Popen[str], count: int) -> None:
    """Until the fake has received ``count`` model requests (the last one is then in flight)."""
    deadline = time.monotonic() + 60
    while len(fake.requests) < count:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, "the model call never reached the fake"
        time.sleep(0.05)


def kill(proc: subprocess.Popen[str]) -> str:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("SESSION "), line
    return line.split()[1]


@pytest.mark.parametrize("family", ["openai", "anthropic"])
async def test_killed_during_the_first_call_then_resumed(
    family: str, fake: FakeProviderServer, hub: McpHub, tmp_path: Path
) -> None:
    fake.faults.append(Fault(delay=30.0))  # the model call hangs until the worker is killed
    proc = start_worker(family, fake, tmp_path, tmp_path / "calls.jsonl", "a prompt")
    try:
        wait_for_request(fake, proc, 1)
    finally:
        session_id = kill(proc)
    store = await open_store(f"sqlite:///{tmp_path / 'crash.db'}", key_dir=tmp_path)
    try:
        assert await store.usage.rows(session_id=session_id) == []  # nothing recorded the call...
        [left] = await store.open_attempts.list(session_id)  # ...but it was recorded as open before it
        assert (left.provider, left.model, left.streamed) == (family, "fake-model-1", False)
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
        assert result.text == "answered after the crash"
        rows = await store.usage.rows(session_id=session_id)
        assert [r["status"] for r in rows] == ["interrupted", "ok"]
        interrupted = rows[0]
        assert interrupted["id"] == left.id
        assert all(interrupted[k] is None for k in ("input_tokens", "output_tokens", "cache_read_tokens"))
        assert interrupted["cost_usd"] is None
        assert (interrupted["provider"], interrupted["model"]) == (family, "fake-model-1")
        assert await store.open_attempts.list() == []
        [total] = await store.usage.report([], session_id=session_id)
        assert total.calls == 2
        assert total.input_tokens is None  # the interrupted call's tokens are unknown, and so is the sum
        assert total.cost_unknown == 2
    finally:
        await store.close()


@pytest.mark.parametrize("family", ["openai"])
async def test_killed_during_the_call_after_a_tool(family: str, fake: FakeProviderServer, tmp_path: Path) -> None:
    """The second call's open attempt rides on the tool call's end (no commit of its own)."""
    log = tmp_path / "calls.jsonl"
    gate = tmp_path / "gate"
    gate.write_text("open")  # the tool returns at once
    fake.turns.append(tool_turn(family, ("t.wait_for", {"path": str(gate)})))
    fake.faults.extend([Fault(), Fault(delay=30.0)])  # the first call answers, the second hangs
    proc = start_worker(family, fake, tmp_path, log, "run the tool, then answer")
    try:
        wait_until_running(proc, log, "wait_for")
        wait_for_request(fake, proc, 2)
    finally:
        session_id = kill(proc)
    store = await open_store(f"sqlite:///{tmp_path / 'crash.db'}", key_dir=tmp_path)
    try:
        [call] = await store.tool_calls.list(session_id)
        assert call.status == "finished"
        assert [r["status"] for r in await store.usage.rows(session_id=session_id)] == ["ok"]
        assert len(await store.open_attempts.list(session_id)) == 1
        assert await store.open_attempts.settle(session_id) == 1  # what a resume does first
        rows = await store.usage.rows(session_id=session_id)
        assert [r["status"] for r in rows] == ["ok", "interrupted"]
        assert rows[1]["input_tokens"] is None
    finally:
        await store.close()
    assert [e["tool"] for e in read_log(log)] == ["wait_for"]


@pytest.mark.parametrize("family", ["anthropic"])
async def test_a_claimed_run_is_settled_when_the_store_is_next_opened(
    family: str, fake: FakeProviderServer, tmp_path: Path
) -> None:
    """A service instance killed mid-call: once its claim on the session has lapsed, any open of the store
    (another instance starting, the CLI) records the call as interrupted."""
    fake.faults.append(Fault(delay=30.0))
    db_url = f"sqlite:///{tmp_path / 'claimed.db'}"
    args = ["tests.agent.claimed_crash_worker", family, base_url_for(family, fake), db_url, str(tmp_path), "15", "hi"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_request(fake, proc, 1)
    finally:
        session_id = kill(proc)
    store = await open_store(db_url, key_dir=tmp_path)  # the claim is still live: the call may be running
    try:
        assert await store.run_claims.holder(session_id) is not None
        assert await store.usage.rows(session_id=session_id) == []
        assert len(await store.open_attempts.list(session_id)) == 1
        with anyio.fail_after(30):
            while await store.run_claims.holder(session_id) is not None:  # until the lease lapses
                await anyio.sleep(0.2)
    finally:
        await store.close()
    store = await open_store(db_url, key_dir=tmp_path)
    try:
        rows = await store.usage.rows(session_id=session_id)
        assert [(r["status"], r["provider"], r["input_tokens"]) for r in rows] == [("interrupted", family, None)]
        assert await store.open_attempts.list() == []
    finally:
        await store.close()


@pytest.mark.parametrize("family", ["ollama"])
async def test_a_finished_run_leaves_no_open_attempt(family: str, fake: FakeProviderServer, tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'done.db'}", key_dir=tmp_path)
    try:
        fake.turns.append(FakeTurn(text="done"))
        session = await Session.open(provider=config_for(family, fake), store=store, limits=Limits(check_budget=False))
        async with session:
            never = Limits(check_budget=False, max_turns=0)
            stopped = await session.run("never sent", limits=never)  # stops before its first call
            assert stopped.stop_reason == "max_turns"
            assert await store.open_attempts.list() == []
            result = await session.run("and now answer")
        assert result.text == "done"
        assert await store.open_attempts.list() == []
        assert [r["status"] for r in await store.usage.rows(session_id=session.session_id)] == ["ok"]
    finally:
        await store.close()
