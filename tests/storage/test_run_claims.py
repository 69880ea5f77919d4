"""Run claims (one run per session, across processes) on SQLite and a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import anyio
import pytest

from storage import SQLStore
from storage.claims import RunClaim

from .conftest import KEY_V1, REPO, b64

pytestmark = pytest.mark.anyio


async def new_session(store: SQLStore) -> str:
    user = await store.users.create(f"claimer-{time.monotonic_ns()}")
    return (await store.sessions.create(user.id, model="m")).id


async def test_one_claim_at_a_time_and_the_session_shows_it(store: SQLStore) -> None:
    session_id = await new_session(store)
    claim = await store.run_claims.claim(session_id, "owner-a", 30.0)
    assert claim is not None
    assert await store.run_claims.claim(session_id, "owner-b", 30.0) is None
    holder = await store.run_claims.holder(session_id)
    assert holder is not None
    assert (holder.run_id, holder.owner) == (claim.run_id, "owner-a")
    assert 25.0 < holder.seconds_left <= 30.0
    assert (await store.sessions.get(session_id)).running is True
    assert [s.running for s in await store.sessions.list((await store.sessions.get(session_id)).user_id)] == [True]
    # A running session is not deleted (same claim, same statement).
    assert await store.sessions.delete(session_id, unless_running=True) is False
    assert (await store.sessions.get(session_id)).id == session_id
    assert await store.run_claims.renew(claim, 30.0) is True
    await store.run_claims.release(claim)
    assert (await store.sessions.get(session_id)).running is False
    assert await store.run_claims.holder(session_id) is None
    again = await store.run_claims.claim(session_id, "owner-b", 30.0)
    assert again is not None
    assert again.run_id != claim.run_id
    await store.run_claims.release(claim)  # the old run's release does not free the new run's claim
    assert (await store.sessions.get(session_id)).running is True
    await store.run_claims.release(again)
    assert await store.sessions.delete(session_id, unless_running=True) is True


async def test_concurrent_claims_exactly_one_wins(store: SQLStore) -> None:
    session_id = await new_session(store)
    won: list[RunClaim | None] = []

    async def attempt(i: int) -> None:
        won.append(await store.run_claims.claim(session_id, f"owner-{i}", 30.0))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(attempt, i)
    winners = [c for c in won if c is not None]
    assert len(won) == 10
    assert len(winners) == 1
    holder = await store.run_claims.holder(session_id)
    assert holder is not None
    assert holder.run_id == winners[0].run_id


async def test_an_expired_lease_is_taken_over(store: SQLStore) -> None:
    session_id = await new_session(store)
    old = await store.run_claims.claim(session_id, "died", 0.3)
    assert old is not None
    assert await store.run_claims.claim(session_id, "new", 30.0) is None
    await anyio.sleep(0.6)
    assert (await store.sessions.get(session_id)).running is False  # expired: not shown as running
    new = await store.run_claims.claim(session_id, "new", 30.0)
    assert new is not None
    assert await store.run_claims.renew(old, 30.0) is False  # the old holder learns it lost the session
    holder = await store.run_claims.holder(session_id)
    assert holder is not None
    assert holder.owner == "new"


async def test_a_claim_held_by_another_process(store: SQLStore, db_url: str) -> None:
    session_id = await new_session(store)
    env = {**os.environ, "ROUTEKIT_MASTER_KEY": f"v1:{b64(KEY_V1)}"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.storage._claim_worker", db_url, session_id, "6"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        line = await anyio.to_thread.run_sync(worker.stdout.readline)
        assert line.startswith("claimed "), line + (worker.stderr.read() if worker.stderr else "")
        assert await store.run_claims.claim(session_id, "here", 30.0) is None
        holder = await store.run_claims.holder(session_id)
        assert holder is not None
        assert holder.owner == "claim-worker"
        os.kill(worker.pid, signal.SIGKILL)  # it dies holding the claim: nothing releases it
        worker.wait(10)
        assert await store.run_claims.claim(session_id, "here", 30.0) is None  # the lease still runs
        deadline = time.monotonic() + 30
        taken = None
        while taken is None and time.monotonic() < deadline:
            await anyio.sleep(0.2)
            taken = await store.run_claims.claim(session_id, "here", 30.0)
        assert taken is not None, "the dead process's expired lease was never taken over"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
