"""Versioned SQL migrations, one directory per dialect.

Files are named ``NNNN_name.sql``; the number is the schema version the file brings the database to.
Statements are separated by a line ending in ``;`` (no procedural code, so no ambiguity).
A migration file is never edited once released: changes go into a new file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from storage.errors import SchemaTooNew

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _split(sql: str) -> tuple[str, ...]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return tuple(s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip())


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """All migrations for ``dialect`` ("sqlite" or "postgres"), ordered by version."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath(dialect).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            text = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match.group(1)), match.group(2), _split(text)))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"storage migrations for {dialect} are not numbered 1..n")
    return tuple(found)


def latest_version(dialect: str) -> int:
    return len(migrations(dialect))


def pending(dialect: str, current: int, target: int | None, description: str) -> tuple[Migration, ...]:
    """The migrations to apply; refuses (SchemaTooNew) when the database is ahead of this code."""
    latest = latest_version(dialect)
    if current > latest:
        raise SchemaTooNew(
            f"the database {description} has schema version {current}, but this routekit only knows versions "
            f"up to {latest}. Upgrade routekit to open it; nothing was changed."
        )
    goal = latest if target is None else min(target, latest)
    return tuple(m for m in migrations(dialect) if current < m.version <= goal)


CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)
