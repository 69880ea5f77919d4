"""PostgreSQL backend (asyncpg) for several routekit instances sharing one database.

Each write runs in its own pooled transaction (``synchronous_commit`` is the server's: durable by
default). Migrations take a transaction-scoped advisory lock, so instances starting together migrate
one after the other.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage import migrations as _migrations
from storage._db import Conn, Row
from storage.errors import DatabaseUnavailable

T = TypeVar("T")

# pg_advisory_xact_lock key for migrations: "routekit" as a number, stable across versions.
_MIGRATION_LOCK = 0x726F757465_6B6974 % (2**63)
_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders → ``$1, $2, ...`` (the repositories never use ``?`` in literals)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class _PgConn:
    dialect: Literal["postgres"] = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(_pg_sql(sql), *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_pg_sql(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._conn.fetch(_pg_sql(sql), *args))

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._conn.fetchrow(_pg_sql(sql), *args)
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(_pg_sql(sql), *args)

    async def rowcount(self, sql: str, *args: Any) -> int:
        status: str = await self._conn.execute(_pg_sql(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


class PostgresDatabase:
    """A PostgreSQL database opened for routekit. Use :func:`storage.open_store` rather than this class directly."""

    dialect: Literal["postgres"] = "postgres"

    def running(self) -> contextlib.AbstractContextManager[None]:
        """Runs commit alike however many there are (the server group-commits)."""
        return contextlib.nullcontext()

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 10.0) -> None:
        self._url = url
        self.description = redact_url(url)
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._url, min_size=1, max_size=self._pool_size, timeout=self._connect_timeout
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            kind = type(exc).__name__
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {self.description} ({kind}). Check that the server is running, "
                "the host, port, database name and credentials are right, and the URL is reachable from here."
            ) from None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseUnavailable(f"{self.description} is closed")
        return self._pool

    async def migrate(self, target: int | None = None) -> int:
        async with self._require_pool().acquire() as raw, raw.transaction():
            await raw.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            conn = _PgConn(raw)
            await conn.execute(_migrations.CREATE_TABLE)
            current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0)
            for migration in _migrations.pending("postgres", current, target, self.description):
                for statement in migration.statements:
                    await raw.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    migration.version,
                    migration.name,
                    time.time(),
                )
                current = migration.version
            return current

    async def write(self, fn: Callable[[Conn], Awaitable[T]], *, sync: bool = True) -> T:
        async with self._require_pool().acquire() as raw, raw.transaction():
            if not sync:  # this transaction only: commit without waiting for the WAL flush
                await raw.execute("SET LOCAL synchronous_commit = off")
            return await fn(_PgConn(raw))

    async def insert(self, sql: str, params: Sequence[Any]) -> None:
        async with self._require_pool().acquire() as raw:
            await raw.execute(_pg_sql(sql), *params)

    async def read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        async with self._require_pool().acquire() as raw:
            return await fn(_PgConn(raw))


__all__ = ["PostgresDatabase", "redact_url"]
