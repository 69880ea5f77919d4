"""mcpServers config parsing: the spellings in the wild, ${VAR} expansion, routekit's extras, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_bridge import McpConfigError, load_config, parse_config


def test_claude_desktop_stdio_entry() -> None:
    cfg = parse_config(
        {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "srv", "/tmp"], "env": {"DEBUG": "1"}, "cwd": "/tmp"}}}
    )
    fs = cfg.servers["fs"]
    assert fs.transport == "stdio"
    assert (fs.command, fs.args, fs.cwd) == ("npx", ["-y", "srv", "/tmp"], "/tmp")
    assert fs.env_values() == {"DEBUG": "1"}


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"url": "https://x.example/mcp"}, "http"),  # Cursor / Claude Code remote
        ({"type": "http", "url": "https://x.example/mcp"}, "http"),  # VS Code / Claude Code
        ({"type": "sse", "url": "https://x.example/sse"}, "sse"),
        ({"transport": "sse", "url": "https://x.example/sse"}, "sse"),
        ({"transportType": "streamableHttp", "url": "https://x.example/mcp"}, "http"),  # Cline
        ({"type": "streamable-http", "url": "http://127.0.0.1:9/mcp"}, "http"),
        ({"serverUrl": "https://x.example/mcp"}, "http"),  # Windsurf
        ({"type": "stdio", "command": "srv"}, "stdio"),
    ],
)
def test_transport_spellings(entry: dict[str, object], kind: str) -> None:
    assert parse_config({"mcpServers": {"s": entry}}).servers["s"].transport == kind


def test_vscode_shapes() -> None:
    vscode = {"servers": {"gh": {"type": "http", "url": "https://api.example/mcp", "headers": {"X": "1"}}}}
    assert parse_config(vscode).servers["gh"].url == "https://api.example/mcp"
    settings = {"mcp": {"servers": {"a": {"command": "srv"}}}}
    assert parse_config(settings).servers["a"].command == "srv"


def test_variable_expansion_everywhere() -> None:
    env = {"TOKEN": "s3cr3t-value", "HOST": "api.example", "BIN": "/opt/bin/srv"}
    cfg = parse_config(
        {
            "mcpServers": {
                "r": {"url": "https://${HOST}/mcp", "headers": {"Authorization": "Bearer ${env:TOKEN}"}},
                "l": {"command": "${BIN}", "args": ["--x=${MISSING:-fallback}"], "env": {"K": "${TOKEN}"}},
            }
        },
        environ=env,
    )
    assert cfg.servers["r"].url == "https://api.example/mcp"
    assert cfg.servers["r"].header_values() == {"Authorization": "Bearer s3cr3t-value"}
    assert cfg.servers["l"].command == "/opt/bin/srv"
    assert cfg.servers["l"].args == ["--x=fallback"]
    # secrets stay out of reprs
    assert "s3cr3t" not in repr(cfg)
    assert "s3cr3t" not in str(cfg.servers["r"])


def test_missing_variable_names_server_and_field() -> None:
    with pytest.raises(McpConfigError) as info:
        parse_config({"mcpServers": {"gh": {"url": "https://x.example", "headers": {"Auth": "${GH_TOKEN}"}}}}, {})
    assert info.value.server == "gh"
    assert info.value.field == "headers.Auth"
    assert "GH_TOKEN" in str(info.value)


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        ({"url": "ftp://x.example/mcp"}, "url", "scheme"),
        ({"url": "file:///etc/passwd"}, "url", "scheme"),
        ({"url": "https://user:pw@x.example/mcp"}, "url", "credentials"),
        ({"url": "http:///nohost"}, "url", "no host"),
        ({"type": "websocket", "url": "wss://x"}, "type", "unknown transport"),
        ({"command": ""}, "command", "non-empty"),
        ({"command": "srv", "args": "--flag"}, "args", "list"),
        ({"command": "srv", "url": "https://x"}, "url", "only remote"),
        ({"command": "srv", "colour": "red"}, "colour", "unknown field"),
        ({"command": "srv", "connect_timeout": -1}, "connect_timeout", "greater than 0"),
        ({"command": "srv", "roots": ["https://x/y"]}, "roots[0]", "file://"),
        ({"command": "srv", "trust": "maybe"}, "trust", "ask"),
        ({}, "command", "'url'"),
    ],
)
def test_errors_name_server_and_field(entry: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(McpConfigError) as info:
        parse_config({"mcpServers": {"srv1": entry}}, {})
    assert info.value.server == "srv1"
    assert info.value.field == field
    assert fragment in str(info.value)
    assert "srv1" in str(info.value)


def test_server_names_cannot_contain_dots() -> None:
    with pytest.raises(McpConfigError, match="no dots"):
        parse_config({"mcpServers": {"a.b": {"command": "x"}}})


def test_missing_section() -> None:
    with pytest.raises(McpConfigError, match="mcpServers"):
        parse_config({"servers_typo": {}})


def test_routekit_extras(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "mcpServers": {
                "a": {
                    "command": "srv",
                    "connect_timeout": 5,
                    "timeout": 12,
                    "allowTools": ["read_*", "list_*"],
                    "deny_tools": ["read_secret"],
                    "autoApprove": ["list_*"],
                    "roots": [str(tmp_path), {"uri": "file:///srv/data", "name": "data"}],
                    "disabled": False,
                    "protocol": "legacy",
                },
                "b": {"command": "srv", "enabled": False, "trust": True},
            }
        }
    )
    a, b = cfg.servers["a"], cfg.servers["b"]
    assert (a.connect_timeout, a.call_timeout, a.protocol) == (5, 12, "legacy")
    assert a.tool_allowed("read_file")
    assert a.tool_allowed("list_dir")
    assert not a.tool_allowed("read_secret")
    assert not a.tool_allowed("write_file")
    assert a.auto_approved("list_dir")
    assert not a.auto_approved("read_file")
    assert [r.uri for r in a.roots] == [tmp_path.as_uri(), "file:///srv/data"]
    assert a.roots[1].name == "data"
    assert b.disabled
    assert b.auto_approved("anything")
    assert list(cfg.enabled) == ["a"]


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"t": {"command": "srv"}}}))
    assert load_config(path).servers["t"].command == "srv"
    path.write_text("{not json")
    with pytest.raises(McpConfigError, match="cannot read"):
        load_config(path)
