"""OAuth tokens for MCP servers, sealed per user and server.

:class:`StoredTokenStorage` implements the official ``mcp`` SDK's client ``TokenStorage`` protocol
(``mcp.client.auth.TokenStorage``), so the MCP bridge can hand it straight to ``OAuthClientProvider``.
A token that cannot be decrypted reads as "no token": the SDK then runs the authorization flow again,
which is the reconfiguration a user needs, instead of a crash.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from storage._db import Conn, Database, new_id
from storage.crypto import AssociatedData
from storage.errors import DecryptionFailed
from storage.keys import GLOBAL_OWNER, KeyManager

if TYPE_CHECKING:  # importing the mcp SDK costs ~1 s; only token reads need it at run time
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


class StoredTokenStorage:
    """``mcp.client.auth.TokenStorage`` backed by the store, for one (user, server) pair."""

    def __init__(self, db: Database, keys: KeyManager, user_id: str | None, server: str) -> None:
        self._db = db
        self._keys = keys
        self.owner = user_id or GLOBAL_OWNER
        self.server = server

    def __repr__(self) -> str:
        return f"StoredTokenStorage(owner={self.owner!r}, server={self.server!r})"

    async def _get(self, column: str) -> bytes | None:
        async def read(c: Conn) -> bytes | None:
            row = await c.fetchone(
                f"SELECT id, {column} FROM oauth_tokens WHERE owner = ? AND server = ?",  # noqa: S608 - constant column
                self.owner,
                self.server,
            )
            if row is None or row[column] is None:
                return None
            ad = AssociatedData(self.owner, "oauth_tokens", row["id"], column)
            try:
                return await self._keys.open(c, ad, bytes(row[column]))
            except DecryptionFailed:
                return None

        return await self._db.read(read)

    async def _set(self, column: str, plaintext: bytes) -> None:
        async def write(c: Conn) -> None:
            await c.execute(
                "INSERT INTO oauth_tokens (id, owner, server, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (owner, server) DO NOTHING",
                new_id(),
                self.owner,
                self.server,
                time.time(),
            )
            row_id = await c.fetchval(
                "SELECT id FROM oauth_tokens WHERE owner = ? AND server = ?", self.owner, self.server
            )
            sealed = await self._keys.seal(
                c, AssociatedData(self.owner, "oauth_tokens", str(row_id), column), plaintext
            )
            await c.execute(
                f"UPDATE oauth_tokens SET {column} = ?, updated_at = ? WHERE id = ?",  # noqa: S608 - constant column
                sealed,
                time.time(),
                row_id,
            )

        await self._db.write(write)

    async def get_tokens(self) -> OAuthToken | None:
        data = await self._get("tokens")
        from mcp.shared.auth import OAuthToken

        return None if data is None else OAuthToken.model_validate_json(data)

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._set("tokens", tokens.model_dump_json().encode())

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        data = await self._get("client_info")
        from mcp.shared.auth import OAuthClientInformationFull

        return None if data is None else OAuthClientInformationFull.model_validate_json(data)

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._set("client_info", client_info.model_dump_json().encode())

    async def clear(self) -> None:
        await self._db.write(
            lambda c: c.execute("DELETE FROM oauth_tokens WHERE owner = ? AND server = ?", self.owner, self.server)
        )


class OAuthTokens:
    def __init__(self, db: Database, keys: KeyManager) -> None:
        self._db = db
        self._keys = keys

    def storage(self, user_id: str | None, server: str) -> StoredTokenStorage:
        """The token storage for ``user_id`` (None: global) and the MCP server named ``server``."""
        return StoredTokenStorage(self._db, self._keys, user_id, server)
