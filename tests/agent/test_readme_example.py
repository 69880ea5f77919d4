"""The README's Python API example runs as written (against a fake provider and our stdio MCP server)."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest

from tests.agent.conftest import server_entry
from tests.providers.conftest import config_for, start_fake

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text.split("### The Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README lost its Python API example"
    return match.group(1)


def test_readme_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = readme_example()
    assert 'provider="anthropic"' in code
    assert 'mcp="mcp.json"' in code
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROUTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ROUTEKIT_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"t": server_entry(tmp_path / "calls.jsonl")}}))
    fake = start_fake("anthropic")
    try:
        namespace = {"__name__": "readme_example", "PROVIDER": config_for("anthropic", fake)}
        exec(compile(code.replace('provider="anthropic"', "provider=PROVIDER"), "README.md", "exec"), namespace)
    finally:
        fake.stop()
    out = capsys.readouterr().out
    assert "end_turn" in out, out
    tool_lines = [line for line in out.splitlines() if line.startswith("t.")]
    assert tool_lines, f"the example's run made no tool call: {out}"
    assert (tmp_path / "calls.jsonl").exists(), "the MCP tool server never ran"
    assert "ToolCallStarted" in out
    assert "RunFinished" in out
