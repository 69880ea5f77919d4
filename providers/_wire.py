"""Reading provider responses as plain JSON through the SDKs (Anthropic and OpenAI: their generic ``post``;
Gemini: its ``should_return_http_response``).

:class:`WireView` is an attribute view over decoded JSON, standing in for an SDK's response and event models.

The Anthropic and OpenAI adapters read responses and stream events through the SDKs' generic ``post`` with
them left as decoded JSON (building the SDKs' typed objects costs more CPU than the rest of the adapter).
This view reads like a model built by the SDKs' ``construct``: a missing or null field is ``None`` and
nested objects and lists are viewed the same way. Subclasses name the fields kept as plain JSON
(``RAW_FIELDS``) and the fields a model declares (``DECLARED``), so ``model_extra`` holds the rest as in
pydantic.
"""

from __future__ import annotations

import json
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


def request_body(params: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The body the SDK's typed ``create`` would send for these keyword parameters: ``extra_body`` merged
    last (as the SDKs merge it) and ``stream`` set for a streaming request."""
    body = dict(params)
    body.update(body.pop("extra_body", None) or {})
    if stream:
        body["stream"] = True
    return body


def json_object(content: bytes | str) -> dict[str, Any] | None:
    """A response body decoded as a JSON object, or None when it is not one (an endpoint that is not the API)."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
