"""The history normalizer, run by every adapter on every request.

PLACEHOLDER IMPLEMENTATION: the public API is fixed (``normalize_history``); the full normalizer
(dangling-call repair, cross-provider thinking conversion, Gemini signature handling) replaces it.
"""

from __future__ import annotations

import hashlib

from providers.profiles import IdRule, Profile
from providers.types import Message, ToolCallPart, ToolResultPart


def remap_call_id(call_id: str, rule: IdRule) -> str:
    """Deterministic id accepted by ``rule``; the call and its result map identically."""
    if rule.accepts(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()
    if rule.exact_length is not None:
        return digest[: rule.exact_length]
    return ("call_" + digest)[: min(rule.max_length, 29)]


def normalize_history(messages: list[Message], profile: Profile) -> list[Message]:
    """Return a copy of ``messages`` that is valid for ``profile`` (the input is not modified)."""
    rule = profile.tool_call_ids
    out: list[Message] = []
    for message in messages:
        parts = []
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                part = part.model_copy(update={"id": remap_call_id(part.id, rule)})
            elif isinstance(part, ToolResultPart):
                part = part.model_copy(update={"call_id": remap_call_id(part.call_id, rule)})
            parts.append(part)
        out.append(message.model_copy(update={"parts": parts}))
    return out
