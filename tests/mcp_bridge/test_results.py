"""CallToolResult → ToolResultPart: every content type, structured content checks, error results, size bounds."""

from __future__ import annotations

import base64

import mcp_types as types

from mcp_bridge.results import to_tool_result
from providers.types import AudioPart, ImagePart, ResourcePart, TextPart

PNG = b"\x89PNG\r\n\x1a\n-tiny"
WAV = b"RIFF....WAVE"


def convert(result: types.CallToolResult, schema: dict[str, object] | None = None, limit: int = 1_000_000):
    return to_tool_result(result, call_id="c1", name="srv.tool", output_schema=schema, max_bytes=limit)


def test_every_content_type() -> None:
    result = types.CallToolResult(
        content=[
            types.TextContent(text="hello"),
            types.ImageContent(data=base64.b64encode(PNG).decode(), mime_type="image/png"),
            types.AudioContent(data=base64.b64encode(WAV).decode(), mime_type="audio/wav"),
            types.ResourceLink(uri="file:///a.txt", name="a.txt", description="A file", mime_type="text/plain"),
            types.EmbeddedResource(resource=types.TextResourceContents(uri="mem://t", text="body", mime_type="text/x")),
            types.EmbeddedResource(
                resource=types.BlobResourceContents(uri="mem://b", blob=base64.b64encode(b"\0\1").decode())
            ),
        ]
    )
    part = convert(result)
    assert (part.call_id, part.name, part.is_error) == ("c1", "srv.tool", False)
    text, image, audio, link, embedded_text, embedded_blob = part.content
    assert text == TextPart(text="hello")
    assert isinstance(image, ImagePart)
    assert image.data == PNG
    assert image.media_type == "image/png"
    assert isinstance(audio, AudioPart)
    assert audio.data == WAV
    assert isinstance(link, ResourcePart)
    assert (link.uri, link.name, link.text, link.data) == (
        "file:///a.txt",
        "a.txt",
        None,
        None,
    )
    assert isinstance(embedded_text, ResourcePart)
    assert embedded_text.text == "body"
    assert embedded_text.media_type == "text/x"
    assert isinstance(embedded_blob, ResourcePart)
    assert embedded_blob.data == b"\0\1"
    assert "[image image/png" in part.text()


def test_is_error_becomes_error_result() -> None:
    part = convert(types.CallToolResult(content=[types.TextContent(text="no such file")], is_error=True))
    assert part.is_error
    assert part.text() == "no such file"


SCHEMA = {
    "type": "object",
    "properties": {"temperature": {"type": "number"}, "conditions": {"type": "string"}},
    "required": ["temperature", "conditions"],
    "additionalProperties": False,
}


def test_structured_content_matching_schema() -> None:
    data = {"temperature": 21.5, "conditions": "sunny"}
    part = convert(
        types.CallToolResult(content=[types.TextContent(text="21.5 sunny")], structured_content=data), SCHEMA
    )
    assert part.structured == data
    assert [p.text for p in part.content if isinstance(p, TextPart)] == ["21.5 sunny"]


def test_structured_content_mismatch_is_noted_not_raised() -> None:
    data = {"temperature": "hot", "conditions": "sunny", "extra": 1}
    part = convert(types.CallToolResult(content=[], structured_content=data), SCHEMA)
    assert part.structured == data
    assert not part.is_error
    note = part.content[-1]
    assert isinstance(note, TextPart)
    assert "does not match its outputSchema" in note.text


def test_missing_structured_content_is_noted() -> None:
    part = convert(types.CallToolResult(content=[types.TextContent(text="x")]), SCHEMA)
    assert "returned no structured content" in part.text()


def test_unresolvable_ref_in_schema_does_not_crash() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.invalid/s.json"}}}
    part = convert(types.CallToolResult(content=[], structured_content={"a": 1}), schema)
    assert "cannot be resolved" in part.text()


def test_non_object_structured_content_shown_as_text() -> None:
    part = convert(types.CallToolResult(content=[], structured_content=[1, 2, 3]))
    assert part.structured is None
    assert part.text() == "[1,2,3]"


def test_oversized_text_truncated_with_marker() -> None:
    part = convert(types.CallToolResult(content=[types.TextContent(text="é" * 600_000)]), limit=100_000)
    first, marker = part.content
    assert isinstance(first, TextPart)
    assert len(first.text.encode()) <= 100_000
    assert isinstance(marker, TextPart)
    assert "result truncated" in marker.text
    assert "limit 100000 bytes" in marker.text


def test_oversized_media_replaced_by_note() -> None:
    image = types.ImageContent(data=base64.b64encode(b"x" * 5000).decode(), mime_type="image/png")
    part = convert(types.CallToolResult(content=[types.TextContent(text="t"), image]), limit=1000)
    assert not any(isinstance(p, ImagePart) for p in part.content)
    assert "image (image/png, 5000 bytes) omitted" in part.text()


def test_invalid_base64_is_reported() -> None:
    part = convert(types.CallToolResult(content=[types.ImageContent(data="!!notbase64!!", mime_type="image/png")]))
    assert "invalid base64" in part.text()
