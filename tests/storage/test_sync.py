"""Unsynced commits (``sync=False``) and the "no budget" memo, on SQLite and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
