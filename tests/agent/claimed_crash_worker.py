"""Like ``crash_worker``, but the run holds a claim on its session, as a service instance's run does.

python -m tests.agent.claimed_crash_worker FAMILY BASE_URL DB_URL KEY_DIR LEASE PROMPT

Creates the session, claims it for ``LEASE`` seconds (never renewed: the lease runs out after the kill),
prints ``SESSION <id>`` and runs the prompt under that claim.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from agent import ApprovalPolicy, Limits, Session
from providers.base import ProviderConfig
from storage import open_store
from tests.agent.crash_worker import TEST_KEYS


async def main() -> None:
    family, base_url, db_url, key_dir, lease, prompt = sys.argv[1:7]
    store = await open_store(db_url, key_dir=Path(key_dir))
    config = ProviderConfig(
        provider=family,
        base_url=base_url,
        api_key=TEST_KEYS[family],
        default_model="fake-model-1",
        timeout=30.0,
        max_retries=0,
    )
    user = await store.users.create("claimed-crash")
    record = await store.sessions.create(user.id, model="fake-model-1")
    claim = await store.run_claims.claim(record.id, "claimed-crash-worker", float(lease))
    assert claim is not None
    print(f"SESSION {record.id}", flush=True)
    session = await Session.open(
        provider=config,
        store=store,
        user=user.id,
        session_id=record.id,
        run_id=claim.run_id,
        approval=ApprovalPolicy.auto_all(),
        limits=Limits(check_budget=False),
    )
    async with session:
        await session.run(prompt)
    await store.close()


if __name__ == "__main__":
    anyio.run(main)
