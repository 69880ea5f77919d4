"""Repositories: users and tokens, provider configs, MCP servers, OAuth tokens, sessions, messages, tool calls.

Secrets go in sealed (see :mod:`storage.crypto`) and come out masked, except through the ``resolve``
methods that the code calling a provider or an MCP server uses. A secret that cannot be opened marks its
row ``needs_reconfiguration`` and is reported as such; it never raises out of a listing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from providers.base import ProviderConfig
from providers.errors import ConfigError
from providers.profiles import get_profile
from providers.types import Message, ToolResultPart
from storage._db import Conn, Database, Row, new_id, write_inline
from storage.attempts import OpenAttempt, insert_open_attempt
from storage.claims import live_claim_sql
from storage.crypto import AssociatedData, mask
from storage.errors import DecryptionFailed, NotFound, TokenExpired
from storage.keys import GLOBAL_OWNER, KeyManager

# "unreadable" is never stored: a row whose stored text is not valid Unicode reads as such (see _valid_text).
Status = Literal["ok", "needs_reconfiguration", "unreadable"]
TOKEN_PREFIX = "rk_"  # noqa: S105 - a prefix, not a secret


UNREADABLE_TEXT = (
    "this entry holds text that is not valid Unicode (a lone surrogate, stored before such input was refused) "
    "and cannot be shown or used; delete it and add it again"
)


def _valid_text(*values: Any) -> bool:
    """False when a decoded value holds a lone surrogate: JSON's ``"\\ud800"`` decodes to one, the JSON
    columns store it escaped, and no answer can encode it again (a listing would fail as a whole)."""
    try:
        json.dumps(values, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _hash_token(token: str) -> str:
    # API tokens are 256-bit random values, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- users


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new API token. ``token`` is shown this once; only its hash is stored."""

    id: str
    user_id: str
    token: SecretStr
    expires_at: float | None = None  # unix seconds; None: never expires


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    user_id: str
    label: str | None
    created_at: float
    last_used_at: float | None
    revoked: bool
    expires_at: float | None = None  # None: never expires

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (time.time() if now is None else now)

    def active(self, now: float | None = None) -> bool:
        """Neither revoked nor expired: the token still signs in."""
        return not self.revoked and not self.expired(now)


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str) -> User:
        user = User(new_id(), name, time.time())
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO users (id, name, created_at) VALUES (?, ?, ?)", user.id, name, user.created_at
            )
        )
        return user

    async def get(self, user_id: str) -> User:
        row = await self._db.read(lambda c: c.fetchone("SELECT id, name, created_at FROM users WHERE id = ?", user_id))
        if row is None:
            raise NotFound(f"no user with id {user_id!r}")
        return User(row["id"], row["name"], float(row["created_at"]))

    async def by_name(self, name: str) -> User | None:
        row = await self._db.read(lambda c: c.fetchone("SELECT id, name, created_at FROM users WHERE name = ?", name))
        return None if row is None else User(row["id"], row["name"], float(row["created_at"]))

    async def issue_token(
        self, user_id: str, label: str | None = None, *, expires_at: float | None = None
    ) -> IssuedToken:
        """A new token for ``user_id``; ``expires_at`` (unix seconds) ends its validity, None: never."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = new_id()
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                token_id,
                user_id,
                _hash_token(token),
                label,
                time.time(),
                expires_at,
            )
        )
        return IssuedToken(token_id, user_id, SecretStr(token), expires_at)

    async def authenticate(self, token: str | SecretStr) -> User | None:
        """The user an API token belongs to, or None (unknown or revoked token).

        Raises :class:`TokenExpired` for a token that exists but has expired, so the caller can say so.
        """
        text = token.get_secret_value() if isinstance(token, SecretStr) else token
        digest = _hash_token(text)
        now = time.time()

        async def find(c: Conn) -> Row | None:
            row = await c.fetchone(
                "SELECT u.id, u.name, u.created_at, t.id AS token_id, t.expires_at "
                "FROM api_tokens t JOIN users u ON u.id = t.user_id "
                "WHERE t.token_hash = ? AND t.revoked_at IS NULL",
                digest,
            )
            if row is not None and (row["expires_at"] is None or row["expires_at"] > now):
                await c.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", now, row["token_id"])
            return row

        row = await self._db.write(find)
        if row is None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= now:
            raise TokenExpired(float(row["expires_at"]))
        return User(row["id"], row["name"], float(row["created_at"]))

    async def revoke_token(self, token_id: str) -> None:
        await self._db.write(
            lambda c: c.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", time.time(), token_id)
        )

    async def tokens(self, user_id: str) -> list[TokenInfo]:
        rows = await self._db.read(
            lambda c: c.fetch(
                "SELECT id, user_id, label, created_at, last_used_at, revoked_at, expires_at FROM api_tokens "
                "WHERE user_id = ? ORDER BY created_at",
                user_id,
            )
        )
        return [
            TokenInfo(
                r["id"],
                r["user_id"],
                r["label"],
                float(r["created_at"]),
                r["last_used_at"],
                r["revoked_at"] is not None,
                None if r["expires_at"] is None else float(r["expires_at"]),
            )
            for r in rows
        ]


# --------------------------------------------------------------------------- provider configs


@dataclass(frozen=True, slots=True)
class ProviderConfigRecord:
    """A stored provider config as users see it: the key only masked, header values hidden."""

    id: str
    user_id: str
    provider: str
    label: str | None
    base_url: str | None
    default_model: str | None
    is_default: bool
    status: Status
    api_key_masked: str | None
    extra_header_names: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why the row cannot be used, for status "unreadable"


_PC_COLUMNS = (
    "id, user_id, provider, label, api_key, base_url, default_model, extra_headers, options_json, is_default, status"
)


class ProviderConfigs:
    def __init__(self, db: Database, keys: KeyManager) -> None:
        self._db = db
        self._keys = keys

    async def create(
        self,
        user_id: str,
        provider: str,
        *,
        api_key: str | SecretStr | None = None,
        label: str | None = None,
        base_url: str | None = None,
        default_model: str | None = None,
        extra_headers: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        default: bool = False,
    ) -> ProviderConfigRecord:
        get_profile(provider)  # ConfigError listing valid names
        config_id = new_id()
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        now = time.time()

        async def insert(c: Conn) -> None:
            sealed_key = await self._seal(c, user_id, config_id, "api_key", key)
            sealed_headers = await self._seal(
                c, user_id, config_id, "extra_headers", json.dumps(extra_headers) if extra_headers else None
            )
            has_default = await c.fetchval(
                "SELECT COUNT(*) FROM provider_configs WHERE user_id = ? AND provider = ? AND is_default = 1",
                user_id,
                provider,
            )
            make_default = default or not has_default
            if make_default:
                await c.execute(
                    "UPDATE provider_configs SET is_default = 0 WHERE user_id = ? AND provider = ?", user_id, provider
                )
            await c.execute(
                "INSERT INTO provider_configs (id, user_id, provider, label, api_key, base_url, default_model, "
                "extra_headers, options_json, is_default, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?)",
                config_id,
                user_id,
                provider,
                label,
                sealed_key,
                base_url,
                default_model,
                sealed_headers,
                json.dumps(options or {}),
                1 if make_default else 0,
                now,
                now,
            )

        await self._db.write(insert)
        return await self.get(user_id, config_id)

    async def _seal(self, c: Conn, owner: str, row: str, column: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        return await self._keys.seal(c, AssociatedData(owner, "provider_configs", row, column), value.encode())

    async def _open(self, c: Conn, row: Row) -> tuple[str | None, dict[str, str]] | None:
        """(api key, headers) of a row, or None when any of its secrets cannot be opened."""
        try:
            key = headers = None
            if row["api_key"] is not None:
                ad = AssociatedData(row["user_id"], "provider_configs", row["id"], "api_key")
                key = (await self._keys.open(c, ad, bytes(row["api_key"]))).decode()
            if row["extra_headers"] is not None:
                ad = AssociatedData(row["user_id"], "provider_configs", row["id"], "extra_headers")
                headers = json.loads(await self._keys.open(c, ad, bytes(row["extra_headers"])))
        except DecryptionFailed:
            return None
        return key, headers or {}

    async def _mark(self, config_id: str, status: Status) -> None:
        await self._db.write(
            lambda c: c.execute(
                "UPDATE provider_configs SET status = ?, updated_at = ? WHERE id = ?", status, time.time(), config_id
            )
        )

    async def _record(self, c: Conn, row: Row) -> tuple[ProviderConfigRecord, bool]:
        opened = await self._open(c, row)
        status: Status = "needs_reconfiguration" if opened is None or row["status"] != "ok" else "ok"
        key, headers = opened if opened is not None else (None, {})
        options = json.loads(row["options_json"])
        readable = _valid_text(options, key, list(headers))
        record = ProviderConfigRecord(
            id=row["id"],
            user_id=row["user_id"],
            provider=row["provider"],
            label=row["label"],
            base_url=row["base_url"],
            default_model=row["default_model"],
            is_default=bool(row["is_default"]),
            status=status if readable else "unreadable",
            api_key_masked=mask(key) if readable else None,
            extra_header_names=tuple(sorted(headers)) if readable else (),
            options=options if readable else {},
            error=None if readable else UNREADABLE_TEXT,
        )
        return record, opened is None and row["status"] == "ok"

    async def _records(self, rows: list[Row]) -> list[ProviderConfigRecord]:
        async def build(c: Conn) -> list[tuple[ProviderConfigRecord, bool]]:
            return [await self._record(c, row) for row in rows]

        built = await self._db.read(build)
        for record, newly_broken in built:
            if newly_broken:
                await self._mark(record.id, "needs_reconfiguration")
        return [record for record, _ in built]

    async def list(self, user_id: str) -> list[ProviderConfigRecord]:
        rows = await self._db.read(
            lambda c: c.fetch(
                f"SELECT {_PC_COLUMNS} FROM provider_configs WHERE user_id = ? ORDER BY created_at, id",  # noqa: S608
                user_id,
            )
        )
        return await self._records(rows)

    async def _row(self, user_id: str, config_id: str) -> Row:
        row = await self._db.read(
            lambda c: c.fetchone(
                f"SELECT {_PC_COLUMNS} FROM provider_configs WHERE user_id = ? AND id = ?",  # noqa: S608
                user_id,
                config_id,
            )
        )
        if row is None:
            raise NotFound(f"no provider config {config_id!r} for user {user_id!r}")
        return row

    async def get(self, user_id: str, config_id: str) -> ProviderConfigRecord:
        return (await self._records([await self._row(user_id, config_id)]))[0]

    async def default_for(self, user_id: str, provider: str) -> ProviderConfigRecord | None:
        rows = await self._db.read(
            lambda c: c.fetch(
                f"SELECT {_PC_COLUMNS} FROM provider_configs WHERE user_id = ? AND provider = ? AND is_default = 1",  # noqa: S608
                user_id,
                provider,
            )
        )
        found = await self._records(rows)
        return found[0] if found else None

    async def set_default(self, user_id: str, config_id: str) -> None:
        row = await self._row(user_id, config_id)

        async def update(c: Conn) -> None:
            await c.execute(
                "UPDATE provider_configs SET is_default = 0 WHERE user_id = ? AND provider = ?",
                user_id,
                row["provider"],
            )
            await c.execute("UPDATE provider_configs SET is_default = 1 WHERE id = ?", config_id)

        await self._db.write(update)

    async def update_secrets(
        self,
        user_id: str,
        config_id: str,
        *,
        api_key: str | SecretStr | None,
        extra_headers: dict[str, str] | None = None,
    ) -> ProviderConfigRecord:
        """Re-enter the secrets of a config (the fix for ``needs_reconfiguration``); status becomes ``ok``."""
        await self._row(user_id, config_id)
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key

        async def update(c: Conn) -> None:
            await c.execute(
                "UPDATE provider_configs SET api_key = ?, extra_headers = ?, status = 'ok', updated_at = ? "
                "WHERE id = ?",
                await self._seal(c, user_id, config_id, "api_key", key),
                await self._seal(
                    c, user_id, config_id, "extra_headers", json.dumps(extra_headers) if extra_headers else None
                ),
                time.time(),
                config_id,
            )

        await self._db.write(update)
        return await self.get(user_id, config_id)

    async def delete(self, user_id: str, config_id: str) -> None:
        await self._db.write(
            lambda c: c.execute("DELETE FROM provider_configs WHERE user_id = ? AND id = ?", user_id, config_id)
        )

    async def resolve(self, user_id: str, config_id: str, **overrides: Any) -> ProviderConfig:
        """The config with its real key, for the code that calls the provider (and nothing else).

        A config whose secrets cannot be opened is marked ``needs_reconfiguration`` and refused with a
        ConfigError saying to re-enter the key.
        """
        row = await self._row(user_id, config_id)
        opened = await self._db.read(lambda c: self._open(c, row))
        if opened is None or row["status"] != "ok":
            if opened is None:
                await self._mark(config_id, "needs_reconfiguration")
            label = row["label"] or config_id
            raise ConfigError(
                f"provider config {label!r} ({row['provider']}) needs reconfiguration: its stored key cannot be "
                "decrypted with the configured master key. Re-enter the API key for this config."
            )
        key, headers = opened
        options = json.loads(row["options_json"])
        if not _valid_text(options, key, headers):
            raise ConfigError(f"provider config {row['label'] or config_id!r}: {UNREADABLE_TEXT}")
        return ProviderConfig(
            provider=row["provider"],
            api_key=SecretStr(key) if key is not None else None,
            base_url=row["base_url"],
            default_model=row["default_model"],
            extra_headers=headers,
            options=options,
            label=row["label"] or config_id,
            **overrides,
        )


# --------------------------------------------------------------------------- MCP servers


@dataclass(frozen=True, slots=True)
class McpServerRecord:
    """An MCP server config as users see it: env and header values masked."""

    id: str
    owner: str | None  # None: global (every user sees it)
    name: str
    config: dict[str, Any]
    env_masked: dict[str, str]
    headers_masked: dict[str, str]
    status: Status
    error: str | None = None  # why the row cannot be used, for status "unreadable"


@dataclass(frozen=True, slots=True)
class McpServerSecrets:
    """The full config for the code that connects to the server. ``repr`` hides env and header values."""

    name: str
    config: dict[str, Any]
    env: dict[str, str] = field(repr=False)
    headers: dict[str, str] = field(repr=False)


class McpServers:
    def __init__(self, db: Database, keys: KeyManager) -> None:
        self._db = db
        self._keys = keys

    async def save(
        self,
        owner: str | None,
        name: str,
        config: dict[str, Any],
        *,
        env: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> McpServerRecord:
        """Create or replace the server ``name`` for ``owner`` (None = global). ``config`` holds no secrets."""
        owner_key = owner or GLOBAL_OWNER
        now = time.time()

        async def upsert(c: Conn) -> str:
            existing = await c.fetchval("SELECT id FROM mcp_servers WHERE owner = ? AND name = ?", owner_key, name)
            server_id = str(existing) if existing else new_id()
            sealed_env = await self._seal(c, owner_key, server_id, "env", env)
            sealed_headers = await self._seal(c, owner_key, server_id, "headers", headers)
            if existing:
                await c.execute(
                    "UPDATE mcp_servers SET config_json = ?, env = ?, headers = ?, status = 'ok', updated_at = ? "
                    "WHERE id = ?",
                    json.dumps(config),
                    sealed_env,
                    sealed_headers,
                    now,
                    server_id,
                )
            else:
                await c.execute(
                    "INSERT INTO mcp_servers "
                    "(id, owner, name, config_json, env, headers, status, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'ok', ?, ?)",
                    server_id,
                    owner_key,
                    name,
                    json.dumps(config),
                    sealed_env,
                    sealed_headers,
                    now,
                    now,
                )
            return server_id

        await self._db.write(upsert)
        found = [s for s in await self.list(owner, include_global=False) if s.name == name]
        return found[0]

    async def _seal(self, c: Conn, owner: str, row: str, column: str, value: dict[str, str] | None) -> bytes | None:
        if not value:
            return None
        return await self._keys.seal(c, AssociatedData(owner, "mcp_servers", row, column), json.dumps(value).encode())

    async def _open(self, c: Conn, row: Row) -> tuple[dict[str, str], dict[str, str]] | None:
        opened: list[dict[str, str]] = []
        for column in ("env", "headers"):
            blob = row[column]
            if blob is None:
                opened.append({})
                continue
            try:
                ad = AssociatedData(row["owner"], "mcp_servers", row["id"], column)
                opened.append(json.loads(await self._keys.open(c, ad, bytes(blob))))
            except DecryptionFailed:
                return None
        return opened[0], opened[1]

    async def list(self, user_id: str | None, *, include_global: bool = True) -> list[McpServerRecord]:
        """The user's servers (and the global ones), or only the global ones when ``user_id`` is None."""
        owners = [user_id or GLOBAL_OWNER] + ([GLOBAL_OWNER] if include_global and user_id else [])

        async def build(c: Conn) -> list[tuple[McpServerRecord, bool]]:
            rows = await c.fetch(
                "SELECT id, owner, name, config_json, env, headers, status FROM mcp_servers WHERE owner IN (?, ?) "
                "ORDER BY owner, name",
                owners[0],
                owners[-1],
            )
            out = []
            for row in rows:
                opened = await self._open(c, row)
                env, headers = opened if opened is not None else ({}, {})
                status: Status = "ok" if opened is not None and row["status"] == "ok" else "needs_reconfiguration"
                config = json.loads(row["config_json"])
                readable = _valid_text(config, env, headers)
                if not readable:
                    status, config, env, headers = "unreadable", {}, {}, {}
                record = McpServerRecord(
                    id=row["id"],
                    owner=row["owner"] or None,
                    name=row["name"],
                    config=config,
                    env_masked={k: mask(v) or "" for k, v in env.items()},
                    headers_masked={k: mask(v) or "" for k, v in headers.items()},
                    status=status,
                    error=None if readable else UNREADABLE_TEXT,
                )
                out.append((record, opened is None and row["status"] == "ok"))
            return out

        built = await self._db.read(build)
        for record, broken in built:
            if broken:
                await self._mark_broken(record.id)
        return [record for record, _ in built]

    async def _mark_broken(self, server_id: str) -> None:
        await self._db.write(
            lambda c: c.execute("UPDATE mcp_servers SET status = 'needs_reconfiguration' WHERE id = ?", server_id)
        )

    async def resolve(self, user_id: str | None, name: str) -> McpServerSecrets:
        """The user's server ``name`` (falling back to a global one) with its secrets, for connecting."""

        async def find(c: Conn) -> tuple[Row | None, tuple[dict[str, str], dict[str, str]] | None]:
            for owner in (user_id or GLOBAL_OWNER, GLOBAL_OWNER):
                row = await c.fetchone(
                    "SELECT id, owner, name, config_json, env, headers FROM mcp_servers WHERE owner = ? AND name = ?",
                    owner,
                    name,
                )
                if row is not None:
                    return row, await self._open(c, row)
            return None, None

        row, opened = await self._db.read(find)
        if row is None:
            raise NotFound(f"no MCP server named {name!r} for this user or globally")
        if opened is None:
            await self._mark_broken(row["id"])
            raise ConfigError(
                f"MCP server {name!r} needs reconfiguration: its stored env/headers cannot be decrypted with the "
                "configured master key. Re-enter them."
            )
        config = json.loads(row["config_json"])
        if not _valid_text(config, opened):
            raise ConfigError(f"MCP server {name!r}: {UNREADABLE_TEXT}")
        return McpServerSecrets(name=name, config=config, env=opened[0], headers=opened[1])

    async def delete(self, owner: str | None, name: str) -> None:
        await self._db.write(
            lambda c: c.execute("DELETE FROM mcp_servers WHERE owner = ? AND name = ?", owner or GLOBAL_OWNER, name)
        )


