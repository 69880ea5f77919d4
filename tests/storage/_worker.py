"""Subprocess worker for the storage tests: each mode opens the store given by URL and does one job.

The master key comes from ROUTEKIT_MASTER_KEY. Progress lines go to stdout, flushed, so the parent can
kill the process at a known point.
"""

from __future__ import annotations

import sys

import anyio

from providers.types import Message, Usage
from storage import UsageEntry, open_store


def say(text: str) -> None:
    print(text, flush=True)


async def main(mode: str, url: str, *args: str) -> None:
    store = await open_store(url)
    try:
        if mode == "migrate":
            say(f"version {await store.schema_version()}")
        elif mode == "usage":
            count, label = int(args[0]), args[1]
            for i in range(count):
                await store.usage.record(
                    UsageEntry(
                        user_id=label, provider="openai", model="gpt-4o", usage=Usage(input_tokens=i, output_tokens=1)
                    )
                )
            say("done")
        elif mode == "rotate":
            batch, pause = int(args[0]), float(args[1])
            report = await store.keys.rotate_master_key(
                batch_size=batch, pause=pause, on_batch=lambda n: say(f"batch {n}")
            )
            say(f"rotated {report.rewrapped} remaining {report.remaining}")
        elif mode == "append":
            session_id = args[0]
            i = 0
            while True:
                i += 1
                entry = UsageEntry(
                    user_id="crash", provider="openai", model="gpt-4o", usage=Usage(input_tokens=i, output_tokens=i)
                )
                seqs = await store.record_step(session_id, [Message.user(f"message {i}")], [entry])
                say(f"committed {seqs[0]}")
        else:
            raise SystemExit(f"unknown mode {mode}")
    finally:
        await store.close()


if __name__ == "__main__":
    anyio.run(lambda: main(*sys.argv[1:]))
