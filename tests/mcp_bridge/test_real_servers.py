"""The hub against reference servers nobody here wrote: server-filesystem and server-memory (npm),
mcp-server-time and mcp-server-git (PyPI), all over stdio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from mcp_bridge import McpHub, parse_config

from .conftest import FILESYSTEM, MEMORY, PY

pytestmark = pytest.mark.anyio


async def test_filesystem_uses_our_roots(reference_servers: None, tmp_path: Path) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "startup-dir"
    allowed.mkdir()
    other.mkdir()
    (allowed / "note.txt").write_text("from the root")
    # Started with `other` on the command line; our roots replace its allowed directories.
    entry = {"command": "node", "args": [str(FILESYSTEM), str(other)], "roots": [str(allowed)]}
    async with McpHub(parse_config({"mcpServers": {"fs": entry}})) as hub:
        assert hub.status()["fs"].state == "ready", hub.status()["fs"].error
        # The server asks for roots/list after `initialized`, asynchronously: wait until it has applied ours.
        with anyio.move_on_after(10):
            while str(allowed) not in (await hub.call_tool("fs.list_allowed_directories", {})).text():
                await anyio.sleep(0.1)
        listed = await hub.call_tool("fs.list_allowed_directories", {})
        assert str(allowed) in listed.text()
        assert str(other) not in listed.text()
        read = await hub.call_tool("fs.read_text_file", {"path": str(allowed / "note.txt")})
        assert read.text() == "from the root" or "from the root" in read.text()
        outside = await hub.call_tool("fs.read_text_file", {"path": "/etc/hostname"})
        assert outside.is_error
        spec = hub.tool("fs.write_file")
        assert spec is not None
        assert spec.annotations is not None
        assert spec.annotations.read_only is False


async def test_memory_graph(reference_servers: None, tmp_path: Path) -> None:
    entry = {"command": "node", "args": [str(MEMORY)], "env": {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}}
    async with McpHub(parse_config({"mcpServers": {"mem": entry}})) as hub:
        created = await hub.call_tool(
            "mem.create_entities",
            {"entities": [{"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]},
        )
        assert not created.is_error, created.text()
        graph = await hub.call_tool("mem.read_graph", {})
        assert not graph.is_error
        assert "does not match" not in graph.text()
        assert graph.structured is not None
        assert graph.structured["entities"][0]["name"] == "Ada"


async def test_time_server(reference_servers: None) -> None:
    entry = {"command": PY, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
    async with McpHub(parse_config({"mcpServers": {"time": entry}})) as hub:
        assert {s.name for s in hub.tools()} == {"time.get_current_time", "time.convert_time"}
        now = await hub.call_tool("time.get_current_time", {"timezone": "Europe/Paris"})
        assert not now.is_error
        assert "Europe/Paris" in now.text()
        bad = await hub.call_tool("time.get_current_time", {"timezone": "Mars/Olympus"})
        assert bad.is_error


async def test_git_server(reference_servers: None, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("hello")
    entry = {"command": PY, "args": ["-m", "mcp_server_git", "--repository", str(repo)]}
    async with McpHub(parse_config({"mcpServers": {"git": entry}})) as hub:
        assert "git.git_status" in {s.name for s in hub.tools()}
        status = await hub.call_tool("git.git_status", {"repo_path": str(repo)})
        assert not status.is_error
        assert "a.txt" in status.text()