# --------------------------------------------------------------------------- sessions, messages, tool calls


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: str
    provider_config_id: str | None
    model: str | None
    title: str | None
    metadata: dict[str, Any]
    message_count: int
    created_at: float
    running: bool = False  # a live run claim holds the session (see storage.claims), as of the read


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    message: Message
    created_at: float


ToolCallStatus = Literal["started", "finished", "interrupted"]


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    session_id: str
    call_id: str
    name: str
    arguments: dict[str, Any]
    status: ToolCallStatus
    result: ToolResultPart | None
    started_at: float
    finished_at: float | None


class Sessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        user_id: str,
        *,
        provider_config_id: str | None = None,
        model: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionRecord:
        record = new_session_record(
            user_id, provider_config_id=provider_config_id, model=model, title=title, metadata=metadata
        )
        await write_inline(self._db, lambda c: insert_session(c, record))
        return record

    @staticmethod
    def _record(row: Row) -> SessionRecord:
        return SessionRecord(
            id=row["id"],
            user_id=row["user_id"],
            provider_config_id=row["provider_config_id"],
            model=row["model"],
            title=row["title"],
            metadata=json.loads(row["metadata_json"]),
            message_count=int(row["message_count"]),
            created_at=float(row["created_at"]),
            running=bool(row["running"]),
        )

    def _select(self, where: str) -> str:
        running = live_claim_sql(self._db.dialect)
        return f"SELECT *, CASE WHEN {running} THEN 1 ELSE 0 END AS running FROM sessions WHERE {where}"  # noqa: S608

    async def get(self, session_id: str) -> SessionRecord:
        row = await self._db.read(lambda c: c.fetchone(self._select("id = ?"), session_id))
        if row is None:
            raise NotFound(f"no session with id {session_id!r}")
        return self._record(row)

    async def list(self, user_id: str) -> list[SessionRecord]:
        rows = await self._db.read(lambda c: c.fetch(self._select("user_id = ? ORDER BY created_at, id"), user_id))
        return [self._record(r) for r in rows]

    async def delete(self, session_id: str, *, unless_running: bool = False) -> bool:
        """Delete the session (with its messages and tool calls); with ``unless_running``, only when no live
        run claim holds it, in the same statement. Returns whether a row was deleted."""
        sql = "DELETE FROM sessions WHERE id = ?"
        if unless_running:
            sql += f" AND NOT {live_claim_sql(self._db.dialect)}"
        return await self._db.write(lambda c: c.rowcount(sql, session_id)) == 1


