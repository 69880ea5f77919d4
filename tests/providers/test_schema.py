"""Tests for the schema compiler (providers/schema.py) over the 54 real MCP tools and hand-made schemas.

The checkers below are independent of the compiler: per-target rule checks written from
provider-rules.md, and a completeness check that walks every keyword of the ORIGINAL schema and proves it
is either at the place the trace names in the output (with the same value) or named by a loss entry.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from google.genai import types as genai_types

from providers.errors import ToolSchemaError
from providers.profiles import get_profile
from providers.schema import clear_cache, compile_tools, format_loss_report, provider_tool_name
from providers.types import ToolSpec

SCHEMA_VALUED = {"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else"} | {
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
}
SCHEMA_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
SCHEMA_MAPS = {"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"}

NEVER = {"$schema", "$id", "$comment", "$ref", "$defs", "definitions", "const", "$anchor"}
GEMINI_JSON_FORBIDDEN = {"title", "examples", "exclusiveMinimum", "exclusiveMaximum"}
OPENAPI_ALLOWED = {
    "type",
    "properties",
    "required",
    "items",
    "anyOf",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
    "description",
    "nullable",
    "propertyOrdering",
}
OPENAPI_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
STRICT_FORBIDDEN = {
    "minLength",
    "maxLength",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "default",
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
}
STRICT_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
# The longest function name each API accepts, from its own error text (provider-rules.md): Gemini's "with a
# maximum length of 64" (gemini-cli#2966), OpenAI's FunctionObject.name, Anthropic's "at most 64 characters".
API_NAME_MAX = {"gemini": 64, "openai": 64, "anthropic": 64, "ollama": 64}
# Targets that reject or mis-handle `required` names without a property and never see allOf.
NO_UNDEFINED_REQUIRED = {"gemini", "ollama"}
NULL_VALUED = {"default", "const", "example"}  # the only keywords whose value may be null


def nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node (dict) with its JSON pointer."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for key, value in schema.items():
        sub = f"{path}/{esc(key)}"
        if key in SCHEMA_VALUED and isinstance(value, dict):
            yield from nodes(value, sub)
        elif (key == "items" and isinstance(value, list)) or (key in SCHEMA_LISTS and isinstance(value, list)):
            for i, item in enumerate(value):
                yield from nodes(item, f"{sub}/{i}")
        elif key in SCHEMA_MAPS and isinstance(value, dict):
            for name, item in value.items():
                yield from nodes(item, f"{sub}/{esc(name)}")


def esc(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def at(doc: Any, pointer: str) -> Any:
    for token in pointer.split("/")[1:] if pointer else []:
        token = token.replace("~1", "/").replace("~0", "~")
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


# --------------------------------------------------------------------------- per-target rules


def check_rules(tool: Any, target: str, name_pattern: str, max_name: int) -> None:
    kept_undefined = {"anthropic", "openai"} if has_undefined_required(tool.spec.input_schema) else None
    if tool.strict:
        kept_undefined = None
    assert re.fullmatch(name_pattern, tool.name), tool.name
    assert len(tool.name) <= max_name, tool.name
    assert len(tool.name) <= API_NAME_MAX[target], tool.name
    params = tool.parameters
    openapi = tool.schema_form == "openapi"
    assert params["type"] == ("OBJECT" if openapi else "object")
    assert isinstance(params["properties"], dict)
    assert isinstance(params["required"], list)
    for path, node in nodes(params):
        keys = set(node)
        assert not keys & NEVER, (tool.spec.name, path, keys & NEVER)
        if target == "gemini" and not openapi:
            assert not keys & GEMINI_JSON_FORBIDDEN, (path, keys)
        if openapi:
            check_openapi_node(path, node)
        if tool.strict:
            check_strict_node(path, node)
        # Anthropic and OpenAI (non-strict) keep `required` names without a property, which the original
        # held: JSON Schema gives them a meaning there (the argument must be present).
        if "required" in node and "properties" in node and (kept_undefined is None or target not in kept_undefined):
            assert set(node["required"]) <= set(node["properties"]), path
        assert all(v is not None for k, v in node.items() if k not in NULL_VALUED), (path, node)
        if target in NO_UNDEFINED_REQUIRED:
            assert set(node.get("required", [])) <= set(node.get("properties", {})), (tool.spec.name, path)
            assert "allOf" not in node, (tool.spec.name, path)
    for loss in tool.losses:
        for wire in loss.wire_paths:  # every wire pointer names a node of the schema sent
            assert isinstance(at(params, wire), dict), (tool.spec.name, loss)
    if openapi:
        for name in params["properties"]:
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name), name


def without_nulls(schema: Any) -> Any:
    """What a Go server's schema means: null-valued keywords (nil maps and slices) left out."""
    if isinstance(schema, dict):
        return {k: without_nulls(v) for k, v in schema.items() if v is not None or k in NULL_VALUED}
    if isinstance(schema, list):
        return [without_nulls(v) for v in schema]
    return schema


