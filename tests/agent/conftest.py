"""Fixtures for the agent tests: the four fake providers, one MCP hub on our stdio tool server, one store.

Everything expensive is module-scoped (fake servers, the hub, the store); each test opens its own session
and scripts the fakes it uses. The hub routes sampling and elicitation to whichever session is open.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import ApprovalPolicy, Limits, SamplingRouter, Session
from mcp_bridge import McpHub, parse_config
from providers.profiles import get_profile
from providers.schema import provider_tool_name
from storage import SQLStore, open_store
from tests.fakes.base import FakeProviderServer, FakeToolCall, FakeTurn
from tests.providers.conftest import config_for, start_fake

HERE = Path(__file__).resolve().parent
TOOL_SERVER = HERE / "tool_server.py"
FAMILIES = ["anthropic", "gemini", "ollama", "openai"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProviderServer]]:
    servers = {family: start_fake(family) for family in FAMILIES}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def fake(fakes: dict[str, FakeProviderServer], family: str) -> FakeProviderServer:
    server = fakes[family]
    with server.lock:
        server.turns.clear()
        server.faults.clear()
        server.requests.clear()
    return server


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def tool_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("toollog") / "calls.jsonl"


def server_entry(tool_log: Path, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(TOOL_SERVER)], "env": {"AGENT_TOOL_LOG": str(tool_log)}, **extra}


@pytest.fixture(scope="module")
async def hub(tool_log: Path) -> AsyncIterator[McpHub]:
    router = SamplingRouter()
    config = parse_config({"mcpServers": {"t": server_entry(tool_log)}})
    async with McpHub(config, sampling=router, elicitation=router.elicit) as hub:
        assert hub.status()["t"].state == "ready", hub.status()["t"].error
        yield hub


@pytest.fixture(scope="module")
async def store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SQLStore]:
    home = tmp_path_factory.mktemp("store")
    opened = await open_store(f"sqlite:///{home / 'agent.db'}", key_dir=home, durable=False)
    try:
        yield opened
    finally:
        await opened.close()


def wire_name(family: str, canonical: str) -> str:
    """The name the provider sees for a canonical tool name (what a fake's scripted call must use)."""
    return provider_tool_name(canonical, get_profile(family).tool_names)


def call(family: str, canonical: str, arguments: dict[str, Any] | None = None, id: str | None = None) -> FakeToolCall:
    return FakeToolCall(wire_name(family, canonical), arguments or {}, id=id)


def tool_turn(family: str, *calls: tuple[str, dict[str, Any]]) -> FakeTurn:
    return FakeTurn(tool_calls=[call(family, name, args) for name, args in calls])


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def open_session(
    family: str,
    fake: FakeProviderServer,
    store: SQLStore,
    hub: McpHub | None,
    *,
    approval: ApprovalPolicy | None = None,
    limits: Limits | None = None,
    **options: Any,
) -> Session:
    return await Session.open(
        provider=config_for(family, fake),
        store=store,
        hub=hub,
        approval=approval or ApprovalPolicy.auto_all(),
        limits=limits or Limits(check_budget=False),
        **options,
    )
