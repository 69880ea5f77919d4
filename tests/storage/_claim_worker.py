"""Holds a run claim in its own process until killed: ``python -m tests.storage._claim_worker URL SESSION LEASE``.

The master key comes from ROUTEKIT_MASTER_KEY. Prints ``claimed <run id>`` (or ``busy``) flushed, then sleeps;
with a lease it never renews, so the claim expires ``LEASE`` seconds after the parent kills it (or sooner).
"""

from __future__ import annotations

import sys

import anyio

from storage import open_store


async def main(url: str, session_id: str, lease: str) -> None:
    store = await open_store(url)
    try:
        claim = await store.run_claims.claim(session_id, "claim-worker", float(lease))
        print(f"claimed {claim.run_id}" if claim is not None else "busy", flush=True)
        await anyio.sleep(3600)
    finally:
        await store.close()


if __name__ == "__main__":
    anyio.run(lambda: main(*sys.argv[1:4]))
