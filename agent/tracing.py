"""OpenTelemetry spans for runs, model calls and tool calls (GenAI semantic conventions), or nothing.

Tracing is on only when the application has configured OpenTelemetry: ``opentelemetry.trace`` is already
imported and a real tracer provider is set (not the API's proxy or no-op provider). Otherwise every
span is a shared no-op object and nothing is imported, so an untraced run pays one attribute check per
span. ``opentelemetry-api`` is an optional dependency.

Span names and attributes follow the GenAI conventions: ``invoke_agent routekit`` per run,
``chat {model}`` per model call, ``execute_tool {tool}`` per tool call, with ``gen_ai.operation.name``,
``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
``gen_ai.conversation.id``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id`` and ``error.type``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Tracer", "get_tracer"]


class _NoSpan:
    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def record_error(self, error: BaseException) -> None:
        return None


_NO_SPAN = _NoSpan()


class _Span:
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set_attribute(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def record_error(self, error: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", type(error).__name__)
        self._span.set_status(Status(StatusCode.ERROR, str(error)[:500]))


class Tracer:
    """Opens spans when OpenTelemetry is configured; see the module docstring."""

    def __init__(self, otel_tracer: Any | None) -> None:
        self._tracer = otel_tracer

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextmanager
    def span(self, name: str, attributes: dict[str, Any]) -> Iterator[_Span | _NoSpan]:
        if self._tracer is None:
            yield _NO_SPAN
            return
        clean = {key: value for key, value in attributes.items() if value is not None}
        with self._tracer.start_as_current_span(name, attributes=clean, record_exception=False) as span:
            wrapped = _Span(span)
            try:
                yield wrapped
            except BaseException as error:
                wrapped.record_error(error)
                raise

    def run(self, session_id: str, model: str | None) -> Any:
        return self.span(
            "invoke_agent routekit",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "routekit",
                "gen_ai.conversation.id": session_id,
                "gen_ai.request.model": model,
            },
        )

    def chat(self, provider: str, model: str, session_id: str) -> Any:
        return self.span(
            f"chat {model}",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
                "gen_ai.conversation.id": session_id,
            },
        )

    def tool(self, name: str, call_id: str) -> Any:
        return self.span(
            f"execute_tool {name}",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.type": "extension",
            },
        )


_DISABLED = Tracer(None)


def get_tracer() -> Tracer:
    """A tracer that records spans when the application configured OpenTelemetry, else a no-op one."""
    if "opentelemetry.trace" not in sys.modules:
        return _DISABLED
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return _DISABLED
    return Tracer(provider.get_tracer("routekit.agent"))
