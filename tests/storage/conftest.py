"""Storage fixtures: one suite over SQLite and a real, throwaway PostgreSQL."""

from __future__ import annotations

import base64
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage import Keyring, SQLStore, open_store
from tests.storage import pgserver

REPO = Path(__file__).resolve().parents[2]
KEY_V1 = bytes(range(32))
KEY_V2 = bytes(range(100, 132))
KEY_OTHER = bytes(range(200, 232))
_counter = itertools.count()


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture(scope="session")
def pg() -> Iterator[pgserver.PgServer]:
    server = pgserver.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'routekit.db'}"
    server: pgserver.PgServer = request.getfixturevalue("pg")
    return server.createdb(f"t{os.getpid()}_{next(_counter)}")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.single(KEY_V1)


@pytest.fixture
async def store(db_url: str, keyring: Keyring) -> AsyncIterator[SQLStore]:
    s = await open_store(db_url, keyring=keyring)
    try:
        yield s
    finally:
        await s.close()


def run_worker(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``tests/storage/_worker.py`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "tests.storage._worker", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_worker(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage._worker", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
