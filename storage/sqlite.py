"""SQLite backend (aiosqlite): WAL, durable commits, group commit, and no "database is locked" for callers.

* One writer connection. Concurrent writes in this process are grouped into one transaction and committed
  together: one fsync for many writes, and every caller returns only after its write is durable
  (``synchronous=FULL``). A write made with ``sync=False`` is committed without an fsync of its own
  (``synchronous=NORMAL`` for that commit: it survives the process dying; the next synced commit makes it
  durable too, since the WAL is written in order); a batch with any synced write is synced.
* Inline writes (see :meth:`SQLiteDatabase.write_inline`) run as one function on the writer's connection: the
  whole transaction costs one trip to the writer's thread (:mod:`storage._sqlite_thread`) and back, not one
  per statement. Unsynced ones run on the event loop's thread instead: with no fsync they take tens of
  microseconds, less than that trip (measured: 0.3-0.4 ms of CPU per commit inside an agent run). They never
  wait there: the writer's busy timeout is 0 and its automatic checkpoint off while they run; a database
  locked by another process sends the write to the thread, which waits; and every 64th such commit goes
  through the thread too, so the write-ahead log is checkpointed there even when nothing is synced. Synced
  commits go to the writer thread, so the loop keeps serving during the fsync and concurrent writes share one
  fsync — except while exactly one agent run holds :meth:`SQLiteDatabase.running` (a CLI run, a script, a
  quiet service): its synced commits run on the loop's thread too, since that run waits for them anyway and
  the trip would cost it more CPU than the commit (measured: ~0.6 ms per run, about 0.1x of an Anthropic
  run). A second concurrent run sends them back to the thread. Nothing here asks the event loop about its
  internals: the count is routekit's own.
* Writes start with ``BEGIN IMMEDIATE`` so the lock is taken up front; when another *process* holds it,
  the busy timeout waits and a retry loop with backoff waits longer. Callers see :class:`StorageBusy`
  (with advice) only after ``patience`` seconds, never SQLite's raw "database is locked".
* A few reader connections (aiosqlite) serve reads concurrently (WAL readers do not block the writer).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite
import anyio

from storage import migrations as _migrations
from storage._db import Conn, Row
from storage._sqlite_thread import ConnectionThread
from storage.errors import DatabaseUnavailable, StorageBusy
from storage.files import create_private_file, ensure_private_dir

T = TypeVar("T")

_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")
# Consecutive unsynced commits made on the event loop's thread before one goes through the writer thread
# (where SQLite's automatic checkpoint is on).
_LOOP_COMMITS_PER_THREAD_COMMIT = 64
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(m in str(exc).lower() for m in _BUSY_MARKERS)


class _SQLiteConn:
    """A reader's :class:`Conn` (aiosqlite)."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows = await self._conn.execute_fetchall(sql, args)
        return [dict(r) for r in rows]

    # One trip to aiosqlite's thread each (a cursor's execute + fetchone + close would be three): the
    # queries behind these are by key, aggregates or RETURNING one row.
    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        rows = await self._conn.execute_fetchall(sql, args)
        return dict(next(iter(rows))) if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self._conn.execute_fetchall(sql, args)
        return next(iter(rows))[0] if rows else None

    async def rowcount(self, sql: str, *args: Any) -> int:
        cursor = await self._conn.execute(sql, args)
        return cursor.rowcount


