"""MCP ``CallToolResult`` → routekit's normalized :class:`~providers.types.ToolResultPart`.

Every content type maps to a part: text, image, audio, resource links, embedded resources (text and blob).
``structuredContent`` is checked against the tool's ``outputSchema``; a mismatch is noted in the result (the
model and the user see it) instead of failing the call. ``isError`` results become ``is_error`` parts the model
sees. The whole result is bounded by a byte budget (1 MB by default): text is cut with a visible marker and
media or structured content that does not fit is replaced by a note, so one tool cannot flood the context.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from providers.types import AudioPart, ImagePart, ResourcePart, TextPart, ToolResultContent, ToolResultPart

if TYPE_CHECKING:
    import mcp_types

__all__ = [
    "DEFAULT_MAX_RESULT_BYTES",
    "OutputSchema",
    "convert_content",
    "error_result",
    "schema_problem",
    "to_tool_result",
]

DEFAULT_MAX_RESULT_BYTES = 1_000_000


class _Budget:
    """Bytes left for the result; every part draws from it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit
        self.dropped = 0  # bytes not passed on

    def take_text(self, text: str) -> tuple[str, bool]:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size <= self.left:
            self.left -= size
            return text, False
        keep = max(self.left, 0)
        cut = text.encode("utf-8", "surrogatepass")[:keep].decode("utf-8", "ignore")
        self.left = 0
        self.dropped += size - len(cut.encode("utf-8", "surrogatepass"))
        return cut, True

    def fits(self, size: int) -> bool:
        if size <= self.left:
            self.left -= size
            return True
        self.dropped += size
        return False


def error_result(call_id: str, name: str, message: str) -> ToolResultPart:
    """An error result the model sees (failed call, timeout, lost connection, unknown tool)."""
    return ToolResultPart(call_id=call_id, name=name, content=[TextPart(text=message)], is_error=True)


def to_tool_result(
    result: mcp_types.CallToolResult,
    *,
    call_id: str,
    name: str,
    output_schema: OutputSchema | dict[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> ToolResultPart:
    """Convert one MCP tool result. ``name`` is the canonical tool name (``server.tool``). ``output_schema``: the
    tool's, as an :class:`OutputSchema` kept for the tool (its validator is compiled once) or a plain schema."""
    budget = _Budget(max_bytes)
    content = convert_content(result.content, budget)
    structured: dict[str, Any] | None = None
    raw_structured = result.structured_content
    if raw_structured is not None:
        encoded = json.dumps(raw_structured, ensure_ascii=False, separators=(",", ":"))
        if not budget.fits(len(encoded.encode("utf-8"))):
            content.append(TextPart(text="[routekit: structured content omitted: larger than the result limit]"))
        elif isinstance(raw_structured, dict):
            structured = raw_structured
        else:  # 2026-07-28 allows any JSON value; the normalized model carries objects, so show it as text
            content.append(TextPart(text=encoded))
    if output_schema is not None and not result.is_error:
        if not isinstance(output_schema, OutputSchema):
            output_schema = OutputSchema(output_schema)
        problem = output_schema.problem(raw_structured)
        if problem is not None:
            content.append(
                TextPart(text=f"[routekit: the tool's structured content does not match its outputSchema: {problem}]")
            )
    if budget.dropped:
        content.append(
            TextPart(text=f"[routekit: result truncated: {budget.dropped} bytes omitted (limit {budget.limit} bytes)]")
        )
    return ToolResultPart(call_id=call_id, name=name, content=content, structured=structured, is_error=result.is_error)


def convert_content(blocks: list[Any], budget: _Budget | None = None) -> list[ToolResultContent]:
    """MCP content blocks → normalized parts, within ``budget`` (unbounded when None)."""
    budget = budget or _Budget(1 << 62)
    parts: list[ToolResultContent] = []
    for block in blocks:
        part = _convert_block(block, budget)
        if part is not None:
            parts.append(part)
    return parts


def _convert_block(block: Any, budget: _Budget) -> ToolResultContent | None:
    kind = getattr(block, "type", None)
    if kind == "text":
        text, cut = budget.take_text(block.text)
        return TextPart(text=text) if text or not cut else None
    if kind in ("image", "audio"):
        data = _b64(block.data)
        if data is None:
            return TextPart(text=f"[routekit: {kind} content with invalid base64 data omitted]")
        if not budget.fits(len(data)):
            return TextPart(text=f"[routekit: {kind} ({block.mime_type}, {len(data)} bytes) omitted: over the limit]")
        if kind == "image":
            return ImagePart(media_type=block.mime_type, data=data)
        return AudioPart(media_type=block.mime_type, data=data)
    if kind == "resource_link":
        return ResourcePart(
            uri=str(block.uri),
            name=block.name,
            title=getattr(block, "title", None),
            description=block.description,
            media_type=block.mime_type,
        )
    if kind == "resource":
        return _embedded(block.resource, budget)
    return TextPart(text=f"[routekit: unsupported content type {kind!r} omitted]")


def _embedded(resource: Any, budget: _Budget) -> ToolResultContent:
    uri = str(resource.uri)
    if getattr(resource, "text", None) is not None:
        text, _ = budget.take_text(resource.text)
        return ResourcePart(uri=uri, media_type=resource.mime_type, text=text)
    data = _b64(getattr(resource, "blob", "") or "")
    if data is None:
        return TextPart(text=f"[routekit: embedded resource {uri} with invalid base64 data omitted]")
    if not budget.fits(len(data)):
        return ResourcePart(
            uri=uri, media_type=resource.mime_type, description=f"{len(data)} bytes omitted: over the result limit"
        )
    return ResourcePart(uri=uri, media_type=resource.mime_type, data=data)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class OutputSchema:
    """A tool's ``outputSchema`` with its validator, compiled on first use and kept with it (the hub keeps one per
    listed tool, so a tool's results are checked without compiling or serializing its schema again)."""

    __slots__ = ("_compiled", "_validator", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._compiled = False
        self._validator: Any = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not satisfy the schema, or None when it does (or the schema cannot be used)."""
        if value is None:
            return "the tool declares an outputSchema but returned no structured content"
        if not self._compiled:
            self._validator = _validator(json.dumps(self.schema, sort_keys=True))
            self._compiled = True
        validator = self._validator
        if validator is None:
            return None
        from referencing.exceptions import Unresolvable

        try:
            if validator.is_valid(value):  # the common case: no error report needed
                return None
            from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

            error = best_match(validator.iter_errors(value))
        except Unresolvable as exc:
            return f"the outputSchema has a reference that cannot be resolved ({exc})"
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"at {where}: {error.message}"[:500]


def schema_problem(schema: dict[str, Any], value: Any) -> str | None:
    """Why ``value`` does not satisfy ``schema``, or None when it does (or the schema cannot be used)."""
    return OutputSchema(schema).problem(value)


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A compiled validator per distinct schema; None for a schema that is itself invalid.

    No remote ``$ref`` is ever fetched: the registry is empty, so references resolve inside the schema only.
    """
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]
    from referencing import Registry

    schema = json.loads(schema_json)
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    return cls(schema, registry=Registry())