def has_undefined_required(schema: Any) -> bool:
    """Whether some node of ``schema`` requires a name its ``properties`` do not define."""
    return any(set(node.get("required") or []) - set(node.get("properties") or {}) for _, node in nodes(schema))


def check_openapi_node(path: str, node: dict[str, Any]) -> None:
    assert set(node) <= OPENAPI_ALLOWED, (path, set(node) - OPENAPI_ALLOWED)
    if "type" in node:
        assert node["type"] in {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}, (path, node["type"])
    if "anyOf" in node:
        assert set(node) == {"anyOf"}, (path, "anyOf with siblings")
    if "enum" in node:
        assert all(isinstance(v, str) for v in node["enum"]), path
    if "format" in node:
        assert node["format"] in OPENAPI_FORMATS.get(node.get("type", ""), set()), (path, node["format"])
    if node.get("type") == "ARRAY":
        assert "items" in node, path
    if "required" in node:
        assert "properties" in node, path


def check_strict_node(path: str, node: dict[str, Any]) -> None:
    assert not set(node) & STRICT_FORBIDDEN, (path, set(node) & STRICT_FORBIDDEN)
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    assert types != [None] or "anyOf" in node or "enum" in node, (path, "untyped node in strict mode")
    if "object" in types:
        assert node.get("additionalProperties") is False, path
        assert node["required"] == list(node["properties"]), path
    if "array" in types:
        assert isinstance(node.get("items"), dict), path
    if "format" in node:
        assert node["format"] in STRICT_FORMATS, path
    if path == "":
        assert "anyOf" not in node


# --------------------------------------------------------------------------- completeness


def check_complete(original: dict[str, Any] | None, tool: Any) -> None:
    """Every keyword of the original is in the output where the trace says, or named by a loss entry."""
    if original is None:
        return
    losses = tool.losses
    exact = {(loss.path, loss.keyword) for loss in losses}
    subtrees = [f"{loss.path}/{esc(loss.keyword)}" for loss in losses if loss.action != "rewritten"]
    loss_paths = {loss.path for loss in losses if loss.action == "rewritten"}
    placed: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for origin, keyword, out_path, how in tool.trace:
        placed.setdefault((origin, keyword), []).append((out_path, how))

    def excluded(path: str) -> bool:
        return any(path == s or path.startswith(s + "/") for s in subtrees)

    live = live_definitions(original, excluded)
    for path, node in nodes(original):
        if excluded(path):
            continue
        if path.startswith(("/$defs/", "/definitions/")) and not any(
            path == d or path.startswith(d + "/") for d in live
        ):
            continue  # only referenced from a subtree that went into a description (with a loss entry)
        for key, value in node.items():
            if (path, key) in exact:
                for out_path, how in placed.get((path, key), []):
                    if how == "described":
                        assert f"{key}:" in at(tool.parameters, out_path).get("description", ""), (path, key)
                continue
            if value is None and key not in NULL_VALUED:
                continue  # a Go nil map or slice: means none, and check_rules proves no null is sent
            spots = placed.get((path, key))
            assert spots, f"{tool.spec.name}: {key!r} at {path!r} silently lost"
            for out_path, how in spots:
                out = at(tool.parameters, out_path)
                check_placement(tool, path, key, value, out, how, loss_paths)


