"""An attribute view over a streamed event's decoded JSON, standing in for an SDK's event models.

The Anthropic and OpenAI adapters read stream events through the SDKs' generic ``post`` with the events
left as decoded JSON (building the SDKs' typed event objects costs more CPU than the rest of the adapter).
This view reads like a model built by the SDKs' ``construct``: a missing or null field is ``None`` and
nested objects and lists are viewed the same way. Subclasses name the fields kept as plain JSON
(``RAW_FIELDS``) and the fields a model declares (``DECLARED``), so ``model_extra`` holds the rest as in
pydantic.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WireView:
    __slots__ = ("_data",)

    RAW_FIELDS: ClassVar[frozenset[str]] = frozenset()
    DECLARED: ClassVar[frozenset[str] | None] = None

    def __init__(self, data: Any) -> None:
        self._data = data if isinstance(data, dict) else {}  # an event that is not an object reads as empty

    def __getattr__(self, name: str) -> Any:
        if name == "model_extra":
            declared = self.DECLARED
            return None if declared is None else {k: v for k, v in self._data.items() if k not in declared}
        value = self._data.get(name)
        return value if name in self.RAW_FIELDS else self._view(value)

    def _view(self, value: Any) -> Any:
        if isinstance(value, dict):
            return type(self)(value)
        if isinstance(value, list):
            return [self._view(item) for item in value]
        return value