def new_session_record(
    user_id: str,
    *,
    provider_config_id: str | None = None,
    model: str | None = None,
    title: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> SessionRecord:
    """A new session's row as it will be stored (written by :func:`insert_session`)."""
    return SessionRecord(
        id=new_id(),
        user_id=user_id,
        provider_config_id=provider_config_id,
        model=model,
        title=title,
        metadata=dict(metadata or {}),
        message_count=0,
        created_at=time.time(),
    )


async def insert_session(c: Conn, record: SessionRecord) -> None:
    """Insert a session row inside the caller's transaction."""
    await c.execute(
        "INSERT INTO sessions (id, user_id, provider_config_id, model, title, metadata_json, message_count, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
        record.id,
        record.user_id,
        record.provider_config_id,
        record.model,
        record.title,
        json.dumps(record.metadata),
        record.created_at,
        record.created_at,
    )


async def append_messages(c: Conn, session_id: str, messages: list[Message]) -> list[int]:
    """Append inside the caller's transaction; the session row's counter hands out the sequence numbers."""
    now = time.time()
    last = await c.fetchval(
        "UPDATE sessions SET message_count = message_count + ?, updated_at = ? WHERE id = ? RETURNING message_count",
        len(messages),
        now,
        session_id,
    )
    if last is None:
        raise NotFound(f"no session with id {session_id!r}")
    first = int(last) - len(messages) + 1
    seqs = list(range(first, int(last) + 1))
    await c.executemany(
        "INSERT INTO messages (session_id, seq, role, body, created_at) VALUES (?, ?, ?, ?, ?)",
        [(session_id, seq, m.role, m.model_dump_json(), now) for seq, m in zip(seqs, messages, strict=True)],
    )
    return seqs


class Messages:
    """Ordered, append-only conversation history (``providers.types.Message`` as JSON)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, session_id: str, *messages: Message) -> list[int]:
        """Append messages durably; returns their sequence numbers (1-based, gap-free per session)."""
        return await write_inline(self._db, lambda c: append_messages(c, session_id, list(messages)))

    async def list(self, session_id: str, *, after: int = 0) -> list[StoredMessage]:
        rows = await self._db.read(
            lambda c: c.fetch(
                "SELECT seq, body, created_at FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq",
                session_id,
                after,
            )
        )
        return [
            StoredMessage(int(r["seq"]), Message.model_validate_json(r["body"]), float(r["created_at"])) for r in rows
        ]


@dataclass(frozen=True, slots=True)
class ToolStart:
    """A tool call about to run, to record as started (see :meth:`ToolCalls.start`)."""

    call_id: str
    name: str
    arguments: dict[str, Any]


async def insert_tool_starts(c: Conn, session_id: str, starts: Sequence[ToolStart]) -> None:
    """Record tool calls as started inside the caller's transaction."""
    now = time.time()
    rows = [(session_id, s.call_id, s.name, json.dumps(s.arguments), now) for s in starts]
    sql = (
        "INSERT INTO tool_calls (session_id, call_id, name, arguments_json, status, started_at) "
        "VALUES (?, ?, ?, ?, 'started', ?)"
    )
    if len(rows) == 1:
        await c.execute(sql, *rows[0])
    else:
        await c.executemany(sql, rows)


class ToolCalls:
    """Tool calls as started / finished / interrupted, so a resumed session never repeats a finished call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, session_id: str, call_id: str, name: str, arguments: dict[str, Any]) -> None:
        starts = [ToolStart(call_id, name, arguments)]
        await write_inline(self._db, lambda c: insert_tool_starts(c, session_id, starts))

    async def finish(
        self,
        session_id: str,
        call_id: str,
        result: ToolResultPart,
        *,
        sync: bool = True,
        open_attempt: OpenAttempt | None = None,
    ) -> None:
        """Record the call finished with ``result``. ``sync=False`` (see ``Database.write``) suits a caller
        whose next synced commit follows before anything depends on the record surviving a power cut; until
        then a power cut leaves the call "started", which resume treats as possibly run (never repeated
        unless the tool is read-only or idempotent). ``open_attempt``: the model call that follows, recorded
        as open in the same commit (see :mod:`storage.attempts`)."""
        await self._end(session_id, call_id, "finished", result, sync, open_attempt)

    async def interrupt(self, session_id: str, call_id: str, result: ToolResultPart | None = None) -> None:
        await self._end(session_id, call_id, "interrupted", result, True, None)

    async def _end(
        self,
        session_id: str,
        call_id: str,
        status: ToolCallStatus,
        result: ToolResultPart | None,
        sync: bool,
        open_attempt: OpenAttempt | None,
    ) -> None:
        async def end(c: Conn) -> int:
            changed = await c.rowcount(
                "UPDATE tool_calls SET status = ?, result_json = ?, is_error = ?, finished_at = ? "
                "WHERE session_id = ? AND call_id = ? AND status = 'started'",
                status,
                result.model_dump_json() if result is not None else None,
                1 if result is not None and result.is_error else 0,
                time.time(),
                session_id,
                call_id,
            )
            if open_attempt is not None:
                await insert_open_attempt(c, open_attempt)
            return changed

        changed = await write_inline(self._db, end, sync=sync)
        if changed == 0:
            raise NotFound(f"no started tool call {call_id!r} in session {session_id!r}")

    async def interrupt_open(self, session_id: str) -> int:
        """Mark every still-started call of a session interrupted (after a crash); returns how many."""
        return await self._db.write(
            lambda c: c.rowcount(
                "UPDATE tool_calls SET status = 'interrupted', finished_at = ? "
                "WHERE session_id = ? AND status = 'started'",
                time.time(),
                session_id,
            )
        )

    async def list(self, session_id: str) -> list[ToolCallRecord]:
        rows = await self._db.read(
            lambda c: c.fetch("SELECT * FROM tool_calls WHERE session_id = ? ORDER BY started_at, call_id", session_id)
        )
        return [
            ToolCallRecord(
                session_id=r["session_id"],
                call_id=r["call_id"],
                name=r["name"],
                arguments=json.loads(r["arguments_json"]),
                status=r["status"],
                result=ToolResultPart.model_validate_json(r["result_json"]) if r["result_json"] else None,
                started_at=float(r["started_at"]),
                finished_at=r["finished_at"],
            )
            for r in rows
        ]
