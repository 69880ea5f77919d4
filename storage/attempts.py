"""Open attempts: model calls that may be in flight, so that a killed process still leaves their usage rows.

The commit that precedes a model call (the prompt's, the last tool call's end, or one of its own when no
commit precedes it) also writes an open attempt; the commit that records the call's usage removes it. What a
process killed in between leaves behind is *settled*: it becomes a usage row with status ``interrupted``,
unknown counts and cost (0 for a local provider), and the same id. Settling happens:

* when the session is resumed (reopened by id): every open attempt of it that no live run claims;
* when the store is opened: attempts of claimed runs (``run_id`` set, the HTTP service) whose claim is no
  longer live, and unclaimed ones (the CLI, the Python API) older than :data:`UNCLAIMED_GRACE_SECONDS`,
  since a call of a live process may take that long.

A run that is still alive when its attempt is settled (a resume racing it) removes the interrupted row again
when it records the call's real usage, so nothing is counted twice. The attempts of one model call share one
open attempt: a call that a retry or fallback had moved on is settled as one row for the call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from providers.types import Usage
from storage._db import Conn, Database, Row, new_id
from storage.claims import now_sql
from storage.usage import UsageEntry, insert_usage, prepare

UNCLAIMED_GRACE_SECONDS = 900.0

_COLUMNS = "id, user_id, session_id, run_id, provider, config_id, model, streamed, started_at"


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    id: str
    user_id: str
    session_id: str | None
    run_id: str | None
    provider: str
    config_id: str | None
    model: str
    streamed: bool
    started_at: float


def new_open_attempt(
    user_id: str,
    provider: str,
    model: str,
    *,
    session_id: str | None = None,
    run_id: str | None = None,
    config_id: str | None = None,
    streamed: bool = False,
) -> OpenAttempt:
    return OpenAttempt(new_id(), user_id, session_id, run_id, provider, config_id, model, streamed, time.time())


async def insert_open_attempt(c: Conn, attempt: OpenAttempt) -> None:
    """Record the attempt as open inside the caller's transaction."""
    await c.execute(
        f"INSERT INTO open_attempts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        attempt.id,
        attempt.user_id,
        attempt.session_id,
        attempt.run_id,
        attempt.provider,
        attempt.config_id,
        attempt.model,
        1 if attempt.streamed else 0,
        attempt.started_at,
    )


async def close_open_attempt(c: Conn, attempt_id: str) -> None:
    """Remove the open attempt inside the transaction that records its usage; if it was settled meanwhile
    (it looked orphaned), remove the interrupted row it became, which the real rows replace."""
    if await c.rowcount("DELETE FROM open_attempts WHERE id = ?", attempt_id) == 0:
        await c.execute("DELETE FROM usage WHERE id = ? AND status = 'interrupted'", attempt_id)


def _interrupted(row: Row) -> tuple[Any, ...]:
    entry = UsageEntry(
        user_id=row["user_id"],
        provider=row["provider"],
        model=row["model"],
        usage=Usage(),
        status="interrupted",
        session_id=row["session_id"],
        config_id=row["config_id"],
        streamed=bool(row["streamed"]),
    )
    return prepare(entry, now=float(row["started_at"]), row_id=row["id"])[1]


class OpenAttempts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(self, attempt: OpenAttempt) -> None:
        """Record an open attempt in a commit of its own (when no other commit precedes the call). Not synced:
        it survives the process dying, which is what it is for."""
        await self._db.write(lambda c: insert_open_attempt(c, attempt), sync=False)

    async def close(self, attempt_id: str) -> None:
        await self._db.write(lambda c: close_open_attempt(c, attempt_id))

    async def list(self, session_id: str | None = None) -> list[OpenAttempt]:
        where, args = (" WHERE session_id = ?", [session_id]) if session_id is not None else ("", [])
        rows = await self._db.read(
            lambda c: c.fetch(f"SELECT {_COLUMNS} FROM open_attempts{where} ORDER BY started_at", *args)  # noqa: S608
        )
        return [
            OpenAttempt(
                r["id"],
                r["user_id"],
                r["session_id"],
                r["run_id"],
                r["provider"],
                r["config_id"],
                r["model"],
                bool(r["streamed"]),
                float(r["started_at"]),
            )
            for r in rows
        ]

    async def settle(self, session_id: str | None = None, *, grace: float = UNCLAIMED_GRACE_SECONDS) -> int:
        """Turn orphaned open attempts into ``interrupted`` usage rows (see the module doc): those of one
        resumed session, or (``session_id`` None, at open) all orphaned ones. Returns how many."""
        now = now_sql(self._db.dialect)
        claim_gone = (
            "(run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = open_attempts.session_id "  # noqa: S608
            f"AND s.run_id = open_attempts.run_id AND s.run_lease_until >= {now}))"
        )
        args: list[Any]
        if session_id is not None:
            where, args = f"session_id = ? AND (run_id IS NULL OR {claim_gone})", [session_id]
        else:
            where, args = f"((run_id IS NULL AND started_at < ?) OR {claim_gone})", [time.time() - grace]
        count_sql = f"SELECT COUNT(*) FROM open_attempts WHERE {where}"  # noqa: S608
        if not await self._db.read(lambda c: c.fetchval(count_sql, *args)):
            return 0  # the usual case: one read, no write

        async def work(c: Conn) -> int:
            # DELETE ... RETURNING takes each row once even when two processes settle at the same time.
            rows = await c.fetch(f"DELETE FROM open_attempts WHERE {where} RETURNING {_COLUMNS}", *args)  # noqa: S608
            if rows:
                await insert_usage(c, [_interrupted(r) for r in rows], skip_existing=True)
            return len(rows)

        return await self._db.write(work)