class _Statements:
    """The :class:`Conn` operations, synchronous, on the writer's ``sqlite3`` connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any]) -> None:
        self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        rows = self.conn.execute(sql, args).fetchall()
        return dict(rows[0]) if rows else None

    def fetchval(self, sql: str, args: Sequence[Any]) -> Any:
        rows = self.conn.execute(sql, args).fetchall()
        return rows[0][0] if rows else None

    def rowcount(self, sql: str, args: Sequence[Any]) -> int:
        return self.conn.execute(sql, args).rowcount


class _InlineConn:
    """A :class:`Conn` whose coroutines never suspend, used where the writer's connection is used directly
    (in its thread, or on the loop's thread for an unsynced batch).

    A write function made only of Conn calls therefore runs to completion with one ``send`` (see
    :func:`_run_inline`): a whole transaction costs one trip to the thread, not one per statement.
    """

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, statements: _Statements) -> None:
        self._s = statements

    async def execute(self, sql: str, *args: Any) -> None:
        self._s.execute(sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._s.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self._s.fetch(sql, args)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        return self._s.fetchone(sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return self._s.fetchval(sql, args)

    async def rowcount(self, sql: str, *args: Any) -> int:
        return self._s.rowcount(sql, args)


class _ThreadConn:
    """A :class:`Conn` on the writer's connection for any write function: one trip to its thread per call."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, statements: _Statements, thread: ConnectionThread) -> None:
        self._s = statements
        self._thread = thread

    async def execute(self, sql: str, *args: Any) -> None:
        await self._thread.run(self._s.execute, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._thread.run(self._s.executemany, sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._thread.run(self._s.fetch, sql, args)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        return await self._thread.run(self._s.fetchone, sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._thread.run(self._s.fetchval, sql, args)

    async def rowcount(self, sql: str, *args: Any) -> int:
        return await self._thread.run(self._s.rowcount, sql, args)


class _Suspended(RuntimeError):
    """An inline write function awaited something other than its Conn (a programming error)."""


def _run_inline(fn: Callable[[Conn], Awaitable[Any]], conn: _InlineConn) -> Any:
    coro = fn(conn)
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        return done.value
    coro.close()  # type: ignore[attr-defined]
    raise _Suspended("an inline SQLite write awaited something other than its connection")


@dataclass
class _Pending:
    fn: Callable[[Conn], Awaitable[Any]]
    bulk: tuple[str, tuple[Any, ...]] | None = None  # (sql, params) of a mergeable one-row insert
    inline: bool = False  # fn only awaits its Conn: it may run inside the writer thread (see write_inline)
    sync: bool = True  # wait for stable storage (see Database.write)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Writer:
    """The writer's ``sqlite3`` connection (opened with ``check_same_thread=False``: it is used in its thread
    and, for unsynced inline batches, on the loop's thread; one batch at a time, never by two at once)."""

    thread: ConnectionThread
    statements: _Statements

    @property
    def conn(self) -> sqlite3.Connection:
        return self.statements.conn

    async def execute(self, sql: str) -> None:
        await self.thread.run(self.statements.execute, sql, ())

    def general_conn(self) -> _ThreadConn:
        return _ThreadConn(self.statements, self.thread)


class SQLiteDatabase:
    """A SQLite file opened for routekit. Use :func:`storage.open_store` rather than this class directly."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(
        self, path: Path, *, busy_timeout: float = 5.0, patience: float = 60.0, readers: int = 4, durable: bool = True
    ) -> None:
        self.path = path
        self.description = f"sqlite:///{path}"
        self._busy_ms = int(busy_timeout * 1000)
        self._patience = patience
        self._reader_count = readers
        self._durable = durable
        self._writer: _Writer | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._free: list[aiosqlite.Connection] = []
        self._reader_slots = anyio.Semaphore(readers)
        self._queue: list[_Pending] = []
        self._flushing = False
        self._writer_sync = durable  # the writer connection's current synchronous level is FULL
        self._writer_on_loop = False  # the writer is set for commits on the loop thread (no waiting)
        self._loop_commits = 0  # unsynced commits on the loop thread since the last one in the writer thread
        self._runs = 0  # agent runs holding running() now

    # ------------------------------------------------------------------ lifecycle

    def _pragmas(self) -> list[str]:
        return [
            f"PRAGMA busy_timeout = {self._busy_ms}",
            "PRAGMA foreign_keys = ON",
            f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}",
        ]

    def _open_writer_connection(self) -> sqlite3.Connection:
        """In the writer's thread."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_ms / 1000, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            for pragma in self._pragmas():
                conn.execute(pragma)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _open_writer(self) -> _Writer:
        thread = ConnectionThread(f"routekit-sqlite-writer {self.path.name}")
        try:
            conn = await thread.run(self._open_writer_connection)
        except BaseException:
            thread.stop()
            raise
        return _Writer(thread, _Statements(conn))

    async def _connect_reader(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=self._busy_ms / 1000)
        conn.row_factory = sqlite3.Row
        for pragma in self._pragmas():
            await conn.execute(pragma)
        await conn.execute("PRAGMA query_only = ON")
        return conn

    async def open(self) -> None:
        try:
            # Private whatever the umask: a new directory 0700, a new database file 0600 (its -wal and -shm
            # files get the database file's mode from SQLite).
            ensure_private_dir(self.path.parent)
            create_private_file(self.path)
            self._writer = await self._open_writer()
            await self._retry_busy(lambda: self._pragma_wal())
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise DatabaseUnavailable(
                f"cannot open SQLite database {self.path}: {exc}. Check that the directory exists and is writable."
            ) from None

    async def _pragma_wal(self) -> None:
        assert self._writer is not None
        mode = await self._writer.general_conn().fetchval("PRAGMA journal_mode = WAL")
        if str(mode).lower() != "wal":
            raise DatabaseUnavailable(f"SQLite database {self.path} could not switch to WAL mode")

    async def _open_readers(self) -> None:
        for _ in range(self._reader_count):
            conn = await self._connect_reader()
            self._readers.append(conn)
            self._free.append(conn)

    async def close(self) -> None:
        readers, writer = self._readers, self._writer
        self._readers, self._free, self._writer = [], [], None
        with anyio.CancelScope(shield=True):
            for conn in readers:
                await conn.close()
            if writer is not None:
                try:
                    await writer.thread.run(writer.conn.close)
                finally:
                    writer.thread.stop()

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Have ``callback`` see every statement the writer runs, in whichever thread (diagnostics and tests);
        None stops it."""
        assert self._writer is not None
        await self._writer.thread.run(self._writer.conn.set_trace_callback, callback)

    # ------------------------------------------------------------------ retries

    async def _retry_busy(self, op: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self._patience
        delay = 0.005
        while True:
            try:
                return await op()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() > deadline:
                    raise StorageBusy(
                        f"SQLite database {self.path} stayed locked by another process for {self._patience:.0f} s. "
                        "Another routekit may be running a long write; retry, or use PostgreSQL for several instances."
                    ) from None
            await anyio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)

    async def _begin_immediate(self, writer: _Writer) -> None:
        await self._retry_busy(lambda: writer.execute("BEGIN IMMEDIATE"))

    # ------------------------------------------------------------------ migrations

    async def migrate(self, target: int | None = None) -> int:
        assert self._writer is not None
        writer = self._writer
        conn = writer.general_conn()
        await self._begin_immediate(writer)
        try:
            await conn.execute(_migrations.CREATE_TABLE)
            current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0)
            todo = _migrations.pending("sqlite", current, target, self.description)
            for migration in todo:
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    migration.version,
                    migration.name,
                    time.time(),
                )
                current = migration.version
            await writer.execute("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await writer.execute("ROLLBACK")
            raise
        if not self._readers:
            await self._open_readers()
        return current

    # ------------------------------------------------------------------ work

    async def read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        async with self._reader_slots:
            conn = self._free.pop()
            try:
                return await self._retry_busy(lambda: fn(_SQLiteConn(conn)))
            finally:
                self._free.append(conn)

    async def write(self, fn: Callable[[Conn], Awaitable[T]], *, sync: bool = True) -> T:
        return await self._enqueue(_Pending(fn, sync=sync))  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Held by an agent run for its duration (see the module doc: a lone run's synced commits stay on the
        loop's thread)."""
        self._runs += 1
        try:
            yield
        finally:
            self._runs -= 1

    async def write_inline(self, fn: Callable[[Conn], Awaitable[T]], *, sync: bool = True) -> T:
        """:meth:`write` for a function that awaits nothing but its Conn's methods (no other I/O, no sleeps).

        Such writes, grouped as usual, run as one call in the writer's thread (BEGIN, statements, COMMIT):
        the per-statement round trips between the event loop and the writer's thread are most of a small
        transaction's CPU.
        """
        return await self._enqueue(_Pending(fn, inline=True, sync=sync))  # type: ignore[no-any-return]

    async def insert(self, sql: str, params: Sequence[Any]) -> None:
        """A durable one-row insert; concurrent inserts with the same SQL share one ``executemany``."""
        await self._enqueue(_Pending(_no_fn, bulk=(sql, tuple(params)), inline=True))

    async def _enqueue(self, item: _Pending) -> Any:
        self._queue.append(item)
        if not self._flushing:
            # This caller leads: it commits everything queued (its own write included) until the queue is
            # empty. Shielded so that cancelling the leader cannot strand the writes it picked up.
            self._flushing = True
            try:
                with anyio.CancelScope(shield=True):
                    while self._queue:
                        batch, self._queue = self._queue, []
                        await self._flush(batch)
            finally:
                self._flushing = False
        if not item.done.is_set():  # (a leader's own write is done already: no extra trip through the loop)
            await item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    async def _flush(self, batch: list[_Pending]) -> None:
        """Commit the whole batch at once; if any write in it fails, redo them one transaction each.

        The redo is safe because the failed attempt was rolled back entirely; it keeps the common case
        (nothing fails) at one BEGIN, the statements, and one COMMIT.
        """
        try:
            try:
                await self._transaction(batch)
            except Exception:
                if len(batch) == 1:
                    raise
                for item in batch:
                    try:
                        await self._transaction([item])
                    except Exception as exc:
                        item.error = exc
        except Exception as exc:
            for item in batch:
                if item.error is None:
                    item.error = exc
        finally:
            for item in batch:
                item.done.set()

    async def _transaction(self, batch: list[_Pending]) -> None:
        writer = self._writer
        if writer is None:
            raise DatabaseUnavailable(f"{self.description} is closed")
        sync = self._durable and any(item.sync for item in batch)
        if all(item.inline for item in batch):
            on_loop = not sync or (self._runs == 1 and len(batch) == 1 and not self._queue)
            if on_loop and self._loop_commits < _LOOP_COMMITS_PER_THREAD_COMMIT:
                try:
                    self._inline_transaction(writer.statements, batch, sync, True)
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    # Locked by another process: wait for it in the writer thread, never on the event loop.
                else:
                    self._loop_commits += 1
                    return
            self._loop_commits = 0
            # A busy database rolls the whole attempt back, so it is retried as a whole.
            await self._retry_busy(
                lambda: writer.thread.run(self._inline_transaction, writer.statements, batch, sync, False)
            )
            return
        self._loop_commits = 0
        for statement in self._settings_for(sync, on_loop=False):
            await writer.execute(statement)
        await self._begin_immediate(writer)
        conn = writer.general_conn()
        try:
            i = 0
            while i < len(batch):
                item = batch[i]
                if item.bulk is None:
                    item.result = await item.fn(conn)
                    i += 1
                    continue
                sql = item.bulk[0]
                j = i
                while j < len(batch) and batch[j].bulk is not None and batch[j].bulk[0] == sql:  # type: ignore[index]
                    j += 1
                await conn.executemany(sql, [b.bulk[1] for b in batch[i:j]])  # type: ignore[index]
                i = j
            await self._retry_busy(lambda: writer.execute("COMMIT"))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await writer.execute("ROLLBACK")
            raise

    def _settings_for(self, sync: bool, *, on_loop: bool) -> list[str]:
        """The PRAGMAs that set the writer up for the next commit (only those that change), recorded as set."""
        statements = []
        if sync != self._writer_sync:
            statements.append(f"PRAGMA synchronous = {'FULL' if sync else 'NORMAL'}")
            self._writer_sync = sync
        if on_loop != self._writer_on_loop:
            statements.append(f"PRAGMA busy_timeout = {0 if on_loop else self._busy_ms}")
            statements.append(f"PRAGMA wal_autocheckpoint = {0 if on_loop else _AUTOCHECKPOINT_PAGES}")
            self._writer_on_loop = on_loop
        return statements

    def _inline_transaction(self, statements: _Statements, batch: list[_Pending], sync: bool, on_loop: bool) -> None:
        """The whole batch at once: BEGIN IMMEDIATE, every write, COMMIT (or ROLLBACK). Runs in the writer's
        thread, or on the loop's thread for an unsynced batch (``on_loop``: see the module doc)."""
        raw = statements.conn
        for statement in self._settings_for(sync, on_loop=on_loop):
            raw.execute(statement)
        raw.execute("BEGIN IMMEDIATE")
        try:
            conn = _InlineConn(statements)
            i = 0
            while i < len(batch):
                item = batch[i]
                if item.bulk is None:
                    item.result = _run_inline(item.fn, conn)
                    i += 1
                    continue
                sql = item.bulk[0]
                j = i
                while j < len(batch) and batch[j].bulk is not None and batch[j].bulk[0] == sql:  # type: ignore[index]
                    j += 1
                raw.executemany(sql, [b.bulk[1] for b in batch[i:j]])  # type: ignore[index]
                i = j
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise


async def _no_fn(conn: Conn) -> None:
    return None


def sqlite_path_from_url(url: str) -> Path:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a plain path."""
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        if not rest.startswith("/"):
            raise DatabaseUnavailable(f"malformed SQLite URL {url!r}: use sqlite:///path/to/file.db")
        rest = rest[1:]
        return Path(rest) if rest else Path("routekit.db")
    return Path(url)


__all__ = ["SQLiteDatabase", "sqlite_path_from_url"]
