"""The schema compiler: MCP tool definitions -> each provider's accepted form, with a loss report.

PLACEHOLDER IMPLEMENTATION: the public API below is fixed; the internals are being replaced by the
full compiler (JSON Schema 2020-12 -> per-target forms). Adapters depend only on this API.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from providers.profiles import NameRule, Profile
from providers.types import ToolSpec

LossAction = Literal["moved_to_description", "dropped", "rewritten"]


@dataclass(frozen=True, slots=True)
class LossEntry:
    """One thing the compiler could not pass through unchanged."""

    tool: str  # canonical tool name
    target: str  # schema target (anthropic, openai, gemini, ollama)
    path: str  # JSON pointer into the original inputSchema, "" for the root
    keyword: str
    action: LossAction
    detail: str


@dataclass(frozen=True, slots=True)
class CompiledTool:
    """One tool as a provider will receive it (the adapter wraps it in its wire envelope)."""

    spec: ToolSpec
    name: str  # the provider-side name
    description: str
    parameters: dict[str, Any]  # the schema to send
    strict: bool = False  # OpenAI strict mode
    strict_reason: str = ""  # why strict is on or off
    schema_form: Literal["json_schema", "openapi"] = "json_schema"  # Gemini: parameters_json_schema or parameters
    losses: tuple[LossEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledToolset:
    target: str
    tools: tuple[CompiledTool, ...]
    _to_canonical: dict[str, str] = field(default_factory=dict)
    _to_provider: dict[str, str] = field(default_factory=dict)
    name_rule: NameRule | None = None

    def provider_name(self, canonical: str) -> str:
        """Provider-side name for a canonical name (also for names not in this toolset, e.g. in history)."""
        known = self._to_provider.get(canonical)
        if known is not None:
            return known
        return provider_tool_name(canonical, self.name_rule) if self.name_rule else canonical

    def canonical_name(self, provider_name: str) -> str:
        """Canonical name for a name the provider returned; unknown names come back unchanged."""
        return self._to_canonical.get(provider_name, provider_name)

    @property
    def losses(self) -> list[LossEntry]:
        return [loss for tool in self.tools for loss in tool.losses]


def provider_tool_name(canonical: str, rule: NameRule) -> str:
    """Deterministic map of a canonical name to a name ``rule`` accepts.

    A name the rule already accepts is kept. Otherwise illegal characters become ``_`` and a hash of
    the full canonical name is appended (never a bare truncation), so distinct names stay distinct.
    """
    if rule.accepts(canonical):
        return canonical
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", canonical)
    if not re.match(r"[a-zA-Z_]", cleaned):
        cleaned = "t_" + cleaned
    head = cleaned[: rule.max_length - len(digest) - 1]
    return f"{head}_{digest}"


def compile_tools(
    tools: Sequence[ToolSpec],
    profile: Profile,
    *,
    strict: bool | None = None,
) -> CompiledToolset:
    """Compile ``tools`` for ``profile``'s schema target. Raises ``ToolSchemaError`` for inexpressible schemas."""
    rule = profile.tool_names
    compiled: list[CompiledTool] = []
    to_canonical: dict[str, str] = {}
    to_provider: dict[str, str] = {}
    for spec in tools:
        name = provider_tool_name(spec.name, rule)
        schema = dict(spec.input_schema or {"type": "object", "properties": {}})
        schema.pop("$schema", None)
        schema.setdefault("type", "object")
        if schema.get("type") == "object":
            schema.setdefault("properties", {})
        compiled.append(CompiledTool(spec=spec, name=name, description=spec.description, parameters=schema))
        to_canonical[name] = spec.name
        to_provider[spec.name] = name
    return CompiledToolset(
        target=profile.schema_target,
        tools=tuple(compiled),
        _to_canonical=to_canonical,
        _to_provider=to_provider,
        name_rule=rule,
    )
