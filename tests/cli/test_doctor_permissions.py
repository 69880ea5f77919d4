"""``routekit doctor`` checks that the data directory and the database files are private to the user."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)  # inherited by the routekit subprocesses
    try:
        yield
    finally:
        os.umask(old)


def test_doctor_on_a_fresh_home_then_on_loosened_modes(cli: Cli, loose_umask: None) -> None:
    cli.json("usage")  # creates the home and the database under the loose umask
    home, db = cli.home, cli.home / "routekit.db"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    checks = {c["name"]: c for c in cli.json("doctor")}
    assert checks["data permissions"]["status"] == "ok", checks["data permissions"]

    home.chmod(0o755)
    db.chmod(0o644)
    checks = {c["name"]: c for c in cli.json("doctor")}  # a warning: exit 0
    check = checks["data permissions"]
    assert check["status"] == "warn"
    assert f"{home} is 755" in check["detail"]
    assert f"{db} is 644" in check["detail"]
    assert check["fix"].startswith(f"chmod 700 {home} && chmod 600 {db}")
    text = cli.run("doctor").stdout
    assert "data permissions" in text
    assert "chmod 600" in text

    # The fix it gives works: run it, and doctor is content again.
    assert subprocess.run(["/bin/sh", "-c", check["fix"]], check=False).returncode == 0
    assert {c["name"]: c for c in cli.json("doctor")}["data permissions"]["status"] == "ok"


def test_doctor_names_loose_wal_files(cli: Cli, tmp_path: Path) -> None:
    cli.json("usage")
    db = cli.home / "routekit.db"
    wal = db.with_name("routekit.db-wal")
    wal.touch()
    wal.chmod(0o664)
    check = {c["name"]: c for c in cli.json("doctor")}["data permissions"]
    assert check["status"] == "warn"
    assert f"{wal} is 664" in check["detail"]
    assert str(wal) in check["fix"]
