"""Run claims: at most one run per session at a time, across processes and service instances.

A claim is three columns of the session row: the run's id, its owner (which process) and the lease's expiry.
Taking it is one conditional ``UPDATE`` (free, or its lease expired), so check and claim are one atomic step
on both backends: SQLite writes one transaction at a time, and PostgreSQL re-checks the ``WHERE`` on the
locked row. The holder renews the lease while the run lives and clears it when the run ends; a process that
dies leaves a lease that expires, after which anyone may take the session over. Lease times come from the
database's clock, so instances whose clocks differ still agree on who holds a session.

This is the shape stored runs will take (a runner's lease on a run row): the same claim / renew / release,
with the owner a runner process.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from storage._db import Conn, Database, Dialect


def now_sql(dialect: Dialect) -> str:
    """The database's clock as epoch seconds, for lease comparisons."""
    if dialect == "postgres":
        return "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def live_claim_sql(dialect: Dialect, alias: str = "") -> str:
    """A condition that is true for a session row held by a live claim."""
    p = f"{alias}." if alias else ""
    return f"({p}run_id IS NOT NULL AND {p}run_lease_until >= {now_sql(dialect)})"


def process_owner() -> str:
    """Who claims, for the claim's ``owner`` column (diagnostics: which host and process holds a session)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class RunClaim:
    session_id: str
    run_id: str
    owner: str


@dataclass(frozen=True, slots=True)
class ClaimHolder:
    """Who holds a session now (``seconds_left`` of its lease, by the database's clock)."""

    run_id: str
    owner: str
    seconds_left: float


class RunClaims:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, session_id: str, owner: str, lease_seconds: float) -> RunClaim | None:
        """Take the session for a new run, or None when a live claim holds it already."""
        run_id = uuid.uuid4().hex
        now = now_sql(self._db.dialect)

        async def take(c: Conn) -> int:
            return await c.rowcount(
                f"UPDATE sessions SET run_id = ?, run_owner = ?, run_lease_until = {now} + ? "  # noqa: S608
                f"WHERE id = ? AND NOT {live_claim_sql(c.dialect)}",
                run_id,
                owner,
                float(lease_seconds),
                session_id,
            )

        return RunClaim(session_id, run_id, owner) if await self._db.write(take) == 1 else None

    async def renew(self, claim: RunClaim, lease_seconds: float) -> bool:
        """Extend the lease; False when the claim was lost (it expired and someone else took the session)."""
        now = now_sql(self._db.dialect)
        changed = await self._db.write(
            lambda c: c.rowcount(
                f"UPDATE sessions SET run_lease_until = {now} + ? WHERE id = ? AND run_id = ?",  # noqa: S608
                float(lease_seconds),
                claim.session_id,
                claim.run_id,
            ),
            sync=False,  # a lease lost to a power cut only frees the session early: the run's own commits are synced
        )
        return changed == 1

    async def release(self, claim: RunClaim) -> None:
        """Clear the claim (if it is still this run's)."""
        await self._db.write(
            lambda c: c.execute(
                "UPDATE sessions SET run_id = NULL, run_owner = NULL, run_lease_until = NULL "
                "WHERE id = ? AND run_id = ?",
                claim.session_id,
                claim.run_id,
            )
        )

    async def holder(self, session_id: str) -> ClaimHolder | None:
        """The live claim on a session, if any."""
        now = now_sql(self._db.dialect)
        row = await self._db.read(
            lambda c: c.fetchone(
                f"SELECT run_id, run_owner, run_lease_until - {now} AS left_s FROM sessions "  # noqa: S608
                f"WHERE id = ? AND {live_claim_sql(c.dialect)}",
                session_id,
            )
        )
        if row is None:
            return None
        return ClaimHolder(row["run_id"], row["run_owner"], float(row["left_s"]))
