# ruff: noqa: PT018 - compound asserts keep each case on one line
"""Opening the store: migrations, bad input (each refused with a message, nothing overwritten), concurrency, crashes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from providers.types import Message
from storage import DatabaseUnavailable, Keyring, MasterKeyError, SchemaTooNew, open_store
from storage.migrations import latest_version
from storage.store import default_url
from tests.storage import pgserver
from tests.storage.conftest import KEY_OTHER, KEY_V1, b64, run_worker, start_worker

pytestmark = pytest.mark.anyio

ENV_V1 = {"ROUTEKIT_MASTER_KEY": b64(KEY_V1)}


async def tables(store: object) -> set[str]:
    db = store.db  # type: ignore[attr-defined]
    if db.dialect == "sqlite":
        rows = await db.read(lambda c: c.fetch("SELECT name FROM sqlite_master WHERE type = 'table'"))
    else:
        rows = await db.read(lambda c: c.fetch("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"))
    return {r["name"] for r in rows}


async def test_migrates_from_empty(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        assert await store.schema_version() == latest_version(store.dialect) == 4
        assert {"users", "usage", "budgets", "messages", "data_keys"} <= await tables(store)
    async with await open_store(db_url, keyring=keyring) as store:  # idempotent
        assert await store.schema_version() == 4


async def test_upgrades_previous_schema_in_place(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring, migrate_to=1) as old:
        assert await old.schema_version() == 1
        assert "budgets" not in await tables(old)
        await old.keys.verify()
        user = await old.users.create("old-user")
        config = await old.provider_configs.create(user.id, "openai", api_key="sk-from-v1-schema-0001")
        session = await old.sessions.create(user.id)
        await old.messages.append(session.id, Message.user("from v1"))
    async with await open_store(db_url, keyring=keyring) as store:
        assert await store.schema_version() == 4
        resolved = await store.provider_configs.resolve(user.id, config.id)
        assert resolved.api_key is not None and resolved.api_key.get_secret_value() == "sk-from-v1-schema-0001"
        assert [m.message.text for m in await store.messages.list(session.id)] == ["from v1"]
        await store.usage.set_budget(user.id, monthly_usd="5", monthly_tokens=None)  # the v2 table works
        assert (await store.usage.check_budget(user.id)).limit_usd == 5
        assert (await store.sessions.get(session.id)).running is False  # the v3 columns: no claim yet
        assert await store.run_claims.claim(session.id, "after-upgrade", 30.0) is not None
        assert (await store.sessions.get(session.id)).running is True


async def test_two_processes_migrate_at_once(db_url: str) -> None:
    procs = [start_worker("migrate", db_url, env=ENV_V1) for _ in range(2)]
    outputs = [p.communicate(timeout=90) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "version 4"
    async with await open_store(db_url, keyring=Keyring.single(KEY_V1)) as store:
        rows = await store.db.read(lambda c: c.fetch("SELECT version FROM schema_migrations ORDER BY version"))
        assert [int(r["version"]) for r in rows] == [1, 2, 3, 4]
        assert len(await store.db.read(lambda c: c.fetch("SELECT * FROM master_keys"))) == 1


async def test_database_newer_than_code_is_refused_untouched(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        await store.db.write(
            lambda c: c.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
        )
    with pytest.raises(SchemaTooNew, match="Upgrade routekit") as info:
        await open_store(db_url, keyring=keyring)
    assert "99" in str(info.value)
    versions = await raw_fetch(db_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(1,), (2,), (3,), (4,), (99,)]
    assert await raw_fetch(db_url, "SELECT COUNT(*) FROM master_keys") == [(1,)]


async def raw_fetch(db_url: str, sql: str) -> list[tuple[object, ...]]:
    """Read the database without routekit (to check that a refused open changed nothing)."""
    if db_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            return [tuple(r) for r in conn.execute(sql)]
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(db_url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_wrong_master_key_refused_nothing_overwritten(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        user = await store.users.create("kim")
        config = await store.provider_configs.create(user.id, "openai", api_key="sk-keep-me-intact-0042")
        before = await store.db.read(lambda c: c.fetch("SELECT version, key_check FROM master_keys"))
    with pytest.raises(MasterKeyError, match="not the key this database was encrypted with") as info:
        await open_store(db_url, keyring=Keyring.single(KEY_OTHER))
    assert b64(KEY_OTHER) not in str(info.value)
    with pytest.raises(MasterKeyError, match="none of the configured master keys"):
        await open_store(db_url, keyring=Keyring.single(KEY_OTHER, "v5"))
    async with await open_store(db_url, keyring=keyring) as store:
        after = await store.db.read(lambda c: c.fetch("SELECT version, key_check FROM master_keys"))
        assert [tuple(r.values()) for r in map(dict, before)] == [tuple(r.values()) for r in map(dict, after)]
        resolved = await store.provider_configs.resolve(user.id, config.id)
        assert resolved.api_key is not None and resolved.api_key.get_secret_value() == "sk-keep-me-intact-0042"


async def test_missing_master_key_refused(
    db_url: str, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        await store.provider_configs.create((await store.users.create("lee")).id, "openai", api_key="sk-lee-000000001")
    monkeypatch.delenv("ROUTEKIT_MASTER_KEY", raising=False)
    key_dir = tmp_path / "keys"
    with pytest.raises(MasterKeyError, match="no master key is configured"):
        await open_store(db_url, key_dir=key_dir)
    assert not (key_dir / "master.key").exists()  # no new key was made up


async def test_malformed_env_key_refused_before_touching_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTEKIT_MASTER_KEY", "definitely-not-a-key")
    with pytest.raises(MasterKeyError, match="not valid base64"):
        await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()


async def test_key_file_and_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTEKIT_MASTER_KEY", raising=False)
    monkeypatch.setenv("ROUTEKIT_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'routekit.db'}"
    async with await open_store() as store:
        user = await store.users.create("max")
        config = await store.provider_configs.create(user.id, "openai", api_key="sk-default-home-0007")
    assert (tmp_path / "home" / "master.key").stat().st_mode & 0o777 == 0o600
    async with await open_store() as store:  # the key file is found again
        assert (await store.provider_configs.resolve(user.id, config.id)).api_key is not None


async def test_unreachable_database_url(tmp_path: Path) -> None:
    port = pgserver.free_port()
    with pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL") as info:
        await open_store(f"postgresql://someone:hunter2secret@127.0.0.1:{port}/nope", keyring=Keyring.single(KEY_V1))
    assert "hunter2secret" not in str(info.value)
    with pytest.raises(DatabaseUnavailable, match="unsupported database URL"):
        await open_store("mysql://x/y", keyring=Keyring.single(KEY_V1))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseUnavailable, match="cannot open SQLite database"):
        await open_store(f"sqlite:///{blocker / 'sub' / 'x.db'}", keyring=Keyring.single(KEY_V1))


async def test_two_processes_append_usage_to_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with await open_store(url, keyring=Keyring.single(KEY_V1)):
        pass
    procs = [start_worker("usage", url, "400", f"p{i}", env=ENV_V1) for i in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=110)
        assert proc.returncode == 0, err
        assert "locked" not in err.lower() and out.strip() == "done"
    async with await open_store(url, keyring=Keyring.single(KEY_V1)) as store:
        for label in ("p0", "p1"):
            rows = await store.usage.rows(user_id=label)
            assert sorted(r["input_tokens"] for r in rows) == list(range(400))


async def test_two_store_instances_share_postgres(pg: pgserver.PgServer, keyring: Keyring) -> None:
    url = pg.createdb("shared_instances")
    async with await open_store(url, keyring=keyring) as a, await open_store(url, keyring=keyring) as b:
        user = await a.users.create("shared")
        config = await a.provider_configs.create(user.id, "openai", api_key="sk-shared-instance-55")
        session = await b.sessions.create(user.id)
        import anyio

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(a.messages.append, session.id, Message.user(f"a{i}"))
                tg.start_soon(b.messages.append, session.id, Message.user(f"b{i}"))
        stored = await a.messages.list(session.id)
        assert [m.seq for m in stored] == list(range(1, 41))
        assert (
            await b.provider_configs.resolve(user.id, config.id)
        ).api_key.get_secret_value() == "sk-shared-instance-55"  # type: ignore[union-attr]
    # a separate process on the same database sees the same data
    result = run_worker("migrate", url, env=ENV_V1)
    assert result.returncode == 0 and result.stdout.strip() == "version 4", result.stderr


async def test_kill_9_during_writes_keeps_every_committed_row(db_url: str, keyring: Keyring) -> None:
    async with await open_store(db_url, keyring=keyring) as store:
        user = await store.users.create("crash")
        session = await store.sessions.create(user.id)
    proc = start_worker("append", db_url, session.id, env=ENV_V1)
    committed = 0
    try:
        assert proc.stdout is not None
        while committed < 60:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "worker ended"
            committed = int(line.split()[1])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for line in proc.stdout:  # lines already written before the kill
            committed = max(committed, int(line.split()[1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    async with await open_store(db_url, keyring=keyring) as store:
        messages = await store.messages.list(session.id)
        seqs = [m.seq for m in messages]
        assert seqs == list(range(1, len(seqs) + 1))  # gap-free
        assert len(seqs) >= committed  # every acknowledged write survived
        assert [m.message.text for m in messages[:committed]] == [f"message {i}" for i in range(1, committed + 1)]
        usage = await store.usage.rows(user_id="crash")
        assert len(usage) == len(seqs)  # message and usage were one transaction
        assert (await store.sessions.get(session.id)).message_count == len(seqs)


def test_default_url_prefers_the_database_url_variable(tmp_path: Path) -> None:
    home = {"ROUTEKIT_HOME": str(tmp_path)}
    assert default_url(home) == f"sqlite:///{tmp_path / 'routekit.db'}"
    shared = {**home, "ROUTEKIT_DATABASE_URL": "postgresql://db.internal/routekit"}
    assert default_url(shared) == "postgresql://db.internal/routekit"