def live_definitions(original: dict[str, Any], excluded: Any) -> set[str]:
    """Pointers of the definitions a ``$ref`` outside the excluded subtrees reaches (transitively)."""
    live: set[str] = set()
    todo = [("", original)]
    while todo:
        base, schema = todo.pop()
        for path, node in nodes(schema, base):
            if excluded(path) or (base == "" and path.startswith(("/$defs", "/definitions"))):
                continue
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and ref[1:] not in live:
                live.add(ref[1:])
                todo.append((ref[1:], at(original, ref[1:])))
    return live


def check_placement(
    tool: Any, path: str, key: str, value: Any, out: dict[str, Any], how: str, loss_paths: set[str]
) -> None:
    where = f"{tool.spec.name}: {key} at {path} -> {out}"
    if how == "described":
        raise AssertionError(f"{where}: moved into the description without a loss entry")
    if how == "rewritten":
        assert any(path == p or path.startswith(p + "/") for p in loss_paths), where
    elif key == "description":
        assert value in out["description"], where
    elif key == "required":
        assert set(value) <= set(out["required"]), where
    elif key == "type" and isinstance(value, str):
        assert str(out["type"]).lower() == value, where
    elif key in SCHEMA_VALUED | SCHEMA_LISTS | SCHEMA_MAPS:
        assert key in out, where
        if isinstance(value, bool):
            assert out[key] is value, where
        elif key in SCHEMA_LISTS | SCHEMA_MAPS:
            assert (type(out[key]) is type(value) and 0 < len(out[key]) <= len(value)) or value == out[key], where
        else:
            assert isinstance(out[key], dict), where
    else:
        assert out[key] == value, where


# =========================================================================== fixtures and helpers

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "real_tool_schemas.json"  # copy of shared/fixtures


def _load_specs() -> list[tuple[ToolSpec, dict[str, Any]]]:
    data = json.loads(FIXTURES.read_text())
    out = []
    for server, tools in data.items():
        for tool in tools:
            spec = ToolSpec(
                name=f"{server}.{tool['name']}",
                description=tool.get("description", ""),
                input_schema=tool.get("inputSchema"),
                output_schema=tool.get("outputSchema"),
                origin=server,
            )
            out.append((spec, tool))
    return out


SPECS = _load_specs()
ALL = [spec for spec, _ in SPECS]

# (profile, strict, schema_form)
TARGETS = [
    ("anthropic", None, None),
    ("openai", None, None),
    ("openai", True, None),
    ("openai", False, None),
    ("groq", None, None),
    ("gemini", None, "json_schema"),
    ("gemini", None, "openapi"),
    ("ollama", None, None),
]
TARGET_IDS = [f"{p}-{s}-{f}" for p, s, f in TARGETS]


def compile_for(specs: list[ToolSpec], profile: str, strict: bool | None = None, form: str | None = None) -> Any:
    return compile_tools(specs, get_profile(profile), strict=strict, schema_form=form)  # type: ignore[arg-type]


def check_all(toolset: Any, profile: str) -> None:
    rule = get_profile(profile).tool_names
    for tool in toolset.tools:
        check_rules(tool, toolset.target, rule.pattern.pattern, rule.max_length)
        check_complete(tool.spec.input_schema, tool)
        if toolset.target == "gemini":
            check_genai(tool)


def check_genai(tool: Any) -> None:
    decl: dict[str, Any] = {"name": tool.name, "description": tool.description}
    if tool.schema_form == "openapi":
        genai_types.Schema.model_validate(tool.parameters)
        decl["parameters"] = tool.parameters
    else:
        decl["parameters_json_schema"] = tool.parameters
    genai_types.FunctionDeclaration.model_validate(decl)


def as_json_schema(tool: Any) -> dict[str, Any]:
    """The compiled parameters as JSON Schema (Gemini `parameters`: through the SDK's own conversion)."""
    if tool.schema_form != "openapi":
        return dict(tool.parameters)
    schema = genai_types.Schema.model_validate(tool.parameters).json_schema
    return schema.model_dump(mode="json", by_alias=True, exclude_none=True)


def spec(schema: Any, name: str = "srv.tool", description: str = "A tool.") -> ToolSpec:
    return ToolSpec(name=name, description=description, input_schema=schema)


