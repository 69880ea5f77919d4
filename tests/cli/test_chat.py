"""``routekit chat`` driven through stdin against the fake providers and the test MCP server."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator

import pytest

from providers.profiles import get_profile
from providers.schema import provider_tool_name
from tests.cli.conftest import MCP_SERVER, Cli, openai_url
from tests.fakes.base import FakeProviderServer, FakeToolCall, FakeTurn, Fault
from tests.providers.conftest import TEST_KEYS, start_fake

ANTHROPIC_KEY = TEST_KEYS["anthropic"]
assert ANTHROPIC_KEY is not None


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[FakeProviderServer]:
    server = start_fake("anthropic")
    try:
        yield server
    finally:
        server.stop()


def _remove_call(path: str) -> FakeTurn:
    name = provider_tool_name("cli.remove_file", get_profile("openai").tool_names)
    return FakeTurn(tool_calls=[FakeToolCall(name, {"path": path})])


def test_chat_streams_asks_approval_resumes_and_switches_provider(
    cli: Cli, openai_fake: FakeProviderServer, anthropic_fake: FakeProviderServer
) -> None:
    cli.secrets.append(ANTHROPIC_KEY)
    cli.json(
        "config", "add", "-p", "openai", "--base-url", openai_url(openai_fake), "--key-env", "OPENAI_TEST_KEY",
        "-m", "fake-model-1",
    )  # fmt: skip
    cli.json(
        "config", "add", "-p", "anthropic", "--base-url", anthropic_fake.origin, "--key-stdin", "-m", "fake-model-1",
        "-l", "claude", stdin=ANTHROPIC_KEY + "\n",
    )  # fmt: skip
    cli.json("mcp", "add", "cli", "--", sys.executable, MCP_SERVER)

    # A destructive tool: denied the first time, approved the second.
    openai_fake.turns.extend(
        [_remove_call("/tmp/a"), FakeTurn(text="Understood, not deleting."), _remove_call("/tmp/b"),
         FakeTurn(text="Deleted /tmp/b.")]
    )  # fmt: skip
    first = cli.run("chat", stdin="delete a\nn\ndelete b\ny\n/model fake-model-2\n/session\n/exit\n").stdout
    assert "? tool call cli.remove_file" in first
    assert "cli.remove_file (not run)" in first
    assert "Understood, not deleting." in first
    assert re.search(r"✓ cli\.remove_file in [\d.]+s: removed /tmp/b", first)
    assert "Deleted /tmp/b." in first
    assert "model is now fake-model-2" in first
    session_id = re.search(r"resume with: routekit chat --resume ([0-9a-f]+)", first)
    assert session_id is not None
    # The model was told about the denial, and got the result of the approved call.
    tool_messages = [m for r in openai_fake.requests if r.method == "POST" for m in r.json["messages"]]
    assert any(m["role"] == "tool" and "removed /tmp/b" in json.dumps(m) for m in tool_messages)

    # Resume by id, switch to the anthropic config: the history goes along to the new provider.
    anthropic_fake.turns.append(FakeTurn(text="Claude here, history intact."))
    second = cli.run("chat", "--resume", session_id.group(1), stdin="/provider claude\nwho are you\n").stdout
    assert "you> delete b" in second  # the stored history is shown
    assert "provider is now anthropic" in second
    assert "Claude here, history intact." in second
    sent = json.dumps(anthropic_fake.requests[-1].json["messages"])
    assert "delete a" in sent
    assert "who are you" in sent
    assert session_id.group(1) in second


def test_chat_provider_error_exit_code_and_no_config(cli: Cli, openai_fake: FakeProviderServer) -> None:
    assert "no provider configured" in cli.run("chat", "--no-mcp", stdin="hi\n", code=2).stderr
    cli.json("config", "add", "-p", "openai", "--base-url", openai_url(openai_fake), "--key-env", "OPENAI_TEST_KEY",
             "-m", "fake-model-1")  # fmt: skip
    openai_fake.faults.append(Fault(status=401, message="Incorrect API key provided"))
    failed = cli.run("chat", "--no-mcp", stdin="hi\n", code=3)
    assert "provider error" in failed.stdout
    assert "unknown command /nope" in cli.run("chat", "--no-mcp", stdin="/nope\n/exit\n").stdout
