"""The schema compiler's engine: one MCP ``inputSchema`` -> one target's form, with a loss report.

Three passes over a private intermediate form (``_Node``), so that every keyword in the output still
knows which keyword of the ORIGINAL schema it came from (loss entries and the trace use JSON pointers
into the original document, even after ``$ref`` inlining):

1. ``_expand``: JSON Schema -> ``_Node``; target-independent. Inlines local ``$ref`` (recursion unrolled
   ``RECURSION_UNROLL`` times, then cut with a loss entry), ``const`` -> one-value ``enum``, drops
   ``$schema``/``$id``/``$comment``, draft-07 tuple ``items`` -> ``prefixItems``.
2. ``_shape``: applies the target's rules (``_schema_rules``): keep / describe / drop per keyword, the
   Gemini OpenAPI quirks (upper-case types, ``nullable``, no type arrays, no ``anyOf`` siblings, string
   enums, format table) and the OpenAI strict invariants.
3. ``_emit``: ``_Node`` -> plain dict plus the trace ``(original pointer, keyword, output pointer, how)``.

Decisions recorded here (see also the module docstring of ``providers.schema``):

* A non-object root raises ToolSchemaError: wrapping it in ``{"value": ...}`` would change the shape of
  the arguments the tool receives, and nothing unwraps them on the way back.
* Recursive ``$ref``: unrolled twice then cut (a ``dropped`` loss, the cut level described). In OpenAI
  strict mode a cut level is a free-form object, which strict mode cannot express: with strict=None the
  tool stays non-strict, with strict=True it is a ToolSchemaError.
* OpenAI strict with strict=None ("qualify") only makes changes that keep the meaning: missing
  ``additionalProperties`` becomes ``false`` (as pydantic-ai does), annotations (``default``, examples)
  move to the description. Any optional property or unsupported validation keyword keeps the tool
  non-strict, and the reason is recorded. strict=True ("forced") additionally makes optional properties
  required-and-nullable and moves unsupported validation keywords into the description (both recorded as
  losses); what strict mode still cannot express raises ToolSchemaError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from providers._schema_rules import (
    ANNOTATIONS,
    JSON_TYPES,
    KNOWN_KEYWORDS,
    METADATA_DROPPED,
    NULL_IS_A_VALUE,
    RECURSION_UNROLL,
    SCHEMA_LISTS,
    SCHEMA_MAPS,
    SCHEMA_VALUED,
    TYPE_SPECIFIC,
    TargetRules,
)
from providers.errors import ToolSchemaError

StrictMode = Literal["off", "qualify", "forced"]
How = Literal["kept", "rewritten", "added", "described"]
# (original pointer, original keyword, output pointer, how)
TraceEntry = tuple[str, str, str, str]
# (tool-relative pointer, keyword, action, detail)
RawLoss = tuple[str, str, str, str]
# A loss with the pointers into the compiled schema where it shows: (pointer, keyword, action, detail, wire)
PlacedLoss = tuple[str, str, str, str, tuple[str, ...]]
# Keywords an allOf branch may hold and still merge into its parent object.
_MERGEABLE = frozenset({"type", "properties", "required", "additionalProperties"}) | ANNOTATIONS

_LOOKAROUND = re.compile(r"\(\?<?[=!]")


class NotQualified(Exception):
    """Strict mode would need a change of meaning; carries the first obstacle."""

    def __init__(self, path: str, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword} at {path or '(root)'}: {reason}")
        self.path, self.keyword, self.reason = path, keyword, reason


@dataclass(slots=True)
class _Kw:
    """One keyword of an intermediate node, with where it came from."""

    value: Any  # plain JSON, or _Node / list[_Node] / dict[str, _Node] for schema-valued keywords
    origin: str | None  # pointer of the original node holding the keyword; None = added by the compiler
    source: str  # the original keyword (``const`` for an ``enum`` made from it)
    how: How = "kept"


@dataclass(slots=True)
class _Note:
    """Text destined for the node's description (a moved keyword, a description copied from a parent), or
    with ``how="rewritten"`` and no text, a keyword merged into this node (an allOf branch's)."""

    text: str
    origin: str
    source: str
    how: How  # "described" for a moved keyword, "kept" for a copied description, "rewritten" for a merge


@dataclass(slots=True)
class _Node:
    origin: str
    kws: dict[str, _Kw] = field(default_factory=dict)
    notes: list[_Note] = field(default_factory=list)


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@dataclass(slots=True)
class Result:
    parameters: dict[str, Any]
    losses: list[PlacedLoss]
    trace: list[TraceEntry]
    strict_notes: list[str]


class Compiler:
    """Compiles one tool's schema for one target. Single use."""

    def __init__(self, tool: str, provider: str, rules: TargetRules, strict: StrictMode) -> None:
        self.tool, self.provider, self.rules, self.strict = tool, provider, rules, strict
        self.root: Any = None
        self.losses: list[RawLoss] = []
        self._loss_seen: set[RawLoss] = set()
        self.trace: list[TraceEntry] = []
        self.strict_notes: list[str] = []
        self.used_defs: set[str] = set()
        self.unmerged: dict[str, str] = {}  # allOf holder pointer -> why some branches stayed in allOf
        self.placed: dict[str, list[str]] = {}  # original node pointer -> output pointers (filled by _emit)
        self.merged_into: dict[str, list[str]] = {}  # merged allOf branch pointer -> the nodes it went into

    # ------------------------------------------------------------------ helpers

    def error(self, keyword: str, path: str, detail: str) -> ToolSchemaError:
        return ToolSchemaError(self.tool, self.provider, keyword, f"{detail} (at {path or '(root)'})")

    def loss(self, path: str, keyword: str, action: str, detail: str) -> None:
        entry = (path, keyword, action, detail)
        if entry not in self._loss_seen:
            self._loss_seen.add(entry)
            self.losses.append(entry)

    def obstacle(self, path: str, keyword: str, reason: str) -> None:
        """Something strict mode cannot express without changing meaning."""
        if self.strict == "qualify":
            raise NotQualified(path, keyword, reason)
        raise self.error(keyword, path, f"OpenAI strict mode cannot express it: {reason}")

    # ------------------------------------------------------------------ entry point

    def compile(self, schema: dict[str, Any] | None) -> Result:
        raw: Any = schema if schema is not None else {"type": "object", "properties": {}}
        self.root = raw
        if not isinstance(raw, dict):
            raise self.error("inputSchema", "", "inputSchema must be a JSON object")
        node = self._expand(raw, "", ())
        self._report_unused_defs(raw)
        self._normalize_root(node)
        shaped = self._shape(node, 0, is_root=True)
        self._finish_root(shaped)
        params = self._emit(shaped, "")
        assert isinstance(params, dict)
        losses = [(*loss, self._wire_paths(loss[0], params)) for loss in self.losses]
        return Result(params, losses, self.trace, self.strict_notes)

    def _placed(self, path: str, depth: int) -> list[str] | None:
        """Output pointers of the node at ``path``, following allOf branches into the nodes they merged into."""
        if path not in self.placed and path not in self.merged_into:
            return None
        outs = list(self.placed.get(path, ()))
        for holder in self.merged_into.get(path, ()) if depth < 32 else ():
            outs += self._placed(holder, depth + 1) or []
        return outs

    def _wire_paths(self, path: str, params: dict[str, Any]) -> tuple[str, ...]:
        """Where the node at original ``path`` is in the output: one pointer per place it was inlined.

        A path that is not a node (``/properties`` of a dropped entry, the ``$ref`` site of an inlined
        definition) is found from its nearest node; a place that is not in the output gives nothing.
        """
        outs = self.placed.get(path)
        if outs is not None and len(outs) == 1 and path not in self.merged_into:
            return (outs[0],)  # the common case: a node sent once
        outs = self._placed(path, 0)
        if outs is None:
            head, rest = path, ""
            while head and head not in self.placed:
                head, _, token = head.rpartition("/")
                rest = f"/{token}{rest}"
            outs = [out + rest for out in self.placed.get(head, ())]
            outs = [out for out in outs if _resolves(params, out)]
        # A node split into anyOf branches (Gemini `parameters`) is reported once, at the enclosing node.
        listed = set(outs)
        return tuple(dict.fromkeys(out for out in outs if not _is_split_branch(out, listed)))

    # ------------------------------------------------------------------ pass 1: expand

    def _expand(self, raw: Any, path: str, refs: tuple[str, ...]) -> _Node:
        if raw is True:
            return _Node(path)
        if not isinstance(raw, dict):
            raise self.error("type", path, f"a schema must be an object or true, not {_compact(raw)[:40]}")
        if raw.get("$ref") is not None:
            return self._expand_ref(raw, path, refs)
        node = _Node(path)
        for key, value in raw.items():
            self._expand_keyword(node, key, value, raw, path, refs)
        return node

    def _expand_keyword(
        self, node: _Node, key: str, value: Any, raw: dict[str, Any], path: str, refs: tuple[str, ...]
    ) -> None:
        sub = f"{path}/{escape_pointer(key)}"
        if value is None and key in KNOWN_KEYWORDS and key not in NULL_IS_A_VALUE:
            # A Go nil map or slice ("properties": null): none. An object keeps an empty property map.
            if key == "properties":
                node.kws[key] = _Kw({}, None, key, "added")
            return
        if key in METADATA_DROPPED:
            self.loss(path, key, "dropped", METADATA_DROPPED[key])
        elif key in ("$defs", "definitions"):
            if not isinstance(value, dict):
                raise self.error(key, path, f"{key} must be an object of schemas")
            self.loss(path, key, "rewritten", "definitions inlined at each $ref")
        elif key == "$dynamicRef":
            raise self.error(key, path, "$dynamicRef cannot be inlined; use $ref")
        elif key == "const":
            node.kws["enum"] = _Kw([value], path, "const", "rewritten")
            self.loss(path, "const", "rewritten", "const became a one-value enum")
            if "enum" in raw:
                self.loss(path, "enum", "dropped", "const narrows it to one value")
        elif key == "enum":
            if not isinstance(value, list) or not value:
                raise self.error(key, path, "enum must be a non-empty array")
            if "const" not in raw:
                node.kws[key] = _Kw(value, path, key)
        elif key == "type":
            node.kws[key] = _Kw(self._check_type(value, path), path, key)
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(key, path, "required must be an array of property names")
            node.kws[key] = _Kw(list(value), path, key)
        elif key == "items" and isinstance(value, list):
            node.kws["prefixItems"] = _Kw(self._expand_list(value, sub, refs, key), path, key, "rewritten")
            self.loss(path, key, "rewritten", "draft-07 tuple items became prefixItems (2020-12)")
        elif key in SCHEMA_VALUED:
            if isinstance(value, bool):
                node.kws[key] = _Kw(value, path, key)
            else:
                node.kws[key] = _Kw(self._expand(value, sub, refs), path, key)
        elif key in SCHEMA_LISTS:
            if not isinstance(value, list) or not value:
                raise self.error(key, path, f"{key} must be a non-empty array of schemas")
            node.kws[key] = _Kw(self._expand_list(value, sub, refs, key), path, key)
        elif key in SCHEMA_MAPS:
            node.kws[key] = _Kw(self._expand_map(value, sub, refs, key), path, key)
        else:
            node.kws[key] = _Kw(value, path, key)

    def _expand_list(self, value: list[Any], path: str, refs: tuple[str, ...], key: str) -> list[_Node]:
        out: list[_Node] = []
        for i, item in enumerate(value):
            if item is False:
                raise self.error(key, f"{path}/{i}", "a `false` subschema cannot be expressed")
            out.append(self._expand(item, f"{path}/{i}", refs))
        return out

    def _expand_map(self, value: Any, path: str, refs: tuple[str, ...], key: str) -> dict[str, _Node]:
        if not isinstance(value, dict):
            raise self.error(key, path, f"{key} must be an object of schemas")
        out: dict[str, _Node] = {}
        for name, item in value.items():
            sub = f"{path}/{escape_pointer(name)}"
            if item is False:
                # {"properties": {"x": false}}: x must not be sent. Omitting it keeps the model from sending it.
                self.loss(path, name, "dropped", f"{key} entry {name!r} is `false` (never allowed); omitted")
                continue
            out[name] = self._expand(item, sub, refs)
        return out

    def _check_type(self, value: Any, path: str) -> Any:
        types = value if isinstance(value, list) else [value]
        if not types or not all(isinstance(t, str) and t in JSON_TYPES for t in types):
            raise self.error("type", path, f"unknown type {_compact(value)}")
        if len(set(types)) != len(types):
            raise self.error("type", path, f"repeated type in {_compact(value)}")
        return value

    def _resolve(self, ref: str, path: str) -> tuple[str, Any]:
        if not ref.startswith("#"):
            raise self.error("$ref", path, f"only local references (#/...) can be inlined, not {ref!r}")
        pointer = ref[1:]
        from urllib.parse import unquote

        target: Any = self.root
        for token in pointer.split("/")[1:] if pointer else []:
            token = _unescape_pointer(unquote(token))
            if isinstance(target, dict) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                raise self.error("$ref", path, f"$ref {ref!r} points at nothing")
        canonical = "/".join(["", *(escape_pointer(_unescape_pointer(unquote(t))) for t in pointer.split("/")[1:])])
        return ("" if not pointer else canonical), target

    def _expand_ref(self, raw: dict[str, Any], path: str, refs: tuple[str, ...]) -> _Node:
        ref = raw["$ref"]
        if not isinstance(ref, str):
            raise self.error("$ref", path, "$ref must be a string")
        target_path, target = self._resolve(ref, path)
        self.used_defs.add(target_path)
        if refs.count(target_path) >= RECURSION_UNROLL:
            return self._cut_recursion(ref, target, path)
        self.loss(path, "$ref", "rewritten", f"{ref} inlined")
        node = self._expand(target, target_path, (*refs, target_path))
        siblings = {k: v for k, v in raw.items() if k != "$ref"}
        if siblings:
            self._merge_siblings(node, self._expand(siblings, path, refs), path)
        return node

    def _cut_recursion(self, ref: str, target: Any, path: str) -> _Node:
        detail = f"recursive {ref} not expanded below {RECURSION_UNROLL} levels; deeper values are unconstrained"
        self.loss(path, "$ref", "dropped", detail)
        node = _Node(path)
        kind = target.get("type") if isinstance(target, dict) else None
        if isinstance(kind, str):
            node.kws["type"] = _Kw(kind, None, "type", "added")
        node.notes.append(
            _Note(f"$ref: same shape as {ref} (recursive, not expanded further)", path, "$ref", "described")
        )
        return node

    def _merge_siblings(self, node: _Node, siblings: _Node, path: str) -> None:
        """2020-12 ``$ref`` with siblings: both apply. Annotations override; other overlaps cannot be merged."""
        for key, kw in siblings.kws.items():
            old = node.kws.get(key)
            conflict = old is not None and (old.value != kw.value or isinstance(kw.value, (_Node, list, dict)))
            if conflict and key not in ANNOTATIONS:
                raise self.error("$ref", path, f"keyword {key!r} next to $ref conflicts with the referenced schema")
            if old is not None and old.origin is not None and old.value != kw.value:
                self.loss(
                    old.origin, old.source, "dropped", f"overridden by {key} next to the $ref at {path or '(root)'}"
                )
            node.kws[key] = kw
        node.notes.extend(siblings.notes)

    def _report_unused_defs(self, raw: dict[str, Any]) -> None:
        for key in ("$defs", "definitions"):
            defs = raw.get(key)
            if isinstance(defs, dict):
                for name in defs:
                    pointer = f"/{key}/{escape_pointer(name)}"
                    if pointer not in self.used_defs:
                        self.loss(f"/{key}", name, "dropped", "definition never referenced")

    # ------------------------------------------------------------------ root

    def _normalize_root(self, node: _Node) -> None:
        kind = node.kws.get("type")
        if kind is None:
            if any(k in node.kws for k in TYPE_SPECIFIC["string"] | TYPE_SPECIFIC["number"] | TYPE_SPECIFIC["array"]):
                raise self.error("type", "", "the root of inputSchema must describe an object (tool arguments)")
            node.kws = {"type": _Kw("object", None, "type", "added"), **node.kws}
        elif kind.value != "object":
            if isinstance(kind.value, list) and "object" in kind.value:
                node.kws["type"] = _Kw("object", "", "type", "rewritten")
                self.loss("", "type", "rewritten", "tool arguments are always an object; other root types removed")
            else:
                raise self.error(
                    "type",
                    "",
                    f"the root of inputSchema must be an object, not {_compact(kind.value)}; routekit does not "
                    "wrap it because the tool would then receive a different argument shape",
                )
        if "properties" not in node.kws:
            node.kws["properties"] = _Kw({}, None, "properties", "added")

    def _finish_root(self, node: _Node) -> None:
        if "anyOf" in node.kws and (self.rules.openapi or self.strict != "off"):
            if self.strict != "off":
                self.obstacle("", "anyOf", "the root cannot be anyOf")
            raise self.error("anyOf", "", "Gemini `parameters` needs an OBJECT root, not anyOf")
        if "required" not in node.kws and "properties" in node.kws:
            node.kws["required"] = _Kw([], None, "required", "added")
        pattern = self.rules.parameter_name_pattern
        props = node.kws.get("properties")
        if pattern and props is not None and isinstance(props.value, dict):
            for name in props.value:
                if re.fullmatch(pattern, name) is None:
                    raise self.error(
                        "properties",
                        "/properties",
                        f"parameter name {name!r} is not accepted ({self.rules.parameter_name_reason}); "
                        "use the json_schema form",
                    )

    # ------------------------------------------------------------------ pass 2: shape

    def _shape(self, node: _Node, depth: int, *, is_root: bool = False) -> _Node:
        if self.rules.max_depth is not None and depth > self.rules.max_depth:
            self.obstacle(node.origin, "properties", f"nested deeper than {self.rules.max_depth} levels")
        if self.rules.merge_all_of and "allOf" in node.kws:
            self._merge_all_of(node)
        if self.rules.openapi:
            node = self._openapi_restructure(node)  # may merge an anyOf branch (and its required) into node
        if self.rules.undefined_required == "drop" and "required" in node.kws:
            self._drop_undefined_required(node)
        if self.strict != "off":
            self._strict_restructure(node, is_root)
        out = _Node(node.origin, notes=list(node.notes))
        for key, kw in node.kws.items():
            self._shape_keyword(out, node, key, kw, depth)
        if self.rules.openapi:
            self._openapi_finish(out)
        return out

    def _shape_keyword(self, out: _Node, src: _Node, key: str, kw: _Kw, depth: int) -> None:
        if kw.origin is None:  # added by the compiler itself: already in the target's form
            out.kws[key] = self._shape_value(kw, depth)
            return
        rule = self.rules.keywords.get(key) if key in KNOWN_KEYWORDS else None
        action: str = rule.action if rule else self.rules.unknown.action
        reason = rule.reason if rule else self.rules.unknown.reason
        if action == "keep":
            action, reason = self._refine_keep(src, key, kw, action, reason)
        if action == "keep":
            out.kws[key] = self._shape_value(kw, depth)
        elif action == "describe":
            if key == "allOf" and kw.origin in self.unmerged:
                reason = f"{reason}; not merged into the object: {self.unmerged[kw.origin]}"
            if self.strict == "qualify" and key not in ANNOTATIONS:
                raise NotQualified(kw.origin, kw.source, reason)
            value = self._plain(kw.value)
            if kw.source == "const" and isinstance(value, list) and len(value) == 1:
                value = value[0]
            shown = value if isinstance(value, str) else _compact(value)
            text = f"{kw.source if kw.how == 'rewritten' else key}: {shown}"
            out.notes.append(_Note(text, kw.origin, kw.source, "described"))
            self.loss(kw.origin, kw.source, "moved_to_description", reason)
        else:
            self.loss(kw.origin, kw.source, "dropped", reason)

    def _refine_keep(self, src: _Node, key: str, kw: _Kw, action: str, reason: str) -> tuple[str, str]:
        """Value-dependent rules for a keyword the target accepts in general."""
        rules = self.rules
        if key == "format" and rules.formats is not None:
            kind = src.kws.get("type")
            kind_name = kind.value if kind is not None and isinstance(kind.value, str) else None
            allowed = rules.formats.get(kind_name or "", frozenset())
            if kw.value not in allowed:
                return "describe", f"format {kw.value!r} not accepted for type {kind_name} by {rules.name}"
        if key == "pattern" and self.strict != "off" and isinstance(kw.value, str) and _LOOKAROUND.search(kw.value):
            return "describe", "OpenAI strict mode: pattern without look-around only"
        if key == "enum" and rules.string_enums_only and not all(isinstance(v, str) for v in kw.value):
            return "describe", "Gemini `parameters` enums must be strings (Schema.enum is list[str])"
        return action, reason

    def _shape_value(self, kw: _Kw, depth: int) -> _Kw:
        value = kw.value
        if isinstance(value, _Node):
            value = self._shape(value, depth + 1)
        elif isinstance(value, list) and value and isinstance(value[0], _Node):
            value = [self._shape(v, depth + 1) for v in value]
        elif isinstance(value, dict) and kw.source in SCHEMA_MAPS:
            value = {k: self._shape(v, depth + 1) for k, v in value.items()}
        elif kw.source == "type" and self.rules.openapi and isinstance(value, str):
            value = value.upper()
        return _Kw(value, kw.origin, kw.source, kw.how)

    def _plain(self, value: Any) -> Any:
        """An intermediate value back as plain JSON Schema (for text in descriptions)."""
        if isinstance(value, _Node):
            return {k: self._plain(kw.value) for k, kw in value.kws.items()}
        if isinstance(value, list):
            return [self._plain(v) for v in value]
        if isinstance(value, dict):
            return {k: self._plain(v) for k, v in value.items()}
        return value

    # ------------------------------------------------------------------ allOf and required

    def _merge_all_of(self, node: _Node) -> None:
        """Merge the allOf branches that are plain object schemas into ``node``: the same arguments are valid.

        A branch merges when it holds only type object, properties, required, additionalProperties and
        annotations, defines no property differently from the others, and no additionalProperties (its own
        or the parent's) would reject a property of another part. The rest stays in allOf, and why is
        added to the loss entry the target's rule for allOf then makes.
        """
        all_of = node.kws["allOf"]
        origin = all_of.origin or node.origin
        kind = node.kws.get("type")
        if kind is not None and kind.value != "object":
            self.unmerged[origin] = f"the schema holding allOf has type {_compact(kind.value)}, not object"
            return
        props_kw = node.kws.get("properties")
        props: dict[str, _Node] = dict(props_kw.value) if props_kw is not None else {}
        parent_names = set(props)
        branches: list[_Node] = all_of.value
        every = parent_names.union(*(_property_names(b) for b in branches))
        merged: list[str] = []
        left: list[_Node] = []
        why: list[str] = []
        for index, branch in enumerate(branches):
            pointer = f"{origin}/allOf/{index}"
            reason = self._unmergeable(branch, node, props, parent_names, every)
            if reason:
                left.append(branch)
                why.append(f"{pointer}: {reason}")
            else:
                self._absorb(node, branch, props)
                merged.append(pointer)
                self.merged_into.setdefault(pointer, []).append(node.origin)
                self.merged_into.setdefault(branch.origin, []).append(node.origin)
        if why:
            self.unmerged[origin] = "; ".join(why)
        if not merged:
            return
        keep_origin = props_kw is not None and props_kw.origin is not None
        node.kws["properties"] = _Kw(
            props, props_kw.origin if props_kw else None, "properties", "rewritten" if keep_origin else "added"
        )
        if left:
            node.kws["allOf"] = _Kw(left, all_of.origin, all_of.source, all_of.how)
        else:
            del node.kws["allOf"]
        self.loss(origin, "allOf", "rewritten", f"object schemas {', '.join(merged)} merged into this object")

    def _unmergeable(
        self, branch: _Node, node: _Node, props: dict[str, _Node], parent_names: set[str], every: set[str]
    ) -> str:
        extra = sorted(set(branch.kws) - _MERGEABLE)
        if extra:
            return f"keywords {extra} do not merge"
        kind = branch.kws.get("type")
        if kind is not None and kind.value != "object":
            return f"type {_compact(kind.value)} is not object"
        own = _property_names(branch)
        branch_props = branch.kws["properties"].value if own else {}
        for name in sorted(own & set(props)):
            if self._plain(branch_props[name]) != self._plain(props[name]):
                return f"property {name!r} is defined differently elsewhere"
        extra_kw = branch.kws.get("additionalProperties")
        if extra_kw is not None and extra_kw.value is not True:
            if not own >= every:
                return f"its additionalProperties rejects properties {sorted(every - own)} of the other schemas"
            parent_extra = node.kws.get("additionalProperties")
            if parent_extra is not None and self._plain(parent_extra.value) != self._plain(extra_kw.value):
                return "its additionalProperties differs from the parent's"
        parent_extra = node.kws.get("additionalProperties")
        if parent_extra is not None and parent_extra.value is not True and not own <= parent_names:
            return f"the parent's additionalProperties rejects its properties {sorted(own - parent_names)}"
        return ""

    def _absorb(self, node: _Node, branch: _Node, props: dict[str, _Node]) -> None:
        """Move one mergeable allOf branch into ``node`` (``props`` is the merged property map)."""
        for key, kw in branch.kws.items():
            taken = True  # the keyword now lives in the merged node (traced as rewritten there)
            if key == "properties":
                for name, sub in kw.value.items():
                    if name not in props:
                        props[name] = sub
                    elif kw.origin is not None:
                        detail = "defined identically by another part of the allOf; sent once"
                        self.loss(f"{kw.origin}/properties", name, "dropped", detail)
            elif key == "required":
                old = node.kws.get("required")
                names = list(old.value) if old is not None else []
                names += [n for n in kw.value if n not in names]
                origin = old.origin if old is not None else None
                node.kws["required"] = _Kw(names, origin, "required", "rewritten" if origin is not None else "added")
            elif key == "type":
                if "type" not in node.kws:
                    node.kws = {"type": _Kw("object", None, "type", "added"), **node.kws}
            elif key == "additionalProperties" and kw.value is True:
                pass  # no constraint
            elif key == "description" and isinstance(kw.value, str) and kw.origin is not None:
                node.notes.append(_Note(kw.value, kw.origin, "description", "kept"))
                taken = False
            elif key not in node.kws:
                node.kws[key] = kw  # additionalProperties or an annotation the parent does not have
                taken = False
            elif self._plain(node.kws[key].value) != self._plain(kw.value) and kw.origin is not None:
                self.loss(kw.origin, key, "dropped", f"an allOf branch's {key}; the parent's own is kept")
                taken = False
            if taken and kw.origin is not None:
                node.notes.append(_Note("", kw.origin, kw.source, "rewritten"))
        node.notes.extend(branch.notes)

    def _drop_undefined_required(self, node: _Node) -> None:
        """``required`` names without a property, for targets that reject them (``undefined_required``)."""
        required = node.kws["required"]
        props = node.kws.get("properties")
        defined = props.value if props is not None else {}
        unknown = [name for name in required.value if name not in defined]
        if not unknown:
            return
        origin = required.origin or node.origin
        rejects = f"{self.rules.name} rejects `required` names that are not among properties"
        if _admits_extra(node):
            names = ", ".join(unknown)
            node.notes.append(_Note(f"required: {names} (not among properties)", origin, "required", "described"))
            self.loss(origin, "required", "moved_to_description", f"{rejects}; {names} may still be sent")
        else:
            detail = f"{rejects}; {unknown} are also forbidden by additionalProperties, so nothing satisfied them"
            self.loss(origin, "required", "dropped", detail)
        kept = [name for name in required.value if name in defined]
        if kept or props is not None:
            node.kws["required"] = _Kw(kept, required.origin, "required", "rewritten")
        else:
            del node.kws["required"]

    # ------------------------------------------------------------------ Gemini OpenAPI

    def _openapi_restructure(self, node: _Node) -> _Node:
        kws = node.kws
        kind = kws.get("type")
        if kind is not None and isinstance(kind.value, list):
            node = self._openapi_type_array(node, kind)
            kws = node.kws
        if kind is not None and kind.value == "null":
            del kws["type"]
            kws["nullable"] = _Kw(True, kind.origin, "type", "rewritten")
            self.loss(node.origin, "type", "rewritten", "type null became nullable (OpenAPI has no null type)")
        if "oneOf" in kws and "anyOf" not in kws:
            one = kws.pop("oneOf")
            kws["anyOf"] = _Kw(one.value, one.origin, "oneOf", "rewritten")
            self.loss(node.origin, "oneOf", "rewritten", "oneOf became anyOf (Gemini has no oneOf; exclusivity lost)")
        if "anyOf" in kws:
            node = self._openapi_any_of(node)
        enum = node.kws.get("enum")
        if enum is not None and None in enum.value and all(isinstance(v, str) for v in enum.value if v is not None):
            node.kws["enum"] = _Kw([v for v in enum.value if v is not None], enum.origin, enum.source, "rewritten")
            node.kws["nullable"] = _Kw(True, None, "nullable", "added")
            self.loss(enum.origin or node.origin, enum.source, "rewritten", "null in enum became nullable")
        if enum is not None and "type" not in node.kws and "anyOf" not in node.kws:
            # The API rejects a typeless enum ("type: must be specified when not using one_of, any_of or
            # all_of fields"); the values say which type was meant.
            inferred = _json_type_of(v for v in node.kws["enum"].value if v is not None)
            if inferred is not None:
                node.kws = {"type": _Kw(inferred, None, "type", "added"), **node.kws}
        return node

    def _openapi_type_array(self, node: _Node, kind: _Kw) -> _Node:
        types = [t for t in kind.value if t != "null"]
        nullable = len(types) != len(kind.value)
        origin = kind.origin or node.origin
        if len(types) <= 1:
            del node.kws["type"]
            if types:
                node.kws = {"type": _Kw(types[0], kind.origin, "type", "rewritten"), **node.kws}
            if nullable:
                node.kws["nullable"] = _Kw(True, kind.origin, "type", "rewritten")
            self.loss(origin, "type", "rewritten", "type array became one type plus nullable (OpenAPI form)")
            return node
        if "anyOf" in node.kws:
            raise self.error("type", origin, "a type array next to anyOf cannot be expressed in Gemini `parameters`")
        # ["string", "number"]: one anyOf branch per type, each with the keywords that apply to its type.
        branches: list[_Node] = []
        for t in types:
            branch = _Node(node.origin, {"type": _Kw(t, kind.origin, "type", "rewritten")})
            for key, kw in node.kws.items():
                specific = any(key in TYPE_SPECIFIC[k] for k in TYPE_SPECIFIC)
                if key != "type" and key not in ANNOTATIONS and (not specific or key in TYPE_SPECIFIC.get(t, ())):
                    branch.kws[key] = _clone_kw(kw)
            branches.append(branch)
        rest = {k: v for k, v in node.kws.items() if k == "nullable" or k in ANNOTATIONS}
        rest["anyOf"] = _Kw(branches, None, "anyOf", "added")
        if nullable:
            rest["nullable"] = _Kw(True, kind.origin, "type", "rewritten")
        self.loss(origin, "type", "rewritten", "type array became anyOf of one branch per type (OpenAPI form)")
        return _Node(node.origin, rest, node.notes)

    def _openapi_any_of(self, node: _Node) -> _Node:
        any_of = node.kws["anyOf"]
        branches: list[_Node] = any_of.value
        non_null = [b for b in branches if not _is_null_schema(b)]
        if len(non_null) != len(branches):
            null_origin = next(b.origin for b in branches if _is_null_schema(b))
            node.kws["nullable"] = _Kw(True, null_origin, "type", "rewritten")
            self.loss(null_origin, "type", "rewritten", "null branch of anyOf became nullable")
            if not non_null:
                del node.kws["anyOf"]
                return node
            node.kws["anyOf"] = any_of = _Kw(non_null, any_of.origin, any_of.source, any_of.how)
        if len(non_null) == 1 and not (set(non_null[0].kws) & set(node.kws)):
            branch = non_null[0]
            merged = {k: v for k, v in node.kws.items() if k != "anyOf"}
            merged.update(branch.kws)
            if any_of.origin is not None:
                self.loss(any_of.origin, any_of.source, "rewritten", "single remaining branch merged into its parent")
            # The merged branch may itself hold a type array or anyOf: restructure again.
            return self._openapi_restructure(_Node(node.origin, merged, node.notes + branch.notes))
        siblings = {k: v for k, v in node.kws.items() if k != "anyOf"}
        if not siblings and not node.notes:
            return node
        # Gemini 400s on anyOf with sibling keys: A and (B or C) == (A and B) or (A and C).
        new_branches = [self._distribute(_clone_node(b), siblings, node) for b in non_null]
        if any_of.origin is not None:
            self.loss(any_of.origin, any_of.source, "rewritten", "sibling keywords copied into every anyOf branch")
        return _Node(node.origin, {"anyOf": _Kw(new_branches, any_of.origin, any_of.source, "rewritten")})

    def _distribute(self, branch: _Node, siblings: dict[str, _Kw], parent: _Node) -> _Node:
        for key, kw in siblings.items():
            if key == "description":
                text = kw.value if isinstance(kw.value, str) else _compact(kw.value)
                branch.notes.insert(0, _Note(text, kw.origin or parent.origin, "description", "kept"))
                continue
            if key in branch.kws and key not in ANNOTATIONS and branch.kws[key].value != kw.value:
                raise self.error("anyOf", parent.origin, f"keyword {key!r} next to anyOf conflicts with a branch")
            if key not in branch.kws:
                branch.kws[key] = _clone_kw(kw)
            elif kw.origin is not None and branch.kws[key].value != kw.value:
                self.loss(kw.origin, kw.source, "dropped", f"the anyOf branch's own {key} takes precedence")
            elif kw.origin is not None:
                self.loss(kw.origin, kw.source, "rewritten", f"the anyOf branch already has the same {key}")
        branch.notes = [*(_clone_note(n) for n in parent.notes), *branch.notes]
        return branch

    def _openapi_finish(self, node: _Node) -> None:
        kind = node.kws.get("type")
        if kind is not None and kind.value == "ARRAY" and "items" not in node.kws:
            raise self.error("items", node.origin, "Gemini `parameters` needs `items` on every array")

    # ------------------------------------------------------------------ OpenAI strict

    def _strict_restructure(self, node: _Node, is_root: bool) -> None:
        kws = node.kws
        if "oneOf" in kws:
            one = kws["oneOf"]
            if self.strict == "qualify" or "anyOf" in kws:
                self.obstacle(
                    one.origin or node.origin, "oneOf", "oneOf is not supported (anyOf would drop exclusivity)"
                )
            del kws["oneOf"]
            kws["anyOf"] = _Kw(one.value, one.origin, "oneOf", "rewritten")
            self.loss(one.origin or node.origin, "oneOf", "rewritten", "oneOf became anyOf (strict mode has no oneOf)")
        kind = kws.get("type")
        types = [] if kind is None else (kind.value if isinstance(kind.value, list) else [kind.value])
        if not types and "anyOf" not in kws and "enum" not in kws:
            self.obstacle(node.origin, "type", "a schema without type accepts anything, strict mode cannot")
        if "array" in types and "items" not in kws:
            self.obstacle(node.origin, "items", "arrays need typed items")
        if "array" in types and isinstance(kws["items"].value, bool):
            self.obstacle(node.origin, "items", "arrays need typed items")
        if "object" in types:
            self._strict_object(node, is_root)

    def _strict_object(self, node: _Node, is_root: bool) -> None:
        kws = node.kws
        extra = kws.get("additionalProperties")
        if extra is not None and extra.value is not False:
            self.obstacle(node.origin, "additionalProperties", "objects must be closed (additionalProperties: false)")
        if "properties" not in kws:
            self.obstacle(node.origin, "properties", "a free-form object cannot be expressed")
        props: dict[str, _Node] = kws["properties"].value
        if extra is None:
            kws["additionalProperties"] = _Kw(False, None, "additionalProperties", "added")
            self.strict_notes.append(f"additionalProperties: false added at {node.origin or '(root)'}")
        required = kws.get("required")
        names: list[str] = list(required.value) if required is not None else []
        unknown = [n for n in names if n not in props]
        if unknown and self.strict == "forced" and extra is not None and not _admits_extra(node):
            # Closed object: no arguments could satisfy these names anyway; strict needs required == properties.
            names = [n for n in names if n in props]
            detail = f"required names without a property {unknown}, forbidden by additionalProperties: false"
            self.loss((required.origin if required is not None else None) or node.origin, "required", "dropped", detail)
        elif unknown:
            self.obstacle(node.origin, "required", f"required names without properties: {unknown}")
        optional = [n for n in props if n not in names]
        if optional:
            if self.strict == "qualify":
                raise NotQualified(
                    node.origin, "required", f"optional properties {optional} (strict needs all required)"
                )
            for name in optional:
                props[name] = _nullable(props[name])
            self.loss(
                node.origin,
                "required",
                "rewritten",
                f"optional properties {optional} made required and nullable (strict mode): send null to omit",
            )
        origin = required.origin if required is not None else None
        kws["required"] = _Kw(list(props), origin, "required", "kept" if not optional else "rewritten")

    # ------------------------------------------------------------------ pass 3: emit

    def _emit(self, value: Any, out_path: str) -> Any:
        if isinstance(value, _Node):
            return self._emit_node(value, out_path)
        if isinstance(value, list):
            return [self._emit(v, f"{out_path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self._emit(v, f"{out_path}/{escape_pointer(k)}") for k, v in value.items()}
        return value

    def _emit_node(self, node: _Node, out_path: str) -> dict[str, Any]:
        self.placed.setdefault(node.origin, []).append(out_path)
        out: dict[str, Any] = {}
        for key, kw in node.kws.items():
            sub = f"{out_path}/{escape_pointer(key)}"
            out[key] = self._emit(kw.value, sub)
            if kw.origin is not None:
                self.trace.append((kw.origin, kw.source, out_path, kw.how))
        if node.notes:
            kept = [n.text for n in node.notes if n.how == "kept"]
            moved = [n.text for n in node.notes if n.how == "described"]
            own = out.get("description")
            parts = [p for p in (*kept, own if isinstance(own, str) else None) if p]
            text = " ".join(parts)
            if moved:
                note = "; ".join(moved)
                text = f"{text} ({note})" if text else note
            if text:
                out["description"] = text
            for n in node.notes:
                self.trace.append((n.origin, n.source, out_path, n.how))
        return out


# --------------------------------------------------------------------------- helpers


def _is_split_branch(pointer: str, listed: set[str]) -> bool:
    """``X/anyOf/N`` where ``X`` is listed too: one node split into anyOf branches, not another place."""
    head, sep, index = pointer.rpartition("/anyOf/")
    return bool(sep) and index.isdigit() and head in listed


def _resolves(doc: Any, pointer: str) -> bool:
    for token in pointer.split("/")[1:] if pointer else []:
        token = _unescape_pointer(token)
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return False
    return True


def _property_names(node: _Node) -> set[str]:
    props = node.kws.get("properties")
    return set(props.value) if props is not None and isinstance(props.value, dict) else set()


def _admits_extra(node: _Node) -> bool:
    """Whether the object accepts property names it does not list (patternProperties counts as maybe)."""
    if "patternProperties" in node.kws:
        return True
    for key in ("additionalProperties", "unevaluatedProperties"):
        kw = node.kws.get(key)
        if kw is not None and kw.value is False:
            return False
    return True


def _is_null_schema(node: _Node) -> bool:
    kind = node.kws.get("type")
    return kind is not None and kind.value == "null" and set(node.kws) <= {"type"} | ANNOTATIONS


def _clone_kw(kw: _Kw) -> _Kw:
    value = kw.value
    if isinstance(value, _Node):
        value = _clone_node(value)
    elif isinstance(value, list) and value and isinstance(value[0], _Node):
        value = [_clone_node(v) for v in value]
    elif isinstance(value, dict) and value and isinstance(next(iter(value.values())), _Node):
        value = {k: _clone_node(v) for k, v in value.items()}
    return _Kw(value, kw.origin, kw.source, kw.how)


def _clone_note(note: _Note) -> _Note:
    return _Note(note.text, note.origin, note.source, note.how)


def _clone_node(node: _Node) -> _Node:
    return _Node(node.origin, {k: _clone_kw(v) for k, v in node.kws.items()}, [_clone_note(n) for n in node.notes])


def _nullable(node: _Node) -> _Node:
    """``node`` or null (strict mode's spelling of an optional property)."""
    kind = node.kws.get("type")
    if kind is not None and "enum" not in node.kws and "anyOf" not in node.kws:
        types = kind.value if isinstance(kind.value, list) else [kind.value]
        if "null" not in types:
            node.kws["type"] = _Kw([*types, "null"], kind.origin, "type", "rewritten")
        return node
    any_of = node.kws.get("anyOf")
    if any_of is not None and set(node.kws) <= {"anyOf"} | ANNOTATIONS:
        if not any(_is_null_schema(b) for b in any_of.value):
            null = _Node(node.origin, {"type": _Kw("null", None, "type", "added")})
            node.kws["anyOf"] = _Kw([*any_of.value, null], any_of.origin, any_of.source, "rewritten")
        return node
    null = _Node(node.origin, {"type": _Kw("null", None, "type", "added")})
    return _Node(node.origin, {"anyOf": _Kw([node, null], None, "anyOf", "added")})


def _json_type_of(values: Iterable[Any]) -> str | None:
    """The one JSON Schema type shared by ``values`` (integers count as numbers when mixed), else None."""
    kinds: set[str] = set()
    for value in values:
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int):
            kinds.add("integer")
        elif isinstance(value, float):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
        else:
            return None
    if kinds == {"integer", "number"}:
        return "number"
    return kinds.pop() if len(kinds) == 1 else None
