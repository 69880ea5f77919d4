"""The small database interface the repositories are written against.

Repositories write SQL once, with ``?`` placeholders; each backend adapts it (asyncpg wants ``$1``).
Work is handed to the backend as a function of a :class:`Conn` so that the backend decides how to run
it: SQLite groups concurrent writes into one transaction (group commit) and retries on a locked
database; PostgreSQL runs each in its own pooled transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")
Row = Mapping[str, Any]
Dialect = Literal["sqlite", "postgres"]


def new_id() -> str:
    """A row id: 32 hex digits, random."""
    return uuid.uuid4().hex


class Conn(Protocol):
    """One connection inside a transaction (writes) or a snapshot-less read."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchone(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

    async def rowcount(self, sql: str, *args: Any) -> int:
        """Execute and return the number of rows changed."""
        ...


class Database(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    @property
    def description(self) -> str:
        """The database for messages: never contains a password."""
        ...

    async def write(self, fn: Callable[[Conn], Awaitable[T]], *, sync: bool = True) -> T:
        """Run ``fn`` in a write transaction; committed when this returns. ``sync=False``: committed and
        visible, and safe if this process dies, but not waited onto stable storage (no fsync on SQLite,
        ``synchronous_commit = off`` on PostgreSQL); a power cut or a database server crash before the next
        synced commit can lose it. For records that the next synced commit will cover anyway."""
        ...

    async def insert(self, sql: str, params: Sequence[Any]) -> None:
        """One durable single-row insert (backends may merge concurrent ones into one commit)."""
        ...

    async def read(self, fn: Callable[[Conn], Awaitable[T]]) -> T: ...

    async def migrate(self, target: int | None = None) -> int:
        """Apply pending migrations (up to ``target``); returns the schema version afterwards."""
        ...

    def running(self) -> AbstractContextManager[None]:
        """Held by an agent run while it lasts: a backend may commit differently when one run is alone (SQLite:
        a synced commit on the event loop's thread, see :mod:`storage.sqlite`)."""
        ...

    async def close(self) -> None: ...


async def write_inline(db: Database, fn: Callable[[Conn], Awaitable[T]], *, sync: bool = True) -> T:
    """``db.write(fn, sync=sync)`` for a ``fn`` that awaits nothing but its Conn's methods (no other I/O, no
    sleeps, no locks). A backend that can run such a function in one step (SQLite: one trip to its connection
    thread for the whole transaction) offers ``write_inline``; the others run it as any write."""
    inline = getattr(db, "write_inline", None)
    if inline is not None:
        return await inline(fn, sync=sync)  # type: ignore[no-any-return]
    return await db.write(fn, sync=sync)
