"""Storage benchmark: usage rows/s and message appends/s, SQLite and PostgreSQL, 1 writer and 50 sessions.

Every write is awaited until committed (SQLite: WAL with synchronous=FULL, i.e. fsync per commit;
PostgreSQL: synchronous_commit on, server started with fsync=on) before that writer issues its next one.
Concurrent writers share commits (group commit), which is where the throughput comes from.

    .venv/bin/python -m bench.storage [--rows 3000] [--pg-url postgresql://...] [--no-pg]

Without --pg-url a throwaway PostgreSQL server is started (tests/storage/pgserver.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers.types import Message, Usage
from storage import Keyring, SQLStore, UsageEntry, open_store

RING = Keyring.single(bytes(range(32)))


def entry(rng: random.Random, user: str, session: str) -> UsageEntry:
    return UsageEntry(
        user_id=user,
        session_id=session,
        provider="openai",
        model="gpt-4o",
        usage=Usage(input_tokens=rng.randint(100, 20_000), output_tokens=rng.randint(10, 2000)),
        latency_ms=rng.random() * 1000,
        streamed=True,
    )


async def timed(writers: int, total: int, op: Callable[[int, int], Awaitable[None]]) -> float:
    per = total // writers

    async def run(w: int) -> None:
        for i in range(per):
            await op(w, i)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(writers):
            tg.start_soon(run, w)
    return per * writers / (time.perf_counter() - start)


async def bench_store(name: str, store: SQLStore, rows: int) -> None:
    user = await store.users.create(f"bench-{time.time_ns()}")
    sessions = [(await store.sessions.create(user.id)).id for _ in range(50)]
    rng = random.Random(1)

    async def usage(w: int, i: int) -> None:
        await store.usage.record(entry(rng, user.id, sessions[w]))

    async def message(w: int, i: int) -> None:
        await store.messages.append(sessions[w], Message.user(f"message {i} " + "x" * 200))

    for label, op in (("usage rows", usage), ("message appends", message)):
        for writers in (1, 50):
            rate = await timed(writers, rows, op)
            print(f"{name:10s} {label:16s} {writers:3d} writer(s): {rate:9,.0f} /s", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--pg-url")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        async with await open_store(f"sqlite:///{Path(tmp) / 'bench.db'}", keyring=RING) as store:
            await bench_store("sqlite", store, args.rows)
    if args.no_pg:
        return
    server = None
    url = args.pg_url
    if url is None:
        from tests.storage import pgserver

        server = pgserver.start(fsync=True)
        url = server.createdb("bench")
    try:
        async with await open_store(url, keyring=RING) as store:
            await bench_store("postgresql", store, args.rows)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    anyio.run(main)
