"""Unsynced commits (``sync=False``) and the "no budget" memo, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import storage.usage
from providers.types import Message, TextPart, ToolResultPart
from storage import Keyring, SQLStore, open_store
from storage._db import Conn, write_inline
from storage.repositories import ToolStart, new_session_record

pytestmark = pytest.mark.anyio


async def _durability_setting(c: Conn) -> Any:
    """What the transaction's commit will do: SQLite's synchronous level (2 FULL, 1 NORMAL, 0 OFF) or
    PostgreSQL's synchronous_commit."""
    if c.dialect == "sqlite":
        return await c.fetchval("PRAGMA synchronous")
    return await c.fetchval("SHOW synchronous_commit")


async def test_sync_false_commits_without_waiting_and_only_for_that_transaction(store: SQLStore) -> None:
    synced = 2 if store.dialect == "sqlite" else "on"
    unsynced = 1 if store.dialect == "sqlite" else "off"
    # Through both SQLite write paths: inline (one trip to the writer thread) and the general one.
    assert await write_inline(store.db, _durability_setting) == synced
    assert await write_inline(store.db, _durability_setting, sync=False) == unsynced
    assert await write_inline(store.db, _durability_setting) == synced  # back for the next commit
    assert await store.db.write(_durability_setting, sync=False) == unsynced
    assert await store.db.write(_durability_setting) == synced
    assert await write_inline(store.db, _durability_setting) == synced


async def test_a_sqlite_store_opened_not_durable_never_syncs(tmp_path: Path, keyring: Keyring) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'fast.db'}", keyring=keyring, durable=False)
    try:
        assert await write_inline(store.db, _durability_setting) == 1
        assert await write_inline(store.db, _durability_setting, sync=True) == 1
    finally:
        await store.close()


async def test_unsynced_records_are_committed_and_seen_by_another_connection(
    store: SQLStore, db_url: str, keyring: Keyring
) -> None:
    user = await store.users.create("sync-user")
    record = new_session_record(user.id, model="m")
    await store.record_step(record.id, [Message.user("kept")], [], new_session=record, sync=False)
    await store.record_step(
        record.id,
        [Message.assistant("calling")],
        [],
        tool_starts=[ToolStart("c1", "t.add", {"a": 1})],
        sync=True,
    )
    result = ToolResultPart(call_id="c1", name="t.add", content=[TextPart(text="2")])
    await store.tool_calls.finish(record.id, "c1", result, sync=False)
    other = await open_store(db_url, keyring=keyring)
    try:
        stored = await other.messages.list(record.id)
        [call] = await other.tool_calls.list(record.id)
    finally:
        await other.close()
    assert [m.message.text for m in stored] == ["kept", "calling"]
    assert call.status == "finished"
    assert call.result is not None
    assert call.result.text() == "2"


async def test_no_budget_is_remembered_briefly_and_a_budget_set_here_counts_at_once(
    store: SQLStore, db_url: str, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await store.users.create("budget-user")
    assert await store.usage.active_budget(user.id) is None
    # Set through this ledger: seen at once.
    await store.usage.set_budget(user.id, monthly_usd="2", monthly_tokens=None)
    status = await store.usage.active_budget(user.id)
    assert status is not None
    assert status.limit_usd == 2
    # Removed elsewhere (another process's store): this one keeps reading it while it exists...
    other = await open_store(db_url, keyring=keyring)
    try:
        await other.usage.set_budget(user.id, monthly_usd=None, monthly_tokens=None)
        assert await store.usage.active_budget(user.id) is None
        # ...and "no budget" is now remembered: a budget set elsewhere shows after the recheck interval.
        await other.usage.set_budget(user.id, monthly_usd="1", monthly_tokens=None)
        assert await store.usage.active_budget(user.id) is None
        monkeypatch.setattr(storage.usage, "NO_BUDGET_RECHECK_SECONDS", 0.0)
        store.usage._unbudgeted.clear()  # the memo written under the old interval
        status = await store.usage.active_budget(user.id)
        assert status is not None
        assert status.limit_usd == 1
    finally:
        await other.close()


# ---------------------------------------------------------------------------- SQLite: unsynced commits on the loop


async def _waiting_settings(c: Conn) -> tuple[int, int]:
    return int(await c.fetchval("PRAGMA busy_timeout")), int(await c.fetchval("PRAGMA wal_autocheckpoint"))


async def test_unsynced_sqlite_commits_never_wait_on_the_event_loop(tmp_path: Path, keyring: Keyring) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'loop.db'}", keyring=keyring)
    try:
        # Unsynced inline commits run on the loop's thread: no busy waiting, no checkpoint there...
        assert await write_inline(store.db, _waiting_settings, sync=False) == (0, 0)
        # ...and the writer is set back for the commits made in its own thread.
        busy, checkpoint = await store.db.write(_waiting_settings, sync=False)  # not inline: thread
        assert busy > 0
        assert checkpoint > 0
    finally:
        await store.close()


