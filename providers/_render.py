"""Text renderings of parts for providers that cannot carry them natively."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from providers.types import ToolResultPart


def render_tool_result_text(result: ToolResultPart) -> str:
    """One text for a tool result: text parts verbatim, other parts described, structured content as JSON.

    Used for providers whose tool-result slot takes a string (OpenAI Chat, Ollama) and as the fallback
    for media a provider cannot accept in a tool result.
    """
    from providers.types import AudioPart, ImagePart, ResourcePart, TextPart

    pieces: list[str] = []
    for part in result.content:
        if isinstance(part, TextPart):
            pieces.append(part.text)
        elif isinstance(part, ImagePart):
            where = part.url or f"{len(part.data or b'')} bytes inline"
            pieces.append(f"[image {part.media_type}: {where}]")
        elif isinstance(part, AudioPart):
            pieces.append(f"[audio {part.media_type}: {len(part.data)} bytes]")
        elif isinstance(part, ResourcePart):
            label = part.name or part.title or part.uri
            if part.text is not None:
                pieces.append(f"[resource {label} ({part.uri})]\n{part.text}")
            elif part.data is not None:
                pieces.append(f"[resource {label} ({part.uri}): {part.media_type or 'binary'}, {len(part.data)} bytes]")
            else:
                pieces.append(f"[resource link {label}: {part.uri}]")
    if result.structured is not None and not pieces:
        pieces.append(json.dumps(result.structured, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(pieces)
