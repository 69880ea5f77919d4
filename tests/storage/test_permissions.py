"""A fresh data directory is private whatever the umask: directory 0700, database and -wal/-shm 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import open_store
from storage.crypto import Keyring

from .conftest import KEY_V1

pytestmark = pytest.mark.anyio


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)  # the loosest: files would be 0666 and directories 0777 if the umask decided
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_explicit_sqlite_url_in_a_fresh_directory(tmp_path: Path, loose_umask: None) -> None:
    home = tmp_path / "new" / "home"
    db = home / "routekit.db"
    store = await open_store(f"sqlite:///{db}", keyring=Keyring.single(KEY_V1))
    try:
        await store.users.create("someone")  # a write: the -wal and -shm files exist now
        wal, shm = db.with_name("routekit.db-wal"), db.with_name("routekit.db-shm")
        assert wal.exists()
        assert shm.exists()
        assert mode(home) == 0o700
        assert {p.name: oct(mode(p)) for p in (db, wal, shm)} == {p.name: "0o600" for p in (db, wal, shm)}
    finally:
        await store.close()


async def test_default_home_with_key_file(tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("ROUTEKIT_HOME", str(home))
    monkeypatch.delenv("ROUTEKIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("ROUTEKIT_MASTER_KEY", raising=False)
    store = await open_store()
    try:
        await store.users.create("someone")
    finally:
        await store.close()
    assert mode(home) == 0o700
    created = sorted(p.name for p in home.iterdir())
    assert "routekit.db" in created
    assert "master.key" in created
    assert {name: oct(mode(home / name)) for name in created} == {name: "0o600" for name in created}


async def test_an_existing_directory_is_left_alone(tmp_path: Path, loose_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)  # the operator's choice (e.g. /srv/data): not ours to change
    store = await open_store(f"sqlite:///{shared / 'x.db'}", keyring=Keyring.single(KEY_V1))
    await store.close()
    assert mode(shared) == 0o755
    assert mode(shared / "x.db") == 0o600  # but the database routekit created is private


def test_the_service_admin_token_file_in_a_fresh_home(tmp_path: Path, loose_umask: None) -> None:
    from agent.http.settings import ADMIN_TOKEN_FILE, resolve_admin_token

    home = tmp_path / "service-home"
    _, token = resolve_admin_token(home, environ={})  # `routekit serve` does this before opening the store
    assert token is not None
    assert mode(home) == 0o700
    assert mode(home / ADMIN_TOKEN_FILE) == 0o600