async def _thread(c: Conn) -> int:
    return threading.get_ident()


async def test_a_synced_commit_runs_in_the_writer_thread_and_an_unsynced_one_on_the_loop(
    tmp_path: Path, keyring: Keyring
) -> None:
    """Synced commits go to the writer thread whether or not other work is ready (the loop keeps serving during
    the fsync; concurrent writes share one); unsynced ones stay on the loop's thread (no trip). No reading of the
    event loop's internals decides it."""
    store = await open_store(f"sqlite:///{tmp_path / 'idle.db'}", keyring=keyring)
    loop_thread = threading.get_ident()
    try:
        idle_synced = await write_inline(store.db, _thread)
        idle_unsynced = await write_inline(store.db, _thread, sync=False)
        assert await write_inline(store.db, _durability_setting) == 2  # FULL in the writer thread

        stop = anyio.Event()

        async def keep_busy() -> None:
            while not stop.is_set():
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_busy)
            await anyio.sleep(0)  # let it start: from here on, it is always ready to run
            busy_synced = await write_inline(store.db, _thread)
            busy_unsynced = await write_inline(store.db, _thread, sync=False)
            stop.set()
    finally:
        await store.close()
    assert idle_synced == busy_synced != loop_thread  # the one writer thread
    assert idle_unsynced == busy_unsynced == loop_thread


async def test_a_lone_runs_synced_commits_stay_on_the_loop_and_two_runs_send_them_to_the_thread(
    tmp_path: Path, keyring: Keyring
) -> None:
    """While exactly one agent run holds ``running()``, its synced commits run on the loop's thread (it waits
    for them anyway; the trip would cost it more CPU), still at synchronous FULL; with a second run they go
    back to the writer thread, where concurrent commits share one fsync."""
    store = await open_store(f"sqlite:///{tmp_path / 'runs.db'}", keyring=keyring)
    loop_thread = threading.get_ident()
    try:
        with store.running():
            alone = await write_inline(store.db, _thread)
            alone_level = await write_inline(store.db, _durability_setting)
            with store.running():
                two = await write_inline(store.db, _thread)
                two_level = await write_inline(store.db, _durability_setting)
            again = await write_inline(store.db, _thread)
        after = await write_inline(store.db, _thread)
    finally:
        await store.close()
    assert alone == again == loop_thread
    assert two == after != loop_thread
    assert alone_level == two_level == 2  # FULL on either thread: every synced commit is fsynced


async def test_an_unsynced_write_waits_for_another_connections_lock_in_the_writer_thread(
    tmp_path: Path, keyring: Keyring
) -> None:
    path = tmp_path / "locked.db"
    store = await open_store(f"sqlite:///{path}", keyring=keyring)
    user = await store.users.create("locked")
    record = new_session_record(user.id)
    await store.record_step(record.id, [Message.user("first")], [], new_session=record)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer (as another process would) holds the lock
    ticks = 0

    async def write() -> None:
        await store.record_step(record.id, [Message.user("second")], [], sync=False)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            while ticks < 5:  # the event loop keeps running while the write waits
                await anyio.sleep(0.01)
                ticks += 1
            holder.execute("COMMIT")
        stored = await store.messages.list(record.id)
    finally:
        holder.close()
        await store.close()
    assert [m.message.text for m in stored] == ["first", "second"]


async def test_the_write_ahead_log_is_checkpointed_when_no_commit_is_synced(tmp_path: Path, keyring: Keyring) -> None:
    """Unsynced commits skip SQLite's automatic checkpoint on the loop thread; every 64th goes through the
    writer thread, where it runs, so the log does not grow without bound."""
    path = tmp_path / "wal.db"
    store = await open_store(f"sqlite:///{path}", keyring=keyring, durable=False)  # every commit unsynced
    blob = b"x" * 64 * 1024  # 16 pages per commit

    async def insert(c: Conn) -> None:
        await c.execute("CREATE TABLE IF NOT EXISTS bulk (data BLOB)")
        await c.execute("INSERT INTO bulk (data) VALUES (?)", blob)

    try:
        for _ in range(400):  # 6,400 pages: 25 MB of log without checkpoints
            await write_inline(store.db, insert, sync=False)
        wal = path.with_name(path.name + "-wal").stat().st_size
    finally:
        await store.close()
    assert wal < 10 * 1024 * 1024, f"the WAL grew to {wal / 2**20:.1f} MB"
