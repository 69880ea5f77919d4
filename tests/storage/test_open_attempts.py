"""Open attempts (model calls in flight) and how orphaned ones are settled, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import time

import anyio
import pytest

from providers.types import Message, Usage
from storage import Keyring, SQLStore, UsageEntry, open_store
from storage.attempts import UNCLAIMED_GRACE_SECONDS, OpenAttempt, new_open_attempt

pytestmark = pytest.mark.anyio


async def session_of(store: SQLStore) -> tuple[str, str]:
    user = await store.users.create(f"caller-{time.monotonic_ns()}")
    return user.id, (await store.sessions.create(user.id, model="m")).id


def attempt(user_id: str, session_id: str, *, run_id: str | None = None, age: float = 0.0) -> OpenAttempt:
    fresh = new_open_attempt(user_id, "openai", "gpt-4o-mini", session_id=session_id, run_id=run_id, streamed=True)
    return dataclasses.replace(fresh, started_at=fresh.started_at - age)


async def statuses(store: SQLStore, session_id: str) -> list[str]:
    return [r["status"] for r in await store.usage.rows(session_id=session_id)]


async def test_opening_the_store_settles_orphans_only(store: SQLStore, db_url: str, keyring: Keyring) -> None:
    user_id, session_id = await session_of(store)
    old = attempt(user_id, session_id, age=UNCLAIMED_GRACE_SECONDS + 60)  # a CLI process that died long ago
    fresh = attempt(user_id, session_id)  # may be a live CLI call in another process
    claim = await store.run_claims.claim(session_id, "live-instance", 30.0)
    assert claim is not None
    claimed = attempt(user_id, session_id, run_id=claim.run_id)  # a live service run's call
    lapsed = attempt(user_id, session_id, run_id="a-run-whose-claim-is-gone")  # a killed service run's call
    for a in (old, fresh, claimed, lapsed):
        await store.open_attempts.open(a)
    async with await open_store(db_url, keyring=keyring) as reopened:
        settled = {r["id"]: r for r in await reopened.usage.rows(session_id=session_id)}
        assert set(settled) == {old.id, lapsed.id}
        assert {a.id for a in await reopened.open_attempts.list(session_id)} == {fresh.id, claimed.id}
        row = settled[old.id]
        assert row["status"] == "interrupted"
        assert row["streamed"] == 1
        assert row["input_tokens"] is None
        assert row["output_tokens"] is None
        assert row["cost_usd"] is None
        assert row["created_at"] == pytest.approx(old.started_at)  # counted on the day the call was made
    await store.run_claims.release(claim)
    assert await store.open_attempts.settle() == 1  # the released claim's call is an orphan now
    assert sorted(await statuses(store, session_id)) == ["interrupted"] * 3


async def test_a_resume_settles_the_session_but_not_a_live_claim(store: SQLStore) -> None:
    user_id, session_id = await session_of(store)
    _, other_session = await session_of(store)
    mine = attempt(user_id, session_id)
    elsewhere = attempt(user_id, other_session)
    claim = await store.run_claims.claim(session_id, "live", 30.0)
    assert claim is not None
    running = attempt(user_id, session_id, run_id=claim.run_id)
    for a in (mine, elsewhere, running):
        await store.open_attempts.open(a)
    assert await store.open_attempts.settle(session_id) == 1
    assert [r["id"] for r in await store.usage.rows(session_id=session_id)] == [mine.id]
    assert {a.id for a in await store.open_attempts.list()} == {elsewhere.id, running.id}


async def test_a_run_that_was_only_slow_replaces_its_interrupted_row(store: SQLStore) -> None:
    """A resume settled a call that was still running elsewhere: when that call's step is written, the
    interrupted row goes and the real one stays (nothing counted twice)."""
    user_id, session_id = await session_of(store)
    slow = attempt(user_id, session_id)
    await store.open_attempts.open(slow)
    assert await store.open_attempts.settle(session_id) == 1
    assert await statuses(store, session_id) == ["interrupted"]
    real = UsageEntry(user_id, "openai", "gpt-4o-mini", Usage(input_tokens=10, output_tokens=2), session_id=session_id)
    await store.record_step(session_id, [Message.assistant("late")], [real], close_attempt=slow.id)
    assert await statuses(store, session_id) == ["ok"]
    # The usual path: the step closes the attempt it opened; the next call is opened in the same commit.
    nxt = attempt(user_id, session_id)
    await store.record_step(session_id, [Message.user("more")], [], open_attempt=nxt)
    assert [a.id for a in await store.open_attempts.list(session_id)] == [nxt.id]
    await store.record_step(session_id, [], [real], close_attempt=nxt.id)
    assert await store.open_attempts.list(session_id) == []
    assert await statuses(store, session_id) == ["ok", "ok"]


async def test_two_processes_settling_at_once_record_each_call_once(
    store: SQLStore, db_url: str, keyring: Keyring
) -> None:
    user_id, session_id = await session_of(store)
    attempts = [attempt(user_id, session_id, age=UNCLAIMED_GRACE_SECONDS + 1) for _ in range(5)]
    for a in attempts:
        await store.open_attempts.open(a)
    other = await open_store(db_url, keyring=keyring, migrate_to=3)  # (migrate_to: no settle on open)
    counts: list[int] = []
    try:

        async def settle(s: SQLStore) -> None:
            counts.append(await s.open_attempts.settle())

        async with anyio.create_task_group() as tg:
            tg.start_soon(settle, store)
            tg.start_soon(settle, other)
    finally:
        await other.close()
    assert sum(counts) == 5
    assert sorted(r["id"] for r in await store.usage.rows(session_id=session_id)) == sorted(a.id for a in attempts)
