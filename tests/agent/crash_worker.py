"""Runs one agent session in its own process, for the crash-and-resume tests (the test kills it with -9).

python -m tests.agent.crash_worker FAMILY BASE_URL DB_URL KEY_DIR MCP_CONFIG_JSON PROMPT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

from agent import ApprovalPolicy, Limits, Session
from providers.base import ProviderConfig
from storage import open_store

# The fake servers accept any key; these match tests/providers/conftest.py (not imported: it pulls in pytest).
TEST_KEYS = {
    "anthropic": "sk-ant-test-0123456789abcdefSECRET",
    "openai": "sk-test-0123456789abcdefSECRET",
    "gemini": "AIzaTest0123456789abcdefSECRET",
    "ollama": None,
}


async def main() -> None:
    family, base_url, db_url, key_dir, mcp_json, prompt = sys.argv[1:7]
    store = await open_store(db_url, key_dir=Path(key_dir))
    config = ProviderConfig(
        provider=family,
        base_url=base_url,
        api_key=TEST_KEYS[family],
        default_model="fake-model-1",
        timeout=10.0,
        max_retries=0,
    )
    session = await Session.open(
        provider=config,
        store=store,
        mcp=json.loads(mcp_json),
        approval=ApprovalPolicy.auto_all(),
        limits=Limits(check_budget=False),
    )
    print(f"SESSION {session.session_id}", flush=True)
    async with session:
        await session.run(prompt)
    await store.close()


if __name__ == "__main__":
    anyio.run(main)
