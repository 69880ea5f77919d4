# ruff: noqa: PT018 - compound asserts keep each case on one line
"""API token expiry (schema v4) over SQLite and PostgreSQL: stored, listed, enforced, and upgraded in place."""

from __future__ import annotations

import hashlib
import time

import pytest

from storage import Keyring, SQLStore, TokenExpired, open_store

pytestmark = pytest.mark.anyio


async def test_an_expired_token_is_refused_as_expired(store: SQLStore) -> None:
    user = await store.users.create("erin")
    soon = await store.users.issue_token(user.id, "soon", expires_at=time.time() + 3600)
    gone = await store.users.issue_token(user.id, "gone", expires_at=time.time() - 1)
    forever = await store.users.issue_token(user.id, "forever")
    assert soon.expires_at is not None and gone.expires_at is not None and forever.expires_at is None

    assert await store.users.authenticate(soon.token) == user
    assert await store.users.authenticate(forever.token) == user
    with pytest.raises(TokenExpired, match="expired") as info:
        await store.users.authenticate(gone.token)
    assert info.value.expires_at == pytest.approx(gone.expires_at)
    assert gone.token.get_secret_value() not in str(info.value)

    listed = {t.label: t for t in await store.users.tokens(user.id)}
    assert listed["soon"].expires_at == pytest.approx(soon.expires_at)
    assert listed["forever"].expires_at is None
    assert [label for label, t in sorted(listed.items()) if t.active()] == ["forever", "soon"]
    assert listed["gone"].expired() and not listed["gone"].revoked
    assert listed["gone"].last_used_at is None  # a refused sign-in is not a use
    assert listed["soon"].last_used_at is not None
    assert listed["soon"].expired(now=soon.expires_at + 1)  # judged against the time given

    await store.users.revoke_token(gone.id)  # revoked and expired: unknown, like any revoked token
    assert await store.users.authenticate(gone.token) is None


async def test_tokens_of_an_older_schema_keep_working_after_the_upgrade(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring, migrate_to=2) as old:
        assert await old.schema_version() == 2
        await old.keys.verify()
        user = await old.users.create("from-v2")
        # Written as the v2 code wrote it (the v2 table has no expires_at column).
        await old.db.write(
            lambda c: c.execute(
                "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at) VALUES (?, ?, ?, ?, ?)",
                "t-old",
                user.id,
                hashlib.sha256(b"rk_from-the-v2-schema").hexdigest(),
                "old",
                time.time(),
            )
        )
    async with await open_store(db_url, keyring=keyring) as store:
        assert await store.schema_version() == 4
        assert await store.users.authenticate("rk_from-the-v2-schema") == user
        [info] = await store.users.tokens(user.id)
        assert info.expires_at is None and info.active()
