"""The ``Store``: one object holding every repository, opened from a URL.

``open_store()`` with no URL opens the embedded SQLite database under ``$ROUTEKIT_HOME`` (else the
platform's user data directory); ``sqlite:///path`` and ``postgresql://...`` choose explicitly. Opening
connects, applies pending migrations (safely when several processes start at once), and checks the master
key against the database before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, runtime_checkable

import platformdirs

from providers.types import Message
from storage._db import Conn, Database, write_inline
from storage.attempts import OpenAttempt, OpenAttempts, close_open_attempt, insert_open_attempt
from storage.claims import RunClaims
from storage.crypto import MASTER_KEY_ENV, Keyring, load_keyring, parse_master_keys
from storage.errors import DatabaseUnavailable, MasterKeyError
from storage.keys import KeyManager
from storage.oauth import OAuthTokens
from storage.postgres import PostgresDatabase
from storage.repositories import (
    McpServers,
    Messages,
    ProviderConfigs,
    SessionRecord,
    Sessions,
    ToolCalls,
    ToolStart,
    Users,
    append_messages,
    insert_session,
    insert_tool_starts,
)
from storage.sqlite import SQLiteDatabase, sqlite_path_from_url
from storage.usage import UsageEntry, UsageLedger, UsageRow, insert_usage, prepare

HOME_ENV = "ROUTEKIT_HOME"
DATABASE_URL_ENV = "ROUTEKIT_DATABASE_URL"  # e.g. postgresql://... for several instances sharing state
DB_FILE_NAME = "routekit.db"


def data_home(environ: dict[str, str] | None = None) -> Path:
    """``$ROUTEKIT_HOME`` if set, else the user data directory (e.g. ``~/.local/share/routekit``)."""
    env = os.environ if environ is None else environ
    home = env.get(HOME_ENV)
    return Path(home).expanduser() if home else Path(platformdirs.user_data_dir("routekit", appauthor=False))


def default_url(environ: dict[str, str] | None = None) -> str:
    """``$ROUTEKIT_DATABASE_URL`` if set, else the embedded SQLite database under :func:`data_home`."""
    env = os.environ if environ is None else environ
    return env.get(DATABASE_URL_ENV) or f"sqlite:///{data_home(environ) / DB_FILE_NAME}"


@runtime_checkable
class Store(Protocol):
    """What the rest of routekit uses. Both backends implement it with the same repositories."""

    users: Users
    provider_configs: ProviderConfigs
    mcp_servers: McpServers
    oauth: OAuthTokens
    sessions: Sessions
    messages: Messages
    tool_calls: ToolCalls
    usage: UsageLedger
    keys: KeyManager
    run_claims: RunClaims
    open_attempts: OpenAttempts

    @property
    def dialect(self) -> str: ...

    def running(self) -> AbstractContextManager[None]:
        """Held by an agent run while it lasts (see :meth:`storage._db.Database.running`)."""
        ...

    async def record_step(
        self,
        session_id: str,
        messages: Sequence[Message],
        usage: Sequence[UsageEntry],
        *,
        tool_starts: Sequence[ToolStart] = (),
        new_session: SessionRecord | None = None,
        sync: bool = True,
        close_attempt: str | None = None,
        open_attempt: OpenAttempt | None = None,
    ) -> list[int]:
        """Append a step's messages and its usage rows in one transaction; in the same transaction, create
        the session first (``new_session``, from :func:`~storage.repositories.new_session_record`) and
        record ``tool_starts`` as started (so a call's start is durable with the message that asked for it).
        ``close_attempt`` removes the open attempt whose usage this step records, ``open_attempt`` records
        the model call that follows as open (see :mod:`storage.attempts`). ``sync=False``: see
        ``Database.write``."""
        ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...


class SQLStore:
    """The Store over either backend (the SQL is shared; the backends differ in connections and locking)."""

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keys = KeyManager(db, keyring)
        self.users = Users(db)
        self.provider_configs = ProviderConfigs(db, self.keys)
        self.mcp_servers = McpServers(db, self.keys)
        self.oauth = OAuthTokens(db, self.keys)
        self.sessions = Sessions(db)
        self.messages = Messages(db)
        self.tool_calls = ToolCalls(db)
        self.usage = UsageLedger(db)
        self.run_claims = RunClaims(db)
        self.open_attempts = OpenAttempts(db)

    def __repr__(self) -> str:
        return f"SQLStore({self.db.description!r})"

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def running(self) -> AbstractContextManager[None]:
        return self.db.running()

    async def record_step(
        self,
        session_id: str,
        messages: Sequence[Message],
        usage: Sequence[UsageEntry],
        *,
        tool_starts: Sequence[ToolStart] = (),
        new_session: SessionRecord | None = None,
        sync: bool = True,
        close_attempt: str | None = None,
        open_attempt: OpenAttempt | None = None,
    ) -> list[int]:
        prepared: list[tuple[UsageRow, tuple[object, ...]]] = [prepare(e) for e in usage]

        async def write(c: Conn) -> list[int]:
            if new_session is not None:
                await insert_session(c, new_session)
            seqs = await append_messages(c, session_id, list(messages)) if messages else []
            if prepared:
                await insert_usage(c, [p for _, p in prepared])
            if tool_starts:
                await insert_tool_starts(c, session_id, tool_starts)
            if close_attempt is not None:
                await close_open_attempt(c, close_attempt)
            if open_attempt is not None:
                await insert_open_attempt(c, open_attempt)
            return seqs

        return await write_inline(self.db, write, sync=sync)

    async def schema_version(self) -> int:
        return int(
            await self.db.read(lambda c: c.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")) or 0
        )

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> SQLStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _backend(url: str, *, durable: bool) -> SQLiteDatabase | PostgresDatabase:
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    if url.startswith("sqlite://") or "://" not in url:
        return SQLiteDatabase(sqlite_path_from_url(url), durable=durable)
    scheme = url.split("://", 1)[0]
    raise DatabaseUnavailable(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path/to/file.db or postgresql://user@host/db"
    )


async def _keyring_for(db: Database, keyring: Keyring | None, key_dir: Path | None) -> Keyring:
    if keyring is not None:
        return keyring
    text = os.environ.get(MASTER_KEY_ENV)
    if text is not None:
        return parse_master_keys(text)
    directory = key_dir or data_home()
    has_secrets = await db.read(lambda c: c.fetchval("SELECT COUNT(*) FROM master_keys"))
    if has_secrets and not (directory / "master.key").exists():
        raise MasterKeyError(
            f"this database holds encrypted secrets but no master key is configured: set {MASTER_KEY_ENV} to the "
            f"key used before, or restore {directory / 'master.key'}. Nothing was changed."
        )
    return load_keyring(directory, create=True)


async def open_store(
    url: str | None = None,
    *,
    keyring: Keyring | None = None,
    key_dir: Path | None = None,
    migrate_to: int | None = None,
    durable: bool = True,
) -> SQLStore:
    """Open (and migrate) the store at ``url``; when None, ``$ROUTEKIT_DATABASE_URL`` or the embedded SQLite.

    The master key comes from ``keyring``, else ``ROUTEKIT_MASTER_KEY``, else ``<key_dir>/master.key``
    (default: the data home; created with 0600 on first use). A malformed ``ROUTEKIT_MASTER_KEY`` is
    reported before the database is touched. ``durable=False`` (SQLite only) trades power-loss durability
    for speed; a process crash still loses nothing committed.
    """
    if keyring is None and os.environ.get(MASTER_KEY_ENV) is not None:
        parse_master_keys(os.environ[MASTER_KEY_ENV])  # fail fast on a malformed key
    db = _backend(url or default_url(), durable=durable)
    await db.open()
    try:
        await db.migrate(migrate_to)
        ring = await _keyring_for(db, keyring, key_dir)
        store = SQLStore(db, ring)
        if migrate_to is None:
            await store.keys.verify()
            await store.open_attempts.settle()  # model calls of processes that died: interrupted usage rows
    except BaseException:
        await db.close()
        raise
    return store