def one(schema: Any, profile: str = "anthropic", strict: bool | None = None, form: str | None = None) -> Any:
    return compile_for([spec(schema)], profile, strict, form).tools[0]


def example_args(schema: Any, root: Any, full: bool, depth: int = 0) -> Any:
    """A value valid for ``schema`` (required properties only, or every property when ``full``)."""
    full = full and depth < 6  # recursive schemas: only required properties below that
    depth += 1
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return example_args(at(root, schema["$ref"][1:]), root, full, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example_args(schema["anyOf"][0], root, full, depth)
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties") or {}
        names = list(props) if full else [n for n in schema.get("required") or [] if n in props]
        return {n: example_args(props[n], root, full, depth) for n in names}
    if kind == "array":
        return [example_args(schema.get("items", {}), root, full, depth)] * max(1, schema.get("minItems", 0))
    if kind == "string":
        return "https://example.com/x" if schema.get("format") == "uri" else "abc"
    if kind in ("number", "integer"):
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    return None


# =========================================================================== the 54 real tools


def test_fixture_has_54_tools() -> None:
    assert len(ALL) == 54


@pytest.mark.parametrize(("profile", "strict", "form"), TARGETS, ids=TARGET_IDS)
def test_real_tools_obey_target_rules_and_lose_nothing_silently(
    profile: str, strict: bool | None, form: str | None
) -> None:
    toolset = compile_for(ALL, profile, strict, form)
    assert [t.spec.name for t in toolset.tools] == [s.name for s in ALL]
    check_all(toolset, profile)
    for tool in toolset.tools:
        assert toolset.canonical_name(tool.name) == tool.spec.name
        assert toolset.provider_name(tool.spec.name) == tool.name
        assert tool.description == tool.spec.description
        assert all(loss.tool == tool.spec.name and loss.target == toolset.target for loss in tool.losses)


@pytest.mark.parametrize(("profile", "strict", "form"), TARGETS, ids=TARGET_IDS)
def test_real_tools_accept_valid_arguments(profile: str, strict: bool | None, form: str | None) -> None:
    toolset = compile_for(ALL, profile, strict, form)
    for tool in toolset.tools:
        original = tool.spec.input_schema
        for full in (False, True):
            args = example_args(original, original, full)
            jsonschema.validate(args, original)
            if tool.strict and not full:
                continue  # strict mode requires every property: only complete arguments apply
            jsonschema.validate(args, as_json_schema(tool))


@pytest.mark.parametrize(("profile", "strict", "form"), TARGETS, ids=TARGET_IDS)
def test_real_tools_still_reject_missing_required(profile: str, strict: bool | None, form: str | None) -> None:
    toolset = compile_for(ALL, profile, strict, form)
    checked = 0
    for tool in toolset.tools:
        if tool.schema_form == "openapi":
            continue  # the SDK's json_schema view drops `required`; covered by check_rules instead
        for name in tool.spec.input_schema.get("required", []):
            args = example_args(tool.spec.input_schema, tool.spec.input_schema, True)
            del args[name]
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(args, tool.parameters)
            checked += 1
    assert checked > 40 or toolset.tools[0].schema_form == "openapi"


def test_real_tools_loss_summary_is_stable() -> None:
    """The per-target loss counts printed in the issue's closing note."""
    counts = {}
    for profile, strict, form in TARGETS:
        toolset = compile_for(ALL, profile, strict, form)
        actions: dict[str, int] = {}
        for loss in toolset.losses:
            actions[loss.action] = actions.get(loss.action, 0) + 1
        counts[f"{profile}-{strict}-{form}"] = (actions, sum(t.strict for t in toolset.tools))
    # Every $schema is dropped everywhere (40 tools carry one).
    for actions, _ in counts.values():
        assert actions.get("dropped", 0) >= 40
    assert counts["anthropic-None-None"] == ({"dropped": 40}, 0)
    assert counts["openai-None-None"][1] == 34  # strict where the schema qualifies
    assert counts["openai-True-None"][1] == 54
    assert counts["groq-None-None"][1] == 0  # the profile has no strict schemas
    assert counts["gemini-None-openapi"][0].get("moved_to_description", 0) > 0


def test_fixture_inputs_are_not_mutated_and_output_is_deterministic() -> None:
    before = json.dumps([s.input_schema for s in ALL])
    outputs = []
    for _ in range(2):
        clear_cache()
        for profile, strict, form in TARGETS:
            toolset = compile_for(ALL, profile, strict, form)
            outputs.append(
                json.dumps([(t.name, t.parameters, [list(astuple(x)) for x in t.losses]) for t in toolset.tools])
            )
    assert json.dumps([s.input_schema for s in ALL]) == before
    half = len(outputs) // 2
    assert outputs[:half] == outputs[half:]


def test_cache_returns_the_same_toolset_for_equal_specs() -> None:
    first = compile_for(ALL, "openai")
    copies = [ToolSpec.model_validate(s.model_dump()) for s in ALL]
    assert compile_for(copies, "openai") is first
    assert compile_for(ALL, "openai", strict=False) is not first
    changed = [*copies[:-1], spec({"type": "object", "properties": {"q": {"type": "string"}}}, name=copies[-1].name)]
    assert compile_for(changed, "openai").tools[-1].parameters["properties"] == {"q": {"type": "string"}}


# =========================================================================== transformations


def test_missing_schema_and_missing_properties_become_an_object_root() -> None:
    for schema in (None, {}, {"type": "object"}):
        for profile, strict, form in TARGETS:
            tool = one(schema, profile, strict, form)
            assert tool.parameters["properties"] == {}
            assert tool.parameters["required"] == []
            assert tool.losses == ()


def test_const_becomes_single_enum_and_type_array_becomes_nullable_for_openapi() -> None:
    schema = {
        "type": "object",
        "properties": {"mode": {"const": "fast"}, "n": {"type": ["integer", "null"], "minimum": 1}},
    }
    tool = one(schema, "gemini", form="openapi")
    assert tool.parameters["properties"]["mode"] == {"type": "STRING", "enum": ["fast"]}
    assert tool.parameters["properties"]["n"] == {"type": "INTEGER", "minimum": 1, "nullable": True}
    kinds = {(loss.path, loss.keyword, loss.action) for loss in tool.losses}
    assert ("/properties/mode", "const", "rewritten") in kinds
    assert ("/properties/n", "type", "rewritten") in kinds
    json_tool = one(schema, "anthropic")
    assert json_tool.parameters["properties"]["n"]["type"] == ["integer", "null"]


def test_unsupported_keywords_move_into_the_property_description() -> None:
    schema = {
        "type": "object",
        "properties": {"url": {"type": "string", "description": "Where.", "format": "uri", "minLength": 3}},
    }
    strict_tool = one(schema | {"required": ["url"]}, "openai", strict=True)
    assert strict_tool.parameters["properties"]["url"]["description"] == "Where. (format: uri; minLength: 3)"
    moved = {(x.path, x.keyword) for x in strict_tool.losses if x.action == "moved_to_description"}
    assert moved == {("/properties/url", "format"), ("/properties/url", "minLength")}
    gemini = one(schema, "gemini", form="openapi")
    assert gemini.parameters["properties"]["url"] == {
        "type": "STRING",
        "description": "Where. (format: uri)",
        "minLength": 3,
    }


def test_refs_are_inlined_with_losses_pointing_into_the_original() -> None:
    schema = {
        "type": "object",
        "$defs": {"Point": {"type": "object", "title": "Point", "properties": {"x": {"type": "number"}}}, "Unused": {}},
        "properties": {"a": {"$ref": "#/$defs/Point", "description": "start"}, "b": {"$ref": "#/$defs/Point"}},
    }
    for profile, strict, form in TARGETS:
        tool = one(schema, profile, strict, form)
        props = tool.parameters["properties"]
        kind = props["a"]["properties"]["x"]["type"]
        assert (kind if strict is not True else kind[0]).lower() == "number"
        assert props["a"]["description"].startswith("start")
        assert "$ref" not in json.dumps(tool.parameters)
        check_complete(schema, tool)
    keys = {(x.path, x.keyword, x.action) for x in one(schema, "gemini").losses}
    assert ("/$defs/Point", "title", "moved_to_description") in keys
    assert ("/properties/a", "$ref", "rewritten") in keys
    assert ("/$defs", "Unused", "dropped") in keys


RECURSIVE = {
    "type": "object",
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "value": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
            "required": ["value", "children"],
            "additionalProperties": False,
        }
    },
    "properties": {"tree": {"$ref": "#/$defs/Node"}},
    "required": ["tree"],
}


