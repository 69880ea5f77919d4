"""Sampling from server-everything routed to the session's provider (metered), and `routekit run --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent import ApprovalPolicy, Limits, SamplingRouter, Session
from mcp_bridge import McpHub, parse_config
from storage import SQLStore
from tests.fakes.base import FakeProviderServer, FakeTurn, Fault
from tests.mcp_bridge.conftest import EVERYTHING, reference_servers  # noqa: F401 - the installer fixture
from tests.providers.conftest import TEST_KEYS, base_url_for, config_for

from .conftest import FAMILIES, server_entry, tool_turn

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
ROUTEKIT = Path(sys.executable).with_name("routekit")


@pytest.fixture(scope="module")
async def everything(reference_servers: None) -> AsyncIterator[McpHub]:  # noqa: F811
    router = SamplingRouter()
    entry = {"command": "node", "args": [str(EVERYTHING), "stdio"], "trust": "auto"}
    async with McpHub(parse_config({"mcpServers": {"e": entry}}), sampling=router, elicitation=router.elicit) as hub:
        assert hub.status()["e"].state == "ready", hub.status()["e"].error
        yield hub


@pytest.mark.parametrize("family", FAMILIES)
async def test_sampling_goes_to_the_session_provider_and_is_metered(
    family: str, fake: FakeProviderServer, store: SQLStore, everything: McpHub
) -> None:
    fake.turns.append(tool_turn(family, ("e.trigger-sampling-request", {"prompt": "What is 2+2?", "maxTokens": 50})))
    fake.turns.append(FakeTurn(text="four, from the sampled model"))
    fake.turns.append(FakeTurn(text="The server's model said four."))
    session = await Session.open(
        provider=config_for(family, fake),
        store=store,
        hub=everything,
        approval=ApprovalPolicy(mode="auto"),  # sampling: the server is trusted in its config
        limits=Limits(check_budget=False),
    )
    async with session:
        # Streamed run calls (deltas) so the run's own rows are told apart from the sampling call's.
        result = await session.run("ask the server to sample", deltas=True)
        tool_result = session.history[2].tool_results[0]
    assert result.text == "The server's model said four."
    assert not tool_result.is_error
    assert "four, from the sampled model" in tool_result.text()
    # The sampling request reached the provider with the server's prompt, as its own request.
    sampling_request = json.dumps(fake.requests[1].json)
    assert "What is 2+2?" in sampling_request
    rows = await store.usage.rows(session_id=result.session_id)
    assert [(r["status"], bool(r["streamed"])) for r in rows] == [("ok", True), ("ok", False), ("ok", True)]
    assert all(r["user_id"] == session.user_id for r in rows)
    # The run's usage includes the sampling call (3 calls of 42 input tokens).
    assert result.usage.input_tokens == 126


async def test_sampling_denied_by_policy(
    fakes: dict[str, FakeProviderServer], store: SQLStore, everything: McpHub
) -> None:
    fake = fakes["openai"]
    with fake.lock:
        fake.turns.clear()
        fake.requests.clear()
    fake.turns.append(tool_turn("openai", ("e.trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})))
    fake.turns.append(FakeTurn(text="no sampling"))
    session = await Session.open(
        provider=config_for("openai", fake),
        store=store,
        hub=everything,
        approval=ApprovalPolicy(mode="auto", sampling="deny"),
        limits=Limits(check_budget=False),
    )
    async with session:
        result = await session.run("try sampling")
        tool_result = session.history[2].tool_results[0]
    assert result.text == "no sampling"
    assert tool_result.is_error or "error" in tool_result.text().lower()
    assert len(fake.requests) == 2  # no sampling request reached the provider


# --------------------------------------------------------------------------- CLI


def run_cli(args: list[str], home: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY")}
    env.update({"ROUTEKIT_HOME": str(home), **(extra_env or {})})
    return subprocess.run(
        [str(ROUTEKIT), "run", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )


@pytest.fixture
def openai_fake(fakes: dict[str, FakeProviderServer]) -> FakeProviderServer:
    fake = fakes["openai"]
    with fake.lock:
        fake.turns.clear()
        fake.faults.clear()
        fake.requests.clear()
    return fake


def cli_args(fake: FakeProviderServer, mcp_file: Path, *more: str) -> list[str]:
    base = ["--provider", "openai", "--base-url", base_url_for("openai", fake), "--model", "fake-model-1"]
    return [*base, "--mcp-config", str(mcp_file), *more]


async def test_cli_run_json(openai_fake: FakeProviderServer, tmp_path: Path, tool_log: Path) -> None:
    mcp_file = tmp_path / "mcp.json"
    mcp_file.write_text(json.dumps({"mcpServers": {"t": server_entry(tool_log, trust="auto")}}))
    openai_fake.turns.append(tool_turn("openai", ("t.add", {"a": 20, "b": 22})))
    openai_fake.turns.append(FakeTurn(text="It is 42."))
    key = {"OPENAI_API_KEY": str(TEST_KEYS["openai"])}
    done = run_cli(["What is 20 + 22?", *cli_args(openai_fake, mcp_file, "--json")], tmp_path, key)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    assert out["text"] == "It is 42."
    assert out["stop_reason"] == "end_turn"
    assert isinstance(out["session_id"], str)
    assert len(out["session_id"]) == 32
    assert out["usage"] == {
        "input_tokens": 84,
        "output_tokens": 18,
        "cache_read_tokens": 0,
        "cache_write_tokens": None,  # Chat Completions does not report cache writes: unknown, not 0
        "reasoning_tokens": 0,
    }
    assert out["cost_usd"] is None  # fake-model-1 has no price
    [tool_call] = out["tool_calls"]
    assert tool_call["name"] == "t.add"
    assert tool_call["arguments"] == {"a": 20, "b": 22}
    assert tool_call["is_error"] is False
    assert isinstance(tool_call["duration"], float)
    assert (tmp_path / "routekit.db").exists()  # stored under $ROUTEKIT_HOME for the local user


async def test_cli_exit_codes(openai_fake: FakeProviderServer, tmp_path: Path, tool_log: Path) -> None:
    mcp_file = tmp_path / "mcp.json"
    mcp_file.write_text(json.dumps({"mcpServers": {"t": server_entry(tool_log, trust="auto")}}))
    key = {"OPENAI_API_KEY": str(TEST_KEYS["openai"])}
    openai_fake.turns.append(tool_turn("openai", ("t.add", {"a": 1, "b": 1})))
    limited = run_cli(["loop", *cli_args(openai_fake, mcp_file, "--max-turns", "1", "--json")], tmp_path, key)
    assert limited.returncode == 4, limited.stderr
    assert json.loads(limited.stdout)["stop_reason"] == "max_turns"
    unknown = run_cli(["hi", "--provider", "nope"], tmp_path)
    assert unknown.returncode == 2
    assert "nope" in unknown.stderr
    openai_fake.faults.append(Fault(status=401, message="bad key"))
    failed = run_cli(["hi", *cli_args(openai_fake, mcp_file, "--json")[:-3], "--json"], tmp_path, key)
    assert failed.returncode == 3
    assert "bad key" in json.loads(failed.stdout)["error"]
    assert str(TEST_KEYS["openai"]) not in failed.stdout + failed.stderr
