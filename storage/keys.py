"""Data keys in the database, master-key checks, and both kinds of rotation.

Data keys are never cached: every open reads the wrapped key in the same statement as its master-key
version, so a concurrent master-key rotation (which rewrites both together) can never be observed
half-done by a reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from storage._db import Conn, Database
from storage.crypto import (
    MASTER_KEY_ENV,
    AssociatedData,
    Keyring,
    generate_data_key,
    make_key_check,
    open_sealed,
    seal,
    sealed_generation,
    unwrap_data_key,
    verify_key_check,
    wrap_data_key,
)
from storage.errors import DecryptionFailed, MasterKeyError

GLOBAL_OWNER = ""  # owner of global rows (MCP servers shared by every user)

# Every sealed column: (table, id column, owner column, sealed columns, status column or None).
SEALED_COLUMNS: tuple[tuple[str, str, str, tuple[str, ...], str | None], ...] = (
    ("provider_configs", "id", "user_id", ("api_key", "extra_headers"), "status"),
    ("mcp_servers", "id", "owner", ("env", "headers"), "status"),
    ("oauth_tokens", "id", "owner", ("tokens", "client_info"), None),
)


@dataclass(frozen=True, slots=True)
class RotationReport:
    """Outcome of a rotation. ``failed`` lists data keys (owner, generation) no configured key could open."""

    rewrapped: int
    failed: tuple[tuple[str, int], ...]
    remaining: int


class KeyManager:
    """Seals and opens secrets with per-owner data keys wrapped by the keyring's master keys."""

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self._db = db
        self.keyring = keyring

    def __repr__(self) -> str:
        return f"KeyManager({self.keyring!r})"

    # ------------------------------------------------------------------ start-up check

    async def verify(self) -> None:
        """Refuse to start when the configured master keys do not match the database. Changes nothing then."""
        await self._db.write(self._verify)

    async def _verify(self, conn: Conn) -> None:
        known = {
            r["version"]: bytes(r["key_check"]) for r in await conn.fetch("SELECT version, key_check FROM master_keys")
        }
        for version in self.keyring.versions:
            if version in known and not verify_key_check(self.keyring, version, known[version]):
                raise MasterKeyError(
                    f"the master key given as version {version!r} is not the key this database was encrypted with. "
                    f"Restore the original key in {MASTER_KEY_ENV} (or the key file). To introduce a new key, give "
                    f"it a new version label first in the list, e.g. 'v9:NEWKEY,{version}:OLDKEY'. Nothing was changed."
                )
        rows = await conn.fetch("SELECT DISTINCT master_version FROM data_keys")
        in_use = {r["master_version"] for r in rows}
        if in_use and not in_use & set(self.keyring.versions):
            raise MasterKeyError(
                f"none of the configured master keys (versions {sorted(self.keyring.versions)}) can open this "
                f"database's secrets, which are wrapped with versions {sorted(in_use)}. Set {MASTER_KEY_ENV} to "
                "include those keys (or restore the key file). Nothing was changed."
            )
        current = self.keyring.current
        if current not in known:
            await conn.execute(
                "INSERT INTO master_keys (version, key_check, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (version) DO NOTHING",
                current,
                make_key_check(self.keyring, current),
                time.time(),
            )
            stored = await conn.fetchval("SELECT key_check FROM master_keys WHERE version = ?", current)
            if not verify_key_check(self.keyring, current, bytes(stored)):
                raise MasterKeyError(
                    f"another process registered a different master key as version {current!r}; "
                    "use one key per version."
                )

    # ------------------------------------------------------------------ data keys

    async def _active(self, conn: Conn, owner: str) -> tuple[int, bytes]:
        for _ in range(3):
            row = await conn.fetchone(
                "SELECT generation, master_version, wrapped FROM data_keys WHERE owner = ? AND active = 1", owner
            )
            if row is not None:
                generation = int(row["generation"])
                try:
                    key = unwrap_data_key(self.keyring, row["master_version"], owner, generation, bytes(row["wrapped"]))
                except DecryptionFailed:
                    # The active key is unusable (wrong or missing master key): new secrets get a fresh
                    # generation so that re-entering a secret is how a user fixes needs_reconfiguration.
                    # The old generation stays for rows that may become readable again with the right key.
                    await conn.execute("UPDATE data_keys SET active = 0 WHERE owner = ?", owner)
                    continue
                return generation, key
            latest = await conn.fetchval("SELECT COALESCE(MAX(generation), 0) FROM data_keys WHERE owner = ?", owner)
            generation = int(latest or 0) + 1
            version, wrapped = wrap_data_key(self.keyring, owner, generation, generate_data_key())
            await conn.execute(
                "INSERT INTO data_keys (owner, generation, master_version, wrapped, active, created_at) "
                "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (owner, generation) DO NOTHING",
                owner,
                generation,
                version,
                wrapped,
                time.time(),
            )
        raise DecryptionFailed(f"the data key of owner {owner!r}")  # pragma: no cover - needs a pathological race

    async def _by_generation(self, conn: Conn, owner: str, generation: int) -> bytes:
        row = await conn.fetchone(
            "SELECT master_version, wrapped FROM data_keys WHERE owner = ? AND generation = ?", owner, generation
        )
        if row is None:
            raise DecryptionFailed(f"the data key of owner {owner!r} (generation {generation}, deleted)")
        return unwrap_data_key(self.keyring, row["master_version"], owner, generation, bytes(row["wrapped"]))

    async def seal(self, conn: Conn, ad: AssociatedData, plaintext: bytes) -> bytes:
        generation, key = await self._active(conn, ad.owner)
        return seal(key, generation, ad, plaintext)

    async def open(self, conn: Conn, ad: AssociatedData, blob: bytes) -> bytes:
        generation = sealed_generation(blob)
        if generation is None:
            raise DecryptionFailed(ad.describe())
        key = await self._by_generation(conn, ad.owner, generation)
        return open_sealed(key, ad, blob)

    # ------------------------------------------------------------------ rotation

    async def versions_in_use(self) -> dict[str, int]:
        """How many data keys each master-key version wraps (an old version can be dropped at 0)."""
        rows = await self._db.read(
            lambda c: c.fetch("SELECT master_version, COUNT(*) AS n FROM data_keys GROUP BY master_version")
        )
        return {r["master_version"]: int(r["n"]) for r in rows}

    async def rotate_master_key(
        self,
        *,
        batch_size: int = 200,
        pause: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> RotationReport:
        """Re-wrap every data key under the keyring's current master key, one committed batch at a time.

        Online: readers keep working (each row's version and wrapped key change together). Resumable: an
        interrupted run leaves some rows on the old version and a new run picks them up. Keys that no
        configured master key opens are reported, left untouched; their rows read as needs_reconfiguration.
        """
        current = self.keyring.current
        failed: set[tuple[str, int]] = set()
        done = 0
        while True:

            async def batch(conn: Conn) -> int:
                rows = await conn.fetch(
                    "SELECT owner, generation, master_version, wrapped FROM data_keys WHERE master_version <> ? "
                    "ORDER BY owner, generation LIMIT ?",
                    current,
                    batch_size + len(failed),
                )
                count = 0
                for row in rows:
                    ident = (row["owner"], int(row["generation"]))
                    if ident in failed or count >= batch_size:
                        continue
                    try:
                        key = unwrap_data_key(self.keyring, row["master_version"], *ident, bytes(row["wrapped"]))
                    except DecryptionFailed:
                        failed.add(ident)
                        continue
                    version, wrapped = wrap_data_key(self.keyring, ident[0], ident[1], key)
                    count += await conn.rowcount(
                        "UPDATE data_keys SET master_version = ?, wrapped = ? "
                        "WHERE owner = ? AND generation = ? AND master_version = ?",
                        version,
                        wrapped,
                        ident[0],
                        ident[1],
                        row["master_version"],
                    )
                return count

            count = await self._db.write(batch)
            if count == 0:
                break
            done += count
            if on_batch is not None:
                on_batch(done)
            if pause:
                await anyio.sleep(pause)
        remaining = sum(n for v, n in (await self.versions_in_use()).items() if v != current)
        return RotationReport(rewrapped=done, failed=tuple(sorted(failed)), remaining=remaining)

    async def rotate_data_key(self, owner: str) -> RotationReport:
        """Give ``owner`` a new data key and re-seal all of their secrets with it, in one transaction.

        Secrets that cannot be opened are left as they are (their rows read as needs_reconfiguration) and
        the old key generations are then kept; otherwise the old generations are deleted.
        """

        async def rotate(conn: Conn) -> RotationReport:
            latest = int(
                await conn.fetchval("SELECT COALESCE(MAX(generation), 0) FROM data_keys WHERE owner = ?", owner) or 0
            )
            generation = latest + 1
            new_key = generate_data_key()
            version, wrapped = wrap_data_key(self.keyring, owner, generation, new_key)
            await conn.execute("UPDATE data_keys SET active = 0 WHERE owner = ?", owner)
            await conn.execute(
                "INSERT INTO data_keys (owner, generation, master_version, wrapped, active, created_at) "
                "VALUES (?, ?, ?, ?, 1, ?)",
                owner,
                generation,
                version,
                wrapped,
                time.time(),
            )
            resealed, failed = 0, 0
            for table, id_col, owner_col, columns, status_col in SEALED_COLUMNS:
                rows = await conn.fetch(
                    f"SELECT {id_col}, {', '.join(columns)} FROM {table} WHERE {owner_col} = ?",  # noqa: S608 - names are constants
                    owner,
                )
                for row in rows:
                    for column in columns:
                        blob = row[column]
                        if blob is None:
                            continue
                        ad = AssociatedData(owner, table, str(row[id_col]), column)
                        try:
                            plain = await self.open(conn, ad, bytes(blob))
                        except DecryptionFailed:
                            failed += 1
                            if status_col:
                                await conn.execute(
                                    f"UPDATE {table} SET {status_col} = 'needs_reconfiguration' WHERE {id_col} = ?",  # noqa: S608
                                    row[id_col],
                                )
                            continue
                        await conn.execute(
                            f"UPDATE {table} SET {column} = ? WHERE {id_col} = ?",  # noqa: S608
                            seal(new_key, generation, ad, plain),
                            row[id_col],
                        )
                        resealed += 1
            if not failed:
                await conn.execute("DELETE FROM data_keys WHERE owner = ? AND generation <> ?", owner, generation)
            return RotationReport(rewrapped=resealed, failed=((owner, latest),) if failed else (), remaining=failed)

        return await self._db.write(rotate)
