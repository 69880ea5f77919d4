"""Private files on disk: the data directory 0700, the database and its -wal/-shm files 0600.

Chat history is stored in plain text in the SQLite file, so what routekit creates is readable by its
owner only, whatever the process umask (modes are set explicitly after creation, not left to the umask).
Existing files and directories are left as they are: ``routekit doctor`` reports looser modes with the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm")


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (missing parents as usual) with mode 0700; an existing directory is not changed."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        return  # created by another process just now (or a file: the caller's open reports it)
    os.chmod(path, PRIVATE_DIR_MODE)  # the umask may have taken bits away (never added): set it exactly


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists. SQLite gives its -wal and -shm files the mode
    of the database file, so creating the (empty, valid) database file first makes all three private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


def sqlite_files(database: Path) -> list[Path]:
    """The database file and those of its -wal/-shm files that exist."""
    side = [database.with_name(database.name + suffix) for suffix in SQLITE_SIDE_FILES]
    return [database, *(p for p in side if p.exists())]


def too_open(path: Path, allowed: int) -> int | None:
    """The mode of ``path`` when it grants more than ``allowed`` (to group or others), else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    return mode if mode & ~allowed & 0o077 else None
