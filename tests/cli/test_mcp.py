"""``routekit mcp`` with a small Python stdio MCP server (tests/cli/mcp_server.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.cli.conftest import MCP_SECRET, MCP_SERVER, Cli
from tests.fakes.base import FakeProviderServer
from tests.mcp_bridge.conftest import reference_servers  # noqa: F401 - the fixture that installs them


def test_add_list_tools_and_remove(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # --env NAME copies the value from the CLI's environment: the secret never appears in argv.
    saved = cli.json(
        "mcp", "add", "cli", "--env", "CLI_TEST_SECRET", "--env", f"CLI_TEST_STATE={state}", "--",
        sys.executable, MCP_SERVER,
    )  # fmt: skip
    assert saved[0]["name"] == "cli"
    assert saved[0]["env"]["CLI_TEST_SECRET"] == "****" + MCP_SECRET[-4:]
    assert "env" not in saved[0]["config"]
    listed = cli.json("mcp", "list")
    assert [(s["name"], s["scope"], s["status"]) for s in listed] == [("cli", "user", "ok")]

    report = cli.json("mcp", "tools")
    assert report["servers"]["cli"]["state"] == "ready"
    assert report["servers"]["cli"]["tools"] == 4
    names = {t["name"] for t in report["tools"]}
    assert names == {"cli.greet", "cli.fetch", "cli.secret_length", "cli.remove_file"}
    assert set(report["providers"]) == {"anthropic", "openai", "gemini", "ollama"}
    openai = {t["name"]: t for t in report["providers"]["openai"]["tools"]}
    assert openai["cli.greet"]["strict"] is True
    assert openai["cli.fetch"]["strict"] is False  # optional properties: not strict, and the reason says so
    assert "optional" in openai["cli.fetch"]["strict_reason"]
    assert openai["cli.greet"]["parameters"]["properties"]["name"]["type"] == "string"
    gemini = report["providers"]["gemini"]
    assert any(loss["keyword"] == "title" for t in gemini["tools"] for loss in t["losses"])
    assert "schema changes" in gemini["loss_report"]
    # The server got the secret through its environment, never on its command line.
    assert MCP_SECRET not in (state / "argv.json").read_text()
    assert json.loads((state / "env.json").read_text()) == {"secret_length": len(MCP_SECRET)}

    plain = cli.run("mcp", "tools", "--provider", "openai").stdout
    assert "openai receives" in plain
    assert "gemini receives" not in plain
    assert '"additionalProperties": false' in plain  # the compiled schema itself is printed

    assert cli.json("mcp", "remove", "cli") == {"removed": "cli"}
    assert cli.json("mcp", "list") == []
    assert "no user MCP server" in cli.run("mcp", "remove", "cli", code=2).stderr.replace("your", "user")


def test_broken_server_file_import_and_bad_options(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "broken": {"command": sys.executable, "args": [MCP_SERVER, "--fail-start"]},
                    "remote": {"url": "https://mcp.example/mcp", "headers": {"Authorization": "Bearer ${NOT_SET_X}"}},
                }
            }
        )
    )
    imported = cli.json("mcp", "add", "--from-file", str(config))
    assert sorted(s["name"] for s in imported) == ["broken", "remote"]
    remote = next(s for s in imported if s["name"] == "remote")
    assert remote["headers"] == {"Authorization": "****X}"} or remote["headers"]["Authorization"].startswith("****")

    report = cli.json("mcp", "tools", "--server", "broken", code=2)
    assert report["servers"]["broken"]["state"] == "failed"
    assert "widget database" in (report["servers"]["broken"]["stderr_tail"] or report["servers"]["broken"]["error"])

    assert "--provider" in cli.run("mcp", "tools", "--provider", "bogus", code=2).stderr
    missing = cli.run("mcp", "add", "x", code=2)
    assert "command" in missing.stderr
    bad = cli.run("mcp", "add", "bad.name", "--", "true", code=2)
    assert "server names" in bad.stderr


# --------------------------------------------------------------------------- the reference servers

# server-everything registers these only for a client that advertises sampling, elicitation (with URL
# mode) and roots, as every session's hub does.
GATED = {"e.trigger-sampling-request", "e.trigger-elicitation-request", "e.trigger-url-elicitation", "e.get-roots-list"}


def reference_config(tmp_path: Path) -> dict[str, Any]:
    """The five reference servers (54 tools) over stdio, everything with a root, git on a fresh repo."""
    from tests.mcp_bridge.conftest import EVERYTHING, FILESYSTEM, MEMORY, PY

    repo, files, root = tmp_path / "repo", tmp_path / "files", tmp_path / "root"
    for folder in (files, root):
        folder.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return {
        "mcpServers": {
            "e": {"command": "node", "args": [str(EVERYTHING), "stdio"], "roots": [str(root)]},
            "fs": {"command": "node", "args": [str(FILESYSTEM), str(files)]},
            "mem": {"command": "node", "args": [str(MEMORY)], "env": {"MEMORY_FILE_PATH": str(tmp_path / "m.jsonl")}},
            "time": {"command": PY, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]},
            "git": {"command": PY, "args": ["-m", "mcp_server_git", "--repository", str(repo)]},
        }
    }


async def session_tool_names(config: Path, fake: FakeProviderServer, home: Path) -> set[str]:
    """The tools a real session opened on ``config`` offers its model (what `routekit run --mcp-config` gets)."""
    from agent import Session
    from storage import open_store
    from tests.providers.conftest import config_for

    store = await open_store(f"sqlite:///{home / 'session.db'}", key_dir=home, durable=False)
    try:
        async with await Session.open(provider=config_for("openai", fake), mcp=config, store=store) as session:
            assert session.hub is not None
            await session.hub.list_tools()  # a tools/list_changed the servers sent on start is applied
            return {spec.name for spec in session.tool_specs()}
    finally:
        await store.close()


@pytest.mark.usefixtures("reference_servers")
def test_tools_lists_what_a_session_gets_from_the_reference_servers(
    cli: Cli, tmp_path: Path, openai_fake: FakeProviderServer
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps(reference_config(tmp_path)))
    from_file = cli.json("mcp", "tools", "--mcp-config", str(config), "--provider", "gemini")
    assert {name: s["state"] for name, s in from_file["servers"].items()} == dict.fromkeys(
        ["e", "fs", "mem", "time", "git"], "ready"
    )
    names = {t["name"] for t in from_file["tools"]}
    assert len(names) == 54
    assert names >= GATED
    assert from_file["servers"]["e"]["tools"] == 17
    assert {t["name"] for t in from_file["providers"]["gemini"]["tools"]} == names
    assert from_file["providers"]["gemini"]["errors"] == {}

    # A session on the same file gets the same tools; stored servers list the same too.
    assert anyio.run(session_tool_names, config, openai_fake, tmp_path) == names
    cli.json("mcp", "add", "--from-file", str(config))
    stored = cli.json("mcp", "tools", "--provider", "openai")
    assert {t["name"] for t in stored["tools"]} == names
    only = cli.json("mcp", "tools", "--mcp-config", str(config), "--server", "e", "--provider", "openai")
    assert {t["name"] for t in only["tools"]} >= GATED
    assert len(only["tools"]) == 17


def test_tools_mcp_config_errors_are_one_line_usage_errors(cli: Cli, tmp_path: Path) -> None:
    missing = cli.run("mcp", "tools", "--mcp-config", str(tmp_path / "nope.json"), code=2)
    assert "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mcpServers": {"bad.name": {"command": "true"}}}))
    assert "server names" in cli.run("mcp", "tools", "--mcp-config", str(bad), code=2).stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"mcpServers": {"x": {"command": sys.executable, "args": [MCP_SERVER]}}}))
    unknown = cli.run("mcp", "tools", "--mcp-config", str(good), "--server", "y", code=2)
    assert "no MCP server named y" in unknown.stderr