def test_recursive_refs_are_cut_with_a_loss_entry() -> None:
    tool = one(RECURSIVE, "anthropic")
    cut = [x for x in tool.losses if x.keyword == "$ref" and x.action == "dropped"]
    assert [x.path for x in cut] == ["/$defs/Node/properties/children/items"]
    level2 = tool.parameters["properties"]["tree"]["properties"]["children"]["items"]
    deepest = level2["properties"]["children"]["items"]
    assert deepest["type"] == "object"
    assert "properties" not in deepest
    assert "recursive" in deepest["description"]
    check_complete(RECURSIVE, tool)


def test_recursive_refs_keep_openai_non_strict_or_raise_when_forced() -> None:
    tool = one(RECURSIVE, "openai")
    assert tool.strict is False
    assert "properties" in tool.strict_reason
    assert "free-form" in tool.strict_reason
    with pytest.raises(ToolSchemaError) as err:
        one(RECURSIVE, "openai", strict=True)
    assert err.value.keyword == "properties"


def test_strict_qualifies_only_without_change_of_meaning() -> None:
    ok = {"type": "object", "properties": {"q": {"type": "string", "default": "x"}}, "required": ["q"]}
    tool = one(ok, "openai")
    assert tool.strict
    assert tool.parameters == {
        "type": "object",
        "properties": {"q": {"type": "string", "description": "default: x"}},
        "required": ["q"],
        "additionalProperties": False,
    }
    assert "qualifies" in tool.strict_reason
    optional = {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}, "required": ["q"]}
    lax = one(optional, "openai")
    assert not lax.strict
    assert "optional properties ['n']" in lax.strict_reason
    assert lax.parameters == optional | {"required": ["q"]}
    forced = one(optional, "openai", strict=True)
    assert forced.strict
    assert forced.parameters["properties"]["n"] == {"type": ["integer", "null"]}
    assert forced.parameters["required"] == ["q", "n"]
    assert any(x.keyword == "required" and x.action == "rewritten" for x in forced.losses)
    assert not one(ok, "openai", strict=False).strict
    assert not one(ok, "groq").strict
    assert "groq" in one(ok, "groq").strict_reason


