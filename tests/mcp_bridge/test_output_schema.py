"""A tool's outputSchema is compiled once and kept with the tool (mcp_bridge.results.OutputSchema), never looked
up by object identity; a new listing with a new schema is checked against the new one."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest

import mcp_bridge.results as results
from mcp_bridge.results import OutputSchema, schema_problem, to_tool_result

NEEDS_X: dict[str, Any] = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
NEEDS_Y: dict[str, Any] = {"type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]}


def _result(structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text="ok")], structured_content=structured)


def _notes(schema: OutputSchema | dict[str, Any], structured: dict[str, Any]) -> list[str]:
    part = to_tool_result(_result(structured), call_id="c", name="s.t", output_schema=schema)
    return [p.text for p in part.content if getattr(p, "text", "").startswith("[routekit: the tool's structured")]


def test_a_kept_schema_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = results._validator

    def counting(schema_json: str) -> Any:
        compiled.append(schema_json)
        return real.__wrapped__(schema_json)

    monkeypatch.setattr(results, "_validator", counting)
    kept = OutputSchema(NEEDS_X)
    assert _notes(kept, {"x": 1}) == []
    [note] = _notes(kept, {"x": "one"})
    assert "at x:" in note
    assert _notes(kept, {"x": 2}) == []
    assert len(compiled) == 1


def test_a_plain_schema_is_checked_by_its_content() -> None:
    assert schema_problem(NEEDS_X, {"x": 1}) is None
    assert schema_problem(dict(NEEDS_X), {}) == "at (root): 'x' is a required property"
    assert schema_problem(NEEDS_Y, {"x": 1}) == "at (root): 'y' is a required property"
    assert schema_problem(NEEDS_X, None) == "the tool declares an outputSchema but returned no structured content"


def test_the_hub_keeps_one_schema_per_tool_and_renews_it_with_a_new_listing() -> None:
    from mcp_bridge import McpHub, parse_config
    from mcp_bridge.hub import _Connection

    hub = McpHub(parse_config({"mcpServers": {"s": {"command": "true"}}}))  # never entered: nothing runs
    connection = _Connection(hub, hub.config.servers["s"])
    first = types.Tool(name="t", input_schema={"type": "object"}, output_schema=dict(NEEDS_X))
    kept = connection._output_schema(first)
    assert kept is connection._output_schema(first)
    relisted = types.Tool(name="t", input_schema={"type": "object"}, output_schema=dict(NEEDS_Y))
    renewed = connection._output_schema(relisted)
    assert renewed is not None
    assert renewed is not kept
    assert renewed.problem({"x": 1}) == "at (root): 'y' is a required property"
    assert connection._output_schema(types.Tool(name="u", input_schema={"type": "object"})) is None
