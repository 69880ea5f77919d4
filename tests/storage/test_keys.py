# ruff: noqa: PT018 - compound asserts keep each case on one line
"""Secrets in the database: needs_reconfiguration, master-key rotation (online, resumable), data-key rotation."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import anyio
import pytest

from providers.errors import ConfigError
from storage import Keyring, SQLStore, open_store
from storage.crypto import wrap_data_key
from tests.storage.conftest import KEY_OTHER, KEY_V1, KEY_V2, b64, start_worker

pytestmark = pytest.mark.anyio

RING_V2 = Keyring.single(KEY_V1).with_current("v2", KEY_V2)


def api_key(i: int) -> str:
    return f"sk-unit-test-key-{i:04d}-ZZZZ"


async def make_users(store: SQLStore, count: int) -> list[tuple[str, str]]:
    """``count`` users with one provider config each: [(user id, config id)]."""
    made = []
    for i in range(count):
        user = await store.users.create(f"user{i}")
        config = await store.provider_configs.create(user.id, "anthropic", api_key=api_key(i))
        made.append((user.id, config.id))
    return made


async def test_wrong_master_key_for_a_row_means_needs_reconfiguration(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        (alice, alice_cfg), (bob, bob_cfg) = await make_users(store, 2)
        await store.mcp_servers.save(alice, "files", {"command": "x"}, env={"TOKEN": "mcp-token-123456"})
        # Alice's data key gets wrapped by a different master key under the same label: what a database
        # restored next to the wrong key file looks like for her rows.
        row = await store.db.read(lambda c: c.fetchone("SELECT generation FROM data_keys WHERE owner = ?", alice))
        assert row is not None
        _, wrapped = wrap_data_key(Keyring.single(KEY_OTHER), alice, int(row["generation"]), bytes(32))
        await store.db.write(lambda c: c.execute("UPDATE data_keys SET wrapped = ? WHERE owner = ?", wrapped, alice))

    async with await open_store(db_url, keyring=keyring) as store:
        [broken] = await store.provider_configs.list(alice)
        assert broken.status == "needs_reconfiguration" and broken.api_key_masked is None
        [fine] = await store.provider_configs.list(bob)
        assert fine.status == "ok" and fine.api_key_masked == "****ZZZZ"
        with pytest.raises(ConfigError, match="needs reconfiguration"):
            await store.provider_configs.resolve(alice, alice_cfg)
        [server] = await store.mcp_servers.list(alice, include_global=False)
        assert server.status == "needs_reconfiguration"
        status = await store.db.read(
            lambda c: c.fetchval("SELECT status FROM provider_configs WHERE id = ?", alice_cfg)
        )
        assert status == "needs_reconfiguration"  # persisted, not silently dropped
        # re-entering the key fixes it (a fresh data key generation is made)
        fixed = await store.provider_configs.update_secrets(alice, alice_cfg, api_key="sk-new-key-for-alice-9876")
        assert fixed.status == "ok"
        resolved = await store.provider_configs.resolve(alice, alice_cfg)
        assert resolved.api_key is not None and resolved.api_key.get_secret_value() == "sk-new-key-for-alice-9876"
        assert (await store.provider_configs.resolve(bob, bob_cfg)).api_key is not None


async def test_master_rotation_while_50_readers_decrypt(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        users = await make_users(store, 30)
    async with (
        await open_store(db_url, keyring=RING_V2) as readers,
        await open_store(db_url, keyring=RING_V2) as rotator,
    ):
        reads = 0
        done = anyio.Event()

        async def reader(seed: int) -> None:
            nonlocal reads
            rng = random.Random(seed)
            while not done.is_set() or reads < 200:
                i = rng.randrange(len(users))
                config = await readers.provider_configs.resolve(*users[i])
                assert config.api_key is not None and config.api_key.get_secret_value() == api_key(i)
                reads += 1
                await anyio.sleep(0)

        async def rotate() -> None:
            report = await rotator.keys.rotate_master_key(batch_size=3, pause=0.01)
            assert report.rewrapped == 30 and report.remaining == 0 and not report.failed
            done.set()

        async with anyio.create_task_group() as tg:
            for seed in range(50):
                tg.start_soon(reader, seed)
            tg.start_soon(rotate)
        assert await rotator.keys.versions_in_use() == {"v2": 30}
    # the old key can now be dropped
    async with await open_store(db_url, keyring=Keyring.single(KEY_V2, "v2")) as store:
        config = await store.provider_configs.resolve(*users[7])
        assert config.api_key is not None and config.api_key.get_secret_value() == api_key(7)


async def test_rotation_killed_half_way_then_resumed(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        users = await make_users(store, 12)
    env = {"ROUTEKIT_MASTER_KEY": f"v2:{b64(KEY_V2)},v1:{b64(KEY_V1)}"}
    proc = start_worker("rotate", db_url, "2", "0.3", env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("batch"), proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    async with await open_store(db_url, keyring=RING_V2) as store:
        versions = await store.keys.versions_in_use()
        assert versions.get("v1", 0) > 0 and versions.get("v2", 0) > 0  # really stopped half-way
        for i, ids in enumerate(users):  # mixed state reads fine
            assert (await store.provider_configs.resolve(*ids)).api_key.get_secret_value() == api_key(i)  # type: ignore[union-attr]
        report = await store.keys.rotate_master_key(batch_size=2)
        assert report.remaining == 0 and report.rewrapped == versions["v1"]
        assert await store.keys.versions_in_use() == {"v2": 12}
    async with await open_store(db_url, keyring=Keyring.single(KEY_V2, "v2")) as store:
        statuses = {c.status for uid, _ in users for c in await store.provider_configs.list(uid)}
        assert statuses == {"ok"}


async def test_data_key_rotation_reseals_everything(store: SQLStore) -> None:
    [(user, config_id)] = await make_users(store, 1)
    await store.mcp_servers.save(user, "files", {"command": "x"}, env={"TOKEN": "mcp-token-abcdef"})
    await store.oauth.storage(user, "gh").set_client_info(
        __import__("mcp.shared.auth", fromlist=["x"]).OAuthClientInformationFull(client_id="c", redirect_uris=None)
    )
    before = await store.db.read(lambda c: c.fetchone("SELECT api_key FROM provider_configs WHERE id = ?", config_id))
    report = await store.keys.rotate_data_key(user)
    assert report.rewrapped == 3 and not report.failed
    after = await store.db.read(lambda c: c.fetchone("SELECT api_key FROM provider_configs WHERE id = ?", config_id))
    assert before is not None and after is not None and bytes(before["api_key"]) != bytes(after["api_key"])
    gens = await store.db.read(lambda c: c.fetch("SELECT generation, active FROM data_keys WHERE owner = ?", user))
    assert [(int(g["generation"]), int(g["active"])) for g in gens] == [(2, 1)]
    assert (await store.provider_configs.resolve(user, config_id)).api_key.get_secret_value() == api_key(0)  # type: ignore[union-attr]
    assert (await store.mcp_servers.resolve(user, "files")).env == {"TOKEN": "mcp-token-abcdef"}
    info = await store.oauth.storage(user, "gh").get_client_info()
    assert info is not None and info.client_id == "c"


async def test_raw_database_contains_no_secret(db_url: str, keyring: Keyring, tmp_path: Path) -> None:
    secrets = ["sk-raw-search-key-111111", "hdr-raw-search-222222", "env-raw-search-333333", "oauth-raw-search-444444"]
    async with await open_store(db_url, keyring=keyring) as store:
        user = await store.users.create("ivy")
        await store.provider_configs.create(user.id, "openai", api_key=secrets[0], extra_headers={"X-K": secrets[1]})
        await store.mcp_servers.save(user.id, "s", {"url": "https://x.example"}, env={"E": secrets[2]})
        from mcp.shared.auth import OAuthToken

        await store.oauth.storage(user.id, "s").set_tokens(OAuthToken(access_token=secrets[3]))
        needles = [s.encode() for s in secrets] + [KEY_V1, b64(KEY_V1).encode()]
        if store.dialect == "sqlite":
            path = Path(db_url.removeprefix("sqlite:///"))
            files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
            assert any(p.name.endswith("-wal") for p in files)  # the WAL is searched too
            blobs = [p.read_bytes() for p in files]
        else:
            tables = ["users", "provider_configs", "mcp_servers", "oauth_tokens", "data_keys", "master_keys"]
            blobs = []
            for table in tables:
                rows = await store.db.read(lambda c, t=table: c.fetch(f"SELECT x::text AS t FROM {t} x"))  # type: ignore[misc]
                blobs.append("\n".join(r["t"] for r in rows).encode())
        assert sum(len(b) for b in blobs) > 0
        for blob in blobs:
            for needle in needles:
                assert needle not in blob
                if store.dialect == "postgres":
                    assert needle.hex().encode() not in blob  # bytea shows as hex text