def test_strict_disqualified_by_validation_keyword_names_it() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string", "maxLength": 5}}, "required": ["q"]}
    tool = one(schema, "openai")
    assert not tool.strict
    assert tool.strict_reason.startswith("strict mode off: maxLength at /properties/q")
    assert tool.parameters["properties"]["q"] == {"type": "string", "maxLength": 5}


def test_anyof_with_siblings_is_distributed_for_gemini_openapi() -> None:
    schema = {
        "type": "object",
        "properties": {
            "v": {"description": "value", "minLength": 2, "anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
    }
    tool = one(schema, "gemini", form="openapi")
    assert tool.parameters["properties"]["v"] == {
        "anyOf": [
            {"type": "STRING", "minLength": 2, "description": "value"},
            {"type": "INTEGER", "minLength": 2, "description": "value"},
        ]
    }
    check_complete(schema, tool)
    check_genai(tool)


def test_non_string_enum_is_described_for_gemini_openapi() -> None:
    schema = {"type": "object", "properties": {"level": {"type": "integer", "enum": [1, 2, 3]}}}
    tool = one(schema, "gemini", form="openapi")
    assert tool.parameters["properties"]["level"] == {"type": "INTEGER", "description": "enum: [1, 2, 3]"}
    assert one(schema, "gemini").parameters["properties"]["level"]["enum"] == [1, 2, 3]


def test_typeless_enum_gets_its_type_for_gemini_openapi() -> None:
    # The Developer API rejects an enum without type ("type: must be specified ...").
    schema = {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}, "n": {"enum": [1, 2.5]}}}
    props = one(schema, "gemini", form="openapi").parameters["properties"]
    assert props["unit"] == {"type": "STRING", "enum": ["c", "f"]}
    assert props["n"]["type"] == "NUMBER"
    mixed = {"type": "object", "properties": {"x": {"enum": ["a", 1]}}}
    assert "type" not in one(mixed, "gemini", form="openapi").parameters["properties"]["x"]


