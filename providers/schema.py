"""The schema compiler: MCP tool definitions -> each provider's accepted form, with a loss report.

``compile_tools(tools, profile)`` turns every ``ToolSpec.input_schema`` (JSON Schema 2020-12 as MCP
servers send it: ``$schema``, ``$defs``/``$ref``, ``anyOf``, type arrays, ``const``, ``format``,
``default``, missing ``properties`` or no schema at all) into the form ``profile.schema_target`` accepts:

* ``anthropic``, ``ollama``, ``openai`` (non-strict): JSON Schema with an object root, ``properties`` and
  ``required`` present, refs inlined, metadata dropped. Ollama and OpenAI keep ``default``.
* ``openai`` strict: when the profile accepts strict schemas and ``strict`` is None, a tool is strict
  only if its schema qualifies without a change of meaning; ``strict=True`` forces it (documented
  rewrites, recorded as losses) or raises ``ToolSchemaError``; ``strict=False`` never.
* ``gemini``: ``schema_form="json_schema"`` (default) for ``parameters_json_schema``, or ``"openapi"``
  for ``parameters`` (the OpenAPI subset google-genai's ``types.Schema`` and the Developer API accept).

Whatever a target cannot take is moved into the description of the node it sat on ("format: uri;
minLength: 3") or dropped, and every such change is a ``LossEntry`` whose ``path`` is a JSON pointer into
the ORIGINAL schema and whose ``wire_paths`` say where that node is in the schema sent (a definition in
``$defs`` is inlined at every ``$ref``: one pointer per place). A schema a target cannot express at all
raises ``ToolSchemaError`` (tool, provider, keyword) here, at translation time, instead of a 400 at run
time. The rules are data in
``_schema_rules.py``; the engine is ``_schema_compile.py``; names are ``_schema_names.py``.

Results are cached (one cache: :data:`_TOOLSETS`, keyed by the options and the specs' fingerprints,
``ToolSpec.fingerprint``), because adapters call ``compile_tools`` on every request. Compiled toolsets are
shared between callers: treat ``CompiledTool.parameters`` and :meth:`CompiledToolset.wire` as read-only
(copy before changing them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from providers._schema_compile import Compiler, NotQualified, PlacedLoss, StrictMode
from providers._schema_names import assign_names, hashed_name, legacy_name, map_name
from providers._schema_rules import (
    ANTHROPIC,
    GEMINI_JSON,
    GEMINI_OPENAPI,
    OLLAMA,
    OPENAI,
    OPENAI_STRICT,
    TargetRules,
)
from providers.errors import ToolSchemaError
from providers.profiles import NameRule, Profile
from providers.types import ToolSpec

LossAction = Literal["moved_to_description", "dropped", "rewritten"]
SchemaForm = Literal["json_schema", "openapi"]
_Wire = TypeVar("_Wire")

__all__ = [
    "CompiledTool",
    "CompiledToolset",
    "LossEntry",
    "compile_tools",
    "format_loss_report",
    "provider_tool_name",
]


@dataclass(frozen=True, slots=True)
class LossEntry:
    """One thing the compiler could not pass through unchanged."""

    tool: str  # canonical tool name
    target: str  # schema target (anthropic, openai, gemini, ollama)
    path: str  # JSON pointer into the original inputSchema, "" for the root
    keyword: str
    action: LossAction
    detail: str
    # JSON pointers into the compiled parameters where the node at ``path`` was sent: several when it is a
    # definition inlined at several places, none when the node is not sent (an unused definition).
    wire_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledTool:
    """One tool as a provider will receive it (the adapter wraps it in its wire envelope)."""

    spec: ToolSpec
    name: str  # the provider-side name
    description: str
    parameters: dict[str, Any]  # the schema to send (shared and cached: do not mutate)
    strict: bool = False  # OpenAI strict mode
    strict_reason: str = ""  # why strict is on or off
    schema_form: Literal["json_schema", "openapi"] = "json_schema"  # Gemini: parameters_json_schema or parameters
    losses: tuple[LossEntry, ...] = ()
    # Where each original keyword went: (original pointer, keyword, output pointer, how) with how one of
    # kept / rewritten / described (moved into that output node's description).
    trace: tuple[tuple[str, str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledToolset:
    target: str
    tools: tuple[CompiledTool, ...]
    _to_canonical: dict[str, str] = field(default_factory=dict)
    _to_provider: dict[str, str] = field(default_factory=dict)
    name_rule: NameRule | None = None
    # The tools in each adapter's wire envelope, built once per toolset (see wire()).
    _wire: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def wire(self, form: str, build: Callable[[CompiledToolset], _Wire]) -> _Wire:
        """The tools as adapter ``form`` sends them (``build(self)``, made on first use and kept with the toolset,
        which the cache shares: read-only). Adapters call it on every request; the envelope is built once."""
        found: _Wire | None = self._wire.get(form)
        if found is None:
            found = self._wire[form] = build(self)
        return found

    def provider_name(self, canonical: str) -> str:
        """Provider-side name for a canonical name (also for names not in this toolset, e.g. in history).

        A name not in the toolset never takes the name of one that is (a call to a tool the hub no longer
        offers must not read as a call to another tool): it is hashed instead.
        """
        known = self._to_provider.get(canonical)
        if known is not None:
            return known
        if self.name_rule is None:
            return canonical
        name = provider_tool_name(canonical, self.name_rule)
        if self._to_canonical.get(name, canonical) != canonical:
            name = hashed_name(canonical, self.name_rule)
        return name

    def canonical_name(self, provider_name: str) -> str:
        """Canonical name for a name the provider returned; unknown names come back unchanged."""
        return self._to_canonical.get(provider_name, provider_name)

    @property
    def losses(self) -> list[LossEntry]:
        return [loss for tool in self.tools for loss in tool.losses]


def provider_tool_name(canonical: str, rule: NameRule) -> str:
    """Deterministic map of one canonical name, on its own, to a name ``rule`` accepts.

    A name the rule already accepts is kept; otherwise illegal characters become ``_`` (``add.add`` ->
    ``add_add``); a name that is still too long gets a hash of the full canonical name (never a bare
    truncation). Inside a toolset, collisions are settled by the toolset (``CompiledToolset.provider_name``);
    see ``providers/_schema_names.py``.
    """
    return map_name(canonical, rule)


# --------------------------------------------------------------------------- compiling one tool


@dataclass(frozen=True, slots=True)
class _Options:
    provider: str
    target: str
    strict_tools: bool
    strict: bool | None
    form: SchemaForm


@dataclass(frozen=True, slots=True)
class _ToolBody:
    """A compiled tool minus its name (names depend on the whole toolset)."""

    parameters: dict[str, Any]
    strict: bool
    strict_reason: str
    losses: tuple[PlacedLoss, ...]
    trace: tuple[tuple[str, str, str, str], ...]


def _rules_for(opts: _Options) -> TargetRules:
    if opts.target == "gemini":
        return GEMINI_OPENAPI if opts.form == "openapi" else GEMINI_JSON
    return {"anthropic": ANTHROPIC, "openai": OPENAI, "ollama": OLLAMA}[opts.target]


def _run(spec: ToolSpec, opts: _Options, rules: TargetRules, mode: StrictMode) -> _ToolBody:
    result = Compiler(spec.name, opts.provider, rules, mode).compile(spec.input_schema)
    strict = mode != "off"
    if strict:
        added = f"; {'; '.join(result.strict_notes)}" if result.strict_notes else ""
        how = "forced by strict=True" if mode == "forced" else "schema qualifies without a change of meaning"
        reason = f"strict: {how}{added}"
    else:
        reason = ""
    return _ToolBody(result.parameters, strict, reason, tuple(result.losses), tuple(result.trace))


def _compile_one(spec: ToolSpec, opts: _Options) -> _ToolBody:
    rules = _rules_for(opts)
    if opts.target != "openai":
        reason = "strict mode not used: only the openai target has strict schemas in routekit"
        body = _run(spec, opts, rules, "off")
        return _with_reason(body, reason if opts.strict else "")
    if not opts.strict_tools:
        reason = f"strict mode off: provider {opts.provider} does not accept strict function schemas"
        return _with_reason(_run(spec, opts, rules, "off"), reason)
    if opts.strict is False:
        return _with_reason(_run(spec, opts, rules, "off"), "strict mode off: strict=False requested")
    if opts.strict is True:
        return _run(spec, opts, OPENAI_STRICT, "forced")
    try:
        return _run(spec, opts, OPENAI_STRICT, "qualify")
    except NotQualified as exc:
        reason = f"strict mode off: {exc.keyword} at {exc.path or '(root)'}: {exc.reason}"
        return _with_reason(_run(spec, opts, rules, "off"), reason)


def _with_reason(body: _ToolBody, reason: str) -> _ToolBody:
    return _ToolBody(body.parameters, body.strict, reason, body.losses, body.trace)


# --------------------------------------------------------------------------- caches


class _Lru:
    """A small thread-safe LRU map (compile_tools may be called from worker threads)."""

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_TOOLSETS = _Lru(256)


def clear_cache() -> None:
    """Forget every compiled result (tests; a long-running process never needs it)."""
    _TOOLSETS.clear()


# --------------------------------------------------------------------------- public entry point


def compile_tools(
    tools: Sequence[ToolSpec],
    profile: Profile,
    *,
    strict: bool | None = None,
    schema_form: Literal["json_schema", "openapi"] | None = None,
) -> CompiledToolset:
    """Compile ``tools`` for ``profile``'s schema target. Raises ``ToolSchemaError`` for inexpressible schemas.

    ``strict``: None = strict where the schema qualifies (profiles with ``strict_tools``), True = strict
    or ToolSchemaError, False = never. ``schema_form`` (Gemini only): None = ``"json_schema"``.
    """
    form: SchemaForm = schema_form or "json_schema"
    if profile.schema_target != "gemini":
        form = "json_schema"
    rule = profile.tool_names
    key = (
        profile.name,
        profile.schema_target,
        profile.strict_tools,
        strict,
        form,
        rule.pattern.pattern,
        rule.max_length,
        b"".join([spec.fingerprint for spec in tools]),
    )
    cached: CompiledToolset | None = _TOOLSETS.get(key)
    if cached is not None:
        return cached
    opts = _Options(profile.name, profile.schema_target, profile.strict_tools, strict, form)
    toolset = _build(tools, opts, rule)
    _TOOLSETS.put(key, toolset)
    return toolset


def _build(tools: Sequence[ToolSpec], opts: _Options, rule: NameRule) -> CompiledToolset:
    seen: set[str] = set()
    for spec in tools:
        if spec.name in seen:
            raise ToolSchemaError(spec.name, opts.provider, "name", "two tools share this canonical name")
        seen.add(spec.name)
    try:
        names = assign_names([spec.name for spec in tools], rule)
    except ValueError as exc:  # pragma: no cover - needs a full SHA-256 collision
        raise ToolSchemaError("?", opts.provider, "name", str(exc)) from None
    compiled: list[CompiledTool] = []
    for spec in tools:
        body = _compile_one(spec, opts)
        losses = tuple(LossEntry(spec.name, opts.target, p, k, a, d, w) for p, k, a, d, w in body.losses)  # type: ignore[arg-type]
        compiled.append(
            CompiledTool(
                spec=spec,
                name=names[spec.name],
                description=spec.description or spec.title or "",
                parameters=body.parameters,
                strict=body.strict,
                strict_reason=body.strict_reason,
                schema_form=opts.form,
                losses=losses,
                trace=body.trace,
            )
        )
    to_canonical = {name: canonical for canonical, name in names.items()}
    for canonical, name in names.items():
        # What older routekit versions sent for this tool still maps back (a model may repeat it).
        old = legacy_name(canonical, rule) if name != canonical else name
        to_canonical.setdefault(old, canonical)
    return CompiledToolset(
        target=opts.target,
        tools=tuple(compiled),
        _to_canonical=to_canonical,
        _to_provider=dict(names),
        name_rule=rule,
    )


# --------------------------------------------------------------------------- loss report


def format_loss_report(toolset: CompiledToolset) -> str:
    """A human-readable report of names, strict decisions and losses (``routekit mcp tools``)."""
    lines = [f"target {toolset.target}: {len(toolset.tools)} tools, {len(toolset.losses)} schema changes"]
    for tool in toolset.tools:
        renamed = f" -> {tool.name}" if tool.name != tool.spec.name else ""
        lines.append(f"{tool.spec.name}{renamed} [{tool.schema_form}{', strict' if tool.strict else ''}]")
        if tool.strict_reason:
            lines.append(f"  {tool.strict_reason}")
        if not tool.losses:
            lines.append("  no losses")
        for loss in tool.losses:
            where = loss.path or "(root)"
            if loss.wire_paths and loss.wire_paths != (loss.path,):
                where += f" (sent at {', '.join(w or '(root)' for w in loss.wire_paths)})"
            action = loss.action.replace("_", " ")
            lines.append(f"  {action}: {loss.keyword} at {where} - {loss.detail}")
    return "\n".join(lines)
