"""The SQLite writer's own connection thread (storage._sqlite_thread): errors come back to the caller, a
cancelled caller does not lose or break the write, and closing the database ends the thread."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from storage import Keyring, open_store
from storage._db import Conn, write_inline

pytestmark = pytest.mark.anyio


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("routekit-sqlite-writer")]


async def test_closing_the_database_ends_its_writer_thread(tmp_path: Path, keyring: Keyring) -> None:
    before = set(_writer_threads())
    store = await open_store(f"sqlite:///{tmp_path / 'a.db'}", keyring=keyring)
    [thread] = set(_writer_threads()) - before
    await store.close()
    thread.join(timeout=10)
    assert not thread.is_alive()


async def test_an_error_in_the_writer_thread_reaches_the_caller_and_the_writer_goes_on(
    tmp_path: Path, keyring: Keyring
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'b.db'}", keyring=keyring)

    async def create(c: Conn) -> None:
        await c.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")

    async def insert(c: Conn) -> None:
        await c.execute("INSERT INTO t (k) VALUES ('same')")

    async def count(c: Conn) -> int:
        return int(await c.fetchval("SELECT COUNT(*) FROM t"))

    try:
        await store.db.write(create)
        await write_inline(store.db, insert)  # synced: in the writer thread
        with pytest.raises(sqlite3.IntegrityError):
            await write_inline(store.db, insert)
        with pytest.raises(sqlite3.IntegrityError):
            await store.db.write(insert)  # the general path: one trip per statement
        assert await write_inline(store.db, count) == 1
    finally:
        await store.close()


async def test_a_cancelled_writer_still_commits_and_the_next_write_works(tmp_path: Path, keyring: Keyring) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'c.db'}", keyring=keyring)

    async def create(c: Conn) -> None:
        await c.execute("CREATE TABLE t (n INTEGER)")

    async def insert(c: Conn) -> None:
        await c.execute("INSERT INTO t (n) VALUES (1)")

    async def count(c: Conn) -> int:
        return int(await c.fetchval("SELECT COUNT(*) FROM t"))

    try:
        await store.db.write(create)
        with anyio.move_on_after(0):  # cancelled at its first checkpoint, inside the commit's trip
            await write_inline(store.db, insert)
        await write_inline(store.db, insert)
        assert await store.db.read(count) == 2
    finally:
        await store.close()