def test_ollama_and_openai_keep_default_anthropic_keeps_title() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "default": 3, "title": "N"}}}
    for profile in ("ollama", "openai", "anthropic"):
        assert one(schema, profile).parameters["properties"]["n"] == {"type": "integer", "default": 3, "title": "N"}
    assert one(schema, "gemini").parameters["properties"]["n"] == {
        "type": "integer",
        "default": 3,
        "description": "title: N",
    }


def test_unknown_keywords_are_dropped_with_a_reason() -> None:
    schema = {"type": "object", "x-order": 1, "properties": {"a": {"type": "string", "markdownDescription": "*a*"}}}
    tool = one(schema)
    assert tool.parameters == {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    assert {(x.path, x.keyword, x.action) for x in tool.losses} == {
        ("", "x-order", "dropped"),
        ("/properties/a", "markdownDescription", "dropped"),
    }


# =========================================================================== ToolSchemaError


@pytest.mark.parametrize(
    ("schema", "profile", "strict", "form", "keyword"),
    [
        ({"type": "string"}, "anthropic", None, None, "type"),
        ({"type": "array", "items": {"type": "string"}}, "gemini", None, None, "type"),
        ({"type": "object", "properties": {"a": {"$ref": "https://x.test/s.json"}}}, "openai", None, None, "$ref"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope"}}}, "ollama", None, None, "$ref"),
        ({"type": "object", "properties": {"a": {"type": "text"}}}, "anthropic", None, None, "type"),
        (
            {"type": "object", "properties": {"m": {"type": "object"}}, "required": ["m"]},
            "openai",
            True,
            None,
            "properties",
        ),
        (
            {"type": "object", "properties": {"m": {"type": "object", "properties": {}, "additionalProperties": True}}},
            "openai",
            True,
            None,
            "additionalProperties",
        ),
        ({"type": "object", "properties": {"file-path": {"type": "string"}}}, "gemini", None, "openapi", "properties"),
        ({"type": "object", "properties": {"tags": {"type": "array"}}}, "gemini", None, "openapi", "items"),
        ({"anyOf": [{"type": "object", "properties": {}}, {"type": "object"}]}, "gemini", None, "openapi", "anyOf"),
        (
            {
                "type": "object",
                "$defs": {"S": {"type": "string"}},
                "properties": {"a": {"$ref": "#/$defs/S", "type": "integer"}},
            },
            "anthropic",
            None,
            None,
            "$ref",
        ),
    ],
)
def test_inexpressible_schemas_raise_tool_schema_error(
    schema: dict[str, Any], profile: str, strict: bool | None, form: str | None, keyword: str
) -> None:
    with pytest.raises(ToolSchemaError) as err:
        compile_for([spec(schema, name="weather.lookup")], profile, strict, form)
    assert err.value.keyword == keyword
    message = str(err.value)
    assert "weather.lookup" in message
    assert profile in message
    assert repr(keyword) in message


def test_duplicate_canonical_names_raise() -> None:
    with pytest.raises(ToolSchemaError, match="share this canonical name"):
        compile_for([spec({}, name="a.b"), spec({}, name="a.b")], "openai")


def test_non_strict_targets_accept_what_strict_rejects() -> None:
    schema = {"type": "object", "properties": {"m": {"type": "object"}, "t": {"type": "array"}}}
    for profile, strict, form in TARGETS:
        if strict is True or form == "openapi":
            continue
        tool = one(schema, profile, strict, form)
        assert tool.parameters["properties"]["m"] == {"type": "object"}


# =========================================================================== names

OPENAI_RULE = get_profile("openai").tool_names
GEMINI_RULE = get_profile("gemini").tool_names


def test_names_accepted_verbatim_are_kept_cleaned_when_they_fit_and_hashed_when_too_long() -> None:
    assert provider_tool_name("git_status", OPENAI_RULE) == "git_status"
    assert provider_tool_name("git.status", GEMINI_RULE) == "git.status"
    assert provider_tool_name("git.status", OPENAI_RULE) == "git_status"  # no hash: nothing to tell apart
    long = "g" * 60 + ".status"
    mapped = provider_tool_name(long, OPENAI_RULE)
    assert re.fullmatch(r"g+_status_[0-9a-f]{8}", mapped)
    assert mapped == provider_tool_name(long, OPENAI_RULE)  # deterministic


def test_long_dotted_names_are_hashed_not_truncated() -> None:
    server = "s" * 100
    names = [f"{server}.tool_{i}" for i in range(5)] + ["x." + "y" * 125]
    assert all(len(n) <= 128 for n in names)
    mapped = [provider_tool_name(n, OPENAI_RULE) for n in names]
    assert len(set(mapped)) == len(names)
    for original, name in zip(names, mapped, strict=True):
        assert OPENAI_RULE.accepts(name)
        assert len(name) == 64
        assert name.endswith(hashlib.sha256(original.encode()).hexdigest()[:8])
    assert mapped[0].startswith("s")
    assert "_tool_0_" in mapped[0]


def test_illegal_characters_non_ascii_and_digit_leading_names() -> None:
    for name in ("café.crème", "srv.tool name!", "1srv.tool", "-x", "", "日本.語"):
        for rule in (OPENAI_RULE, GEMINI_RULE, get_profile("anthropic").tool_names):
            mapped = provider_tool_name(name, rule)
            assert rule.accepts(mapped), (name, mapped)
            assert (mapped[0].isascii() and mapped[0].isalpha()) or rule.accepts(name)
    assert provider_tool_name("1srv.tool", GEMINI_RULE).startswith("t_1srv")
    assert provider_tool_name("1srv_tool", OPENAI_RULE) == "1srv_tool"  # OpenAI's rule allows it


def test_toolset_names_are_reversible_and_collision_free() -> None:
    from providers._schema_names import hashed_name

    hashed = hashed_name("a.b", OPENAI_RULE)
    specs = [spec({}, name="a.b"), spec({}, name=hashed), spec({}, name="a_b"), spec({}, name="a-b.c")]
    for order in (specs, specs[::-1]):
        toolset = compile_for(order, "openai")
        names = {t.spec.name: t.name for t in toolset.tools}
        assert len(set(names.values())) == 4
        assert names[hashed] == hashed  # the verbatim name keeps its name
        assert names["a.b"] != hashed
        assert names["a.b"].startswith("a_b_")
        assert len(names["a.b"]) == len("a_b_") + 16
        for canonical, name in names.items():
            assert toolset.canonical_name(name) == canonical
            assert toolset.provider_name(canonical) == name
    assert compile_for(specs, "openai").tools[0].name == compile_for(specs[::-1], "openai").tools[-1].name
    toolset = compile_for(specs, "openai")
    assert toolset.canonical_name("unknown_tool") == "unknown_tool"
    assert toolset.provider_name("other.tool") == provider_tool_name("other.tool", OPENAI_RULE)


def test_hash_collisions_between_hashed_names_get_longer_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from providers import _schema_names

    real = _schema_names.hashed_name

    def weak(canonical: str, rule: Any, digits: int = 8) -> str:
        return real("same", rule, digits) if digits == 8 else real(canonical, rule, digits)

    monkeypatch.setattr(_schema_names, "hashed_name", weak)
    names = _schema_names.assign_names(["a" * 70 + ".x", "b" * 70 + ".y"], OPENAI_RULE)  # too long: hashed
    assert len(set(names.values())) == 2
    assert all(len(n.rsplit("_", 1)[1]) == 16 for n in names.values())


# =========================================================================== report


def test_format_loss_report_lists_names_strict_reasons_and_losses() -> None:
    text = format_loss_report(compile_for(ALL, "openai"))
    assert text.startswith("target openai: 54 tools, 40 schema changes")
    assert "filesystem.read_file -> filesystem_read_file [json_schema" in text  # no hash where none is needed
    assert "strict mode off: required at (root): optional properties ['tail', 'head']" in text
    assert "dropped: $schema at (root)" in text
    empty = format_loss_report(compile_for([spec({"type": "object", "properties": {}})], "anthropic"))
    assert "no losses" in empty
