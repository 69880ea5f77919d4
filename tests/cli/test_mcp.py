"""``routekit mcp`` with a small Python stdio MCP server (tests/cli/mcp_server.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.cli.conftest import MCP_SECRET, MCP_SERVER, Cli


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
