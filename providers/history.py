"""The history normalizer, run by every adapter on every request.

:func:`normalize_history` turns a stored conversation (which may have been produced by several
providers, interrupted mid-tool-call, or trimmed) into a history the target provider accepts. It
returns a NEW list and never mutates its input; messages and parts that need no change are reused
as they are (no deep copies: this runs on every request).

What it does, in order of the wire rules behind it:

* **Tool-call ids** are remapped to the target's :class:`~providers.profiles.IdRule` (Mistral needs
  exactly nine alphanumerics, OpenAI at most 40 characters, Anthropic ``[a-zA-Z0-9_-]+``). Ids the
  target accepts are kept. The mapping is deterministic and collision-free within the conversation:
  two calls never share an id, even when a provider reused one (some OpenAI-compatible servers number
  calls ``0, 1, ...`` per turn), and a call and its result always get the same id. Ids are assigned
  in conversation order and never depend on later messages, so the ids of a prefix stay the same as
  the conversation grows (prompt caches keep hitting).
* **Tool results are moved into place**: every result goes into one ``tool`` message right after
  the assistant turn that made the call, in the order of the calls (OpenAI sends one message per
  result, parallel tools finish in any order, and a result may have been stored after a later user
  turn). Anthropic requires every ``tool_use`` to be answered in the very next message; Ollama
  matches results by order.
* **Dangling calls** (no result anywhere after the call: the run was interrupted, or the history ends
  with the calls when the request is sent) get an error result saying the call was interrupted, so
  the model knows the tool did not run instead of the provider rejecting the request.
* **Orphan results** (no matching call before them, or a second result for an answered call) are
  DROPPED. Decision: a tool result is untrusted content (whatever the tool or the web page it read
  said); turning it into a user text note would give it the authority of the user's own words, and
  without its call the model cannot tell which call and arguments produced it. Orphans appear when a
  history was trimmed between a call and its result; the trimmer decided that the call is gone.
* **Another provider's state is dropped**: ``ThinkingPart`` whose ``provider`` is not the target and
  ``provider_data`` tagged with another provider. Signatures are only valid for the provider (and
  key) that produced them; sending them elsewhere is rejected or, worse, silently misread. Foreign
  thinking TEXT becomes nothing by default: it is another model's private scratch work, often a
  summary or redacted; replaying it as assistant text would make the target believe it said those
  words aloud, and costs input tokens on every later request. ``foreign_thinking="text"`` keeps it as
  a marked text part for callers that want continuity anyway. Same-provider parts are kept untouched.
* **Gemini** (``profile.family == "gemini"``): Gemini 3 rejects a history whose function calls lack a
  ``thoughtSignature``. Calls made by another provider (or recorded without one) get the documented
  dummy :data:`GEMINI_SKIP_SIGNATURE` in ``ProviderData(provider=profile.name)``; the Gemini adapter
  sends ``data["thought_signature"]`` as the wire text.
* **Empty assistant messages** (no parts, or only blank text) are dropped: Anthropic rejects empty
  content and blank text blocks. Consecutive user messages are left alone; adapters merge them where
  their wire needs it.

Pass ``repairs=[]`` to collect one human-readable line per repair (for logs and debugging).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Literal, TypeAlias

from providers.profiles import IdRule, Profile
from providers.types import (
    Message,
    Part,
    ProviderData,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultContent,
    ToolResultPart,
)

__all__ = [
    "GEMINI_SKIP_SIGNATURE",
    "INTERRUPTED_RESULT_TEXT",
    "ForeignThinking",
    "normalize_history",
    "remap_call_id",
]

# Documented Gemini 3 value that makes the API skip thought-signature validation for a function call
# that was not produced by Gemini (ai.google.dev "Thought signatures" FAQ; also Goose
# formats/google/messages.rs, octos-org/octos PR #1897).
GEMINI_SKIP_SIGNATURE = "skip_thought_signature_validator"

INTERRUPTED_RESULT_TEXT = (
    "tool call was interrupted: no result was recorded for this call, so the tool may not have run. "
    "Call it again if the result is still needed."
)

ForeignThinking: TypeAlias = Literal["drop", "text"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# --------------------------------------------------------------------------- ids


def _alnum_digest(seed: str, length: int) -> str:
    """``length`` alphanumeric characters derived from ``seed`` (deterministic, well spread).

    One byte per character modulo 62: the slight bias towards the first eight characters costs less than
    0.1 bit per character, far from mattering for collision-freedom (which is enforced anyway).
    """
    out = ""
    counter = 0
    while len(out) < length:
        digest = hashlib.sha256(f"{counter}:{seed}".encode()).digest()
        out += "".join(_BASE62[byte % 62] for byte in digest[: length - len(out)])
        counter += 1
    return out


@functools.lru_cache(maxsize=4096)  # the same ids are remapped on every request of a session
def _hashed_id(seed: str, rule: IdRule) -> str:
    """An id accepted by ``rule`` derived from ``seed``; ValueError if the rule accepts no such id."""
    if rule.exact_length is not None:
        candidates = [_alnum_digest(seed, rule.exact_length)]
    else:
        length = min(rule.max_length, 29)
        digest = _alnum_digest(seed, 24)
        candidates = [("call_" + digest)[:length], digest[:length]] if length >= 8 else [digest[:length]]
    for candidate in candidates:
        if rule.accepts(candidate):
            return candidate
    raise ValueError(f"cannot build a tool-call id accepted by the id rule ({rule.reason})")


def remap_call_id(call_id: str, rule: IdRule) -> str:
    """Deterministic id accepted by ``rule``: the id itself if accepted, else one derived from its hash.

    Stateless; :func:`normalize_history` additionally keeps ids unique within a conversation.
    """
    if rule.accepts(call_id):
        return call_id
    return _hashed_id(call_id, rule)


class _IdAllocator:
    """Unique ids in conversation order: earlier calls never change when later ones are added."""

    __slots__ = ("_rule", "_used")

    def __init__(self, rule: IdRule) -> None:
        self._rule = rule
        self._used: set[str] = set()

    def allocate(self, original: str) -> str:
        candidate = remap_call_id(original, self._rule)
        salt = 1
        while candidate in self._used:
            candidate = _hashed_id(f"{original}#{salt}", self._rule)
            salt += 1
        self._used.add(candidate)
        return candidate


# --------------------------------------------------------------------------- matching


@dataclass(slots=True)
class _Call:
    message_index: int
    part: ToolCallPart
    new_id: str
    result: ToolResultPart | None = None
    result_index: int = -1


def _match_calls(messages: list[Message], rule: IdRule) -> tuple[dict[int, list[_Call]], int]:
    """Pair results with calls: each result answers the latest unanswered call with its id before it.

    Returns the calls per assistant message index and the number of orphan results.
    """
    allocator = _IdAllocator(rule)
    calls_by_message: dict[int, list[_Call]] = {}
    open_calls: dict[str, list[_Call]] = {}
    orphans = 0
    for index, message in enumerate(messages):
        for part in message.parts:
            if isinstance(part, ToolCallPart) and message.role == "assistant":
                call = _Call(index, part, allocator.allocate(part.id))
                calls_by_message.setdefault(index, []).append(call)
                open_calls.setdefault(part.id, []).append(call)
            elif isinstance(part, ToolResultPart):
                waiting = open_calls.get(part.call_id)
                if waiting:
                    call = waiting.pop()
                    call.result, call.result_index = part, index
                else:
                    orphans += 1
    return calls_by_message, orphans


# --------------------------------------------------------------------------- parts


class _Normalizer:
    __slots__ = ("_foreign_thinking", "_gemini", "_name", "_repairs")

    def __init__(self, profile: Profile, foreign_thinking: ForeignThinking, repairs: list[str] | None) -> None:
        self._name = profile.name
        self._gemini = profile.family == "gemini"
        self._foreign_thinking = foreign_thinking
        self._repairs = repairs

    def note(self, text: str) -> None:
        if self._repairs is not None:
            self._repairs.append(text)

    def _foreign(self, data: ProviderData | None) -> bool:
        return data is not None and data.provider != self._name

    def plain_part(self, part: Part) -> Part | None:
        """A user/assistant part other than calls and results, cleaned for the target (None: drop)."""
        if isinstance(part, ThinkingPart):
            if part.provider == self._name:
                return part
            self.note(f"dropped thinking from {part.provider or 'an unknown provider'}")
            if self._foreign_thinking == "text" and part.text.strip():
                return TextPart(text=f"[reasoning from {part.provider or 'another model'}]\n{part.text}")
            return None
        if self._foreign(part.provider_data):
            return part.model_copy(update={"provider_data": None})
        return part

    def call(self, call: _Call) -> ToolCallPart:
        part = call.part
        update: dict[str, object] = {}
        if call.new_id != part.id:
            update["id"] = call.new_id
        data = part.provider_data
        if self._foreign(data):
            data = update["provider_data"] = None
        if self._gemini and data is None:
            update["provider_data"] = ProviderData(
                provider=self._name, data={"thought_signature": GEMINI_SKIP_SIGNATURE}
            )
        return part.model_copy(update=update) if update else part

    def result(self, call: _Call) -> ToolResultPart:
        result = call.result
        if result is None:
            self.note(f"inserted an error result for interrupted call {call.part.id!r} ({call.part.name})")
            return ToolResultPart(
                call_id=call.new_id,
                name=call.part.name,
                content=[TextPart(text=INTERRUPTED_RESULT_TEXT)],
                is_error=True,
            )
        update: dict[str, object] = {}
        if result.call_id != call.new_id:
            update["call_id"] = call.new_id
        if self._foreign(result.provider_data):
            update["provider_data"] = None
        if any(self._foreign(item.provider_data) for item in result.content):
            update["content"] = [self._clean_content(item) for item in result.content]
        return result.model_copy(update=update) if update else result

    def _clean_content(self, item: ToolResultContent) -> ToolResultContent:
        return item.model_copy(update={"provider_data": None}) if self._foreign(item.provider_data) else item


def _is_blank(parts: list[Part]) -> bool:
    return all(isinstance(part, TextPart) and not part.text.strip() for part in parts)


def _same(a: list[Part], b: list[Part]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- the normalizer


def normalize_history(
    messages: list[Message],
    profile: Profile,
    *,
    foreign_thinking: ForeignThinking = "drop",
    repairs: list[str] | None = None,
) -> list[Message]:
    """Return a new history that is valid for ``profile`` (the input is not modified).

    ``foreign_thinking``: what becomes of another provider's reasoning ("drop", the default, or
    "text": a marked text part). ``repairs``: when given, one line per repair is appended to it.
    """
    calls_by_message, orphans = _match_calls(messages, profile.tool_call_ids)
    if orphans:
        _note(repairs, f"dropped {orphans} tool result(s) without a matching call")
    work = _Normalizer(profile, foreign_thinking, repairs)
    out: list[Message] = []
    for index, message in enumerate(messages):
        calls = calls_by_message.get(index)
        if message.role == "assistant":
            _append_assistant(out, index, message, calls, work, messages)
            continue
        parts: list[Part] = []
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                continue  # matched ones are placed after their call; orphans are dropped
            if message.role == "tool" or isinstance(part, ToolCallPart):
                work.note(f"dropped a {part.type} part from a {message.role} message (it does not belong there)")
                continue
            cleaned = work.plain_part(part)
            if cleaned is not None:
                parts.append(cleaned)
        if not parts:
            continue
        out.append(message if _same(parts, message.parts) else Message.model_construct(role=message.role, parts=parts))
    return out


def _note(repairs: list[str] | None, text: str) -> None:
    if repairs is not None:
        repairs.append(text)


def _append_assistant(
    out: list[Message],
    index: int,
    message: Message,
    calls: list[_Call] | None,
    work: _Normalizer,
    messages: list[Message],
) -> None:
    """Append the cleaned assistant turn and, when it made calls, the tool message answering them."""
    pending = iter(calls or ())
    parts: list[Part] = []
    for part in message.parts:
        if isinstance(part, ToolCallPart):
            parts.append(work.call(next(pending)))
        elif isinstance(part, ToolResultPart):
            work.note("took a tool result out of an assistant message (placed after its call, or dropped as an orphan)")
        else:
            cleaned = work.plain_part(part)
            if cleaned is not None:
                parts.append(cleaned)
    if _is_blank(parts):
        work.note(f"dropped empty assistant message #{index}")
        return
    out.append(message if _same(parts, message.parts) else Message.model_construct(role="assistant", parts=parts))
    if not calls:
        return
    results: list[Part] = [work.result(call) for call in calls]
    for call in calls:
        if call.result is not None and any(m.role != "tool" for m in messages[index + 1 : call.result_index]):
            work.note(f"moved the result of call {call.part.id!r} next to its call")
    source = messages[index + 1] if index + 1 < len(messages) else None
    if source is not None and source.role == "tool" and _same(results, source.parts):
        out.append(source)  # already in place and unchanged: reuse the stored message
    else:
        out.append(Message.model_construct(role="tool", parts=results))
