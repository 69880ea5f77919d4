"""The stream assembler: tool calls built from streamed fragments.

Providers fragment tool calls differently and compatible servers add their own quirks. The
assembler keys calls by (index, id) and tolerates the known ones:

* OpenAI: the first fragment has index, id and name; later ones only index and an arguments piece.
* Ollama (and some OpenAI-compatible servers): several *different* calls all at index 0, each whole.
* Whole calls in one chunk (arguments as a complete string or an already parsed object).
* Fragments without an index (continue the most recent call, or the call with that id).
* A fragment on an index whose id arrived earlier (continues that call).
* Several calls in one chunk.

Calls come out in order of first appearance. Arguments that are not a JSON object are kept as
``raw_arguments`` so the agent loop can report the problem to the model instead of crashing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from providers.types import ProviderData, ToolCallPart


def new_call_id() -> str:
    """An id for providers that send none (Ollama, older Gemini): safe under every provider's id rule."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class _PendingCall:
    position: int
    index: int | None
    id: str | None
    name: str = ""
    fragments: list[str] = field(default_factory=list)
    parsed: dict[str, Any] | None = None
    provider_data: ProviderData | None = None

    @property
    def arguments_complete(self) -> bool:
        """Whether the arguments received so far already form a whole JSON object."""
        if self.parsed is not None:
            return True
        text = "".join(self.fragments)
        return bool(text.strip()) and parse_arguments(text)[1] is None


class ToolCallAssembler:
    """Collects tool-call fragments of one response and yields complete ``ToolCallPart`` objects."""

    def __init__(self) -> None:
        self._calls: list[_PendingCall] = []
        self._by_index: dict[int, _PendingCall] = {}
        self._by_id: dict[str, _PendingCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def add(
        self,
        *,
        index: int | None = None,
        id: str | None = None,
        name: str | None = None,
        arguments: str | dict[str, Any] | None = None,
        provider_data: ProviderData | None = None,
    ) -> int:
        """Add one fragment; returns the position of the call it belongs to (0-based, stable)."""
        call = self._find(index, id)
        starts_call = not id and bool(name) and arguments not in (None, "")
        if call is not None and starts_call and call.name and call.arguments_complete:
            # A named fragment without an id after a finished call is the next call (Ollama sends whole
            # calls with neither id nor a distinct index); servers that repeat the name on every fragment
            # of one call never reach this point because that call's arguments are not complete yet.
            call = None
        if call is None:
            call = _PendingCall(position=len(self._calls), index=index, id=id or None)
            self._calls.append(call)
        if index is not None:
            self._by_index[index] = call
            call.index = index
        if id:
            call.id = id
            self._by_id[id] = call
        if name and not call.name:
            call.name = name
        if isinstance(arguments, dict):
            call.parsed = arguments
            call.fragments.clear()
        elif arguments:
            call.fragments.append(arguments)
        if provider_data is not None:
            call.provider_data = provider_data
        return call.position

    def _find(self, index: int | None, id: str | None) -> _PendingCall | None:
        if id:
            known = self._by_id.get(id)
            if known is not None:
                return known
            if index is not None:
                at_index = self._by_index.get(index)
                # Same index, no id yet: the id arrives late on the call that opened the index.
                if at_index is not None and at_index.id is None:
                    return at_index
            # A new id is a new call, even at an index already used (Ollama puts every call at 0).
            return None
        if index is not None:
            return self._by_index.get(index)
        return self._calls[-1] if self._calls else None

    def complete(self) -> list[ToolCallPart]:
        """The finished calls, in order of first appearance."""
        return [self._finish(call) for call in self._calls]

    @staticmethod
    def _finish(call: _PendingCall) -> ToolCallPart:
        call_id = call.id or new_call_id()
        if call.parsed is not None:
            return ToolCallPart(id=call_id, name=call.name, arguments=call.parsed, provider_data=call.provider_data)
        text = "".join(call.fragments)
        arguments, raw = parse_arguments(text)
        return ToolCallPart(
            id=call_id, name=call.name, arguments=arguments, raw_arguments=raw, provider_data=call.provider_data
        )


def parse_arguments(text: str | None) -> tuple[dict[str, Any], str | None]:
    """Parse a tool call's argument text. Returns (arguments, raw_text_if_invalid)."""
    if text is None or not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError:
        return {}, text
    if not isinstance(value, dict):
        return {}, text
    return value, None
