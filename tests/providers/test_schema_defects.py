"""Issue 12's translation defects, one test each, and the defect corpus through the corpus checkers.

The corpus (tests/fixtures/translation_defects.json) holds the shapes that broke: Go servers' nil maps
(``"properties": null``), ``required`` names without a property, ``allOf`` of objects, losses inside
``$defs`` inlined twice, and a server whose name pushes six tools over Gemini's 64-character limit. It goes
through the same independent rule and completeness checks as the 54 real tools, for every target.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from providers._schema_names import hashed_name
from providers.profiles import GEMINI_NAME, get_profile
from providers.schema import compile_tools, format_loss_report
from providers.types import ToolSpec
from tests.providers.test_schema import (
    TARGET_IDS,
    TARGETS,
    as_json_schema,
    at,
    check_all,
    check_genai,
    compile_for,
    example_args,
    one,
    spec,
    without_nulls,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "translation_defects.json"
DEFECTS = [
    ToolSpec(name=f"{server}.{tool['name']}", description=tool["description"], input_schema=tool["inputSchema"])
    for server, tools in json.loads(FIXTURE.read_text()).items()
    for tool in tools
]
BY_NAME = {s.name: s for s in DEFECTS}
LONG_SERVER = "enterprise-knowledge-base-connector-for-confluence-eu-west"
# Gemini's own words: "Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain
# underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64" (gemini-cli#2966).
GEMINI_API_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")


# Open objects that require a name they do not define: strict mode cannot require a free-form argument.
REFUSED_FORCED_STRICT = {"browser.browser_click", "browser.browser_fill"}


def corpus(profile: str, strict: bool | None, form: str | None) -> Any:
    specs = [s for s in DEFECTS if strict is not True or s.name not in REFUSED_FORCED_STRICT]
    return compile_for(specs, profile, strict, form)


def tool_of(name: str, profile: str, strict: bool | None = None, form: str | None = None) -> Any:
    return compile_for([BY_NAME[name]], profile, strict, form).tools[0]


def losses_of(tool: Any) -> set[tuple[str, str, str]]:
    return {(x.path, x.keyword, x.action) for x in tool.losses}


# =========================================================================== the corpus


@pytest.mark.parametrize(("profile", "strict", "form"), TARGETS, ids=TARGET_IDS)
def test_defect_corpus_obeys_target_rules_and_loses_nothing_silently(
    profile: str, strict: bool | None, form: str | None
) -> None:
    toolset = corpus(profile, strict, form)
    assert len(toolset.tools) == len(DEFECTS) - (len(REFUSED_FORCED_STRICT) if strict is True else 0)
    check_all(toolset, profile)
    for tool in toolset.tools:
        assert toolset.canonical_name(tool.name) == tool.spec.name
        assert toolset.provider_name(tool.spec.name) == tool.name


@pytest.mark.parametrize(("profile", "strict", "form"), TARGETS, ids=TARGET_IDS)
def test_defect_corpus_accepts_valid_arguments(profile: str, strict: bool | None, form: str | None) -> None:
    checked = 0
    for tool in corpus(profile, strict, form).tools:
        original = without_nulls(tool.spec.input_schema)
        if tool.spec.name in ("browser.browser_type", "browser.browser_fill"):
            continue  # no arguments satisfy them: `ref`/`selector` are required and forbidden or undefined
        for full in (False, True):
            args = example_args(original, original, full)
            if not jsonschema.Draft202012Validator(original).is_valid(args):
                continue  # example_args knows nothing of allOf
            if tool.strict and not full:
                continue
            jsonschema.validate(args, as_json_schema(tool))
            checked += 1
    assert checked >= (8 if strict is True else 15)


# =========================================================================== 1. Gemini names: 64 characters


@pytest.mark.parametrize("profile", ["gemini", "vertex"])
def test_gemini_names_fit_the_api_limit_of_64(profile: str) -> None:
    specs = [s for s in DEFECTS if s.name.startswith(LONG_SERVER)]
    assert sum(len(s.name) > 64 for s in specs) == 6
    toolset = compile_tools(specs, get_profile(profile))
    names = {t.spec.name: t.name for t in toolset.tools}
    assert all(GEMINI_API_NAME.fullmatch(name) for name in names.values()), names
    assert names[f"{LONG_SERVER}.ok"] == f"{LONG_SERVER}.ok"  # 61 characters: verbatim, dots and all
    for canonical, name in names.items():
        assert toolset.canonical_name(name) == canonical
        if len(canonical) > 64:
            assert name.endswith("_" + hashed_name(canonical, GEMINI_NAME).rsplit("_", 1)[1])
            assert name.split("_")[-2] in canonical.rsplit(".", 1)[1]  # the tool part survives
    assert GEMINI_NAME.max_length == 64
    assert "64" in GEMINI_NAME.reason
    assert "2966" in GEMINI_NAME.reason


# =========================================================================== 2. Go nil maps and slices


@pytest.mark.parametrize(("profile", "strict", "form"), TARGETS, ids=TARGET_IDS)
def test_null_properties_and_required_mean_none_on_every_target(
    profile: str, strict: bool | None, form: str | None
) -> None:
    ping = tool_of("gonil.ping", profile, strict, form)
    assert ping.parameters["properties"] == {}
    assert ping.parameters["required"] == []
    assert ping.losses == ()
    search = tool_of("gonil.search", profile, strict, form)
    props = search.parameters["properties"]
    assert props["filter"]["properties"] == {}
    assert props["sort"]["items"]["properties"]["field"]["type"] in ("string", "STRING", ["string", "null"])
    assert not any(x.keyword in ("properties", "required") and x.action != "rewritten" for x in search.losses)
    if strict is not True:
        assert "required" not in props["filter"]
        assert "required" not in props["sort"]["items"]
    if profile == "gemini":
        check_genai(search)


def test_null_description_and_nested_null_keywords_are_left_out() -> None:
    schema = {
        "type": "object",
        "description": None,
        "properties": {"a": {"type": "string", "enum": None, "description": None}},
        "required": None,
    }
    for profile, strict, form in TARGETS:
        tool = one(schema, profile, strict, form)
        a = tool.parameters["properties"]["a"]
        assert "enum" not in a
        assert "description" not in a
        assert "description" not in tool.parameters
        assert tool.losses == () or strict is True  # strict=True makes `a` required-and-nullable
    # null IS a value for default and const
    kept = one({"type": "object", "properties": {"a": {"type": ["string", "null"], "default": None}}})
    assert kept.parameters["properties"]["a"] == {"type": ["string", "null"], "default": None}


# =========================================================================== 3. required without a property


@pytest.mark.parametrize(("form"), ["json_schema", "openapi"])
def test_gemini_drops_required_names_without_a_property(form: str) -> None:
    closed = tool_of("browser.browser_type", "gemini", form=form)
    assert closed.parameters["required"] == ["text"]
    assert ("", "required", "dropped") in losses_of(closed)
    assert "ref" in next(x.detail for x in closed.losses if x.keyword == "required")
    opened = tool_of("browser.browser_click", "gemini", form=form)
    assert opened.parameters["required"] == []
    assert "required: ref (not among properties)" in opened.parameters["description"]
    assert ("", "required", "moved_to_description") in losses_of(opened)
    nested = tool_of("browser.browser_fill", "gemini", form=form)
    assert nested.parameters["properties"]["form"]["required"] == ["value"]
    assert nested.parameters["required"] == ["form"]
    for tool in (closed, opened, nested):
        check_genai(tool)


def test_ollama_drops_them_and_anthropic_and_openai_keep_them() -> None:
    assert tool_of("browser.browser_type", "ollama").parameters["required"] == ["text"]
    assert tool_of("browser.browser_click", "ollama").parameters["required"] == []
    for profile in ("anthropic", "groq"):
        assert tool_of("browser.browser_type", profile).parameters["required"] == ["ref", "text"]
        assert tool_of("browser.browser_click", profile).losses == ()
    # OpenAI strict needs required == properties: not strict when it qualifies; forced, a closed object
    # drops the impossible name (no value could satisfy it), an open one cannot be made strict.
    lax = tool_of("browser.browser_type", "openai")
    assert not lax.strict
    assert "without properties" in lax.strict_reason
    assert lax.parameters["required"] == ["ref", "text"]
    forced = tool_of("browser.browser_type", "openai", strict=True)
    assert forced.strict
    assert forced.parameters["required"] == ["text"]
    assert ("", "required", "dropped") in losses_of(forced)
    from providers.errors import ToolSchemaError

    for name in REFUSED_FORCED_STRICT:
        with pytest.raises(ToolSchemaError) as err:
            tool_of(name, "openai", strict=True)
        assert err.value.keyword == "required"


# =========================================================================== 4. allOf of object schemas


@pytest.mark.parametrize(
    ("profile", "strict", "form"),
    [("gemini", None, "json_schema"), ("gemini", None, "openapi"), ("ollama", None, None), ("openai", True, None)],
)
def test_allof_of_objects_is_merged(profile: str, strict: bool | None, form: str | None) -> None:
    tool = tool_of("allof.create_user", profile, strict, form)
    params = tool.parameters
    assert list(params["properties"]) == ["id", "name", "age"]
    assert params["required"][:2] == ["id", "name"]
    assert "allOf" not in json.dumps(params)
    assert ("", "allOf", "rewritten") in losses_of(tool)
    moved = tool_of("allof.move", profile, strict, form).parameters["properties"]["to"]
    assert set(moved["properties"]) == {"x", "y"}
    assert moved["required"] == ["x", "y"]
    assert moved["description"].startswith("Where to.")


def test_allof_branch_that_cannot_merge_is_reported_and_the_rest_merged() -> None:
    tool = tool_of("allof.partial", "gemini")
    assert tool.parameters["properties"] == {"a": {"type": "string"}}
    assert tool.parameters["required"] == ["a"]
    moved = [x for x in tool.losses if x.keyword == "allOf" and x.action == "moved_to_description"]
    assert len(moved) == 1
    assert "/allOf/1: keywords ['not'] do not merge" in moved[0].detail
    assert "allOf:" in tool.parameters["description"]
    conflicting = {
        "type": "object",
        "allOf": [{"properties": {"v": {"type": "string"}}}, {"properties": {"v": {"type": "integer"}}}],
    }
    tool = one(conflicting, "gemini")
    assert tool.parameters["properties"] == {"v": {"type": "string"}}
    assert any("property 'v' is defined differently" in x.detail for x in tool.losses)
    closed = {
        "type": "object",
        "allOf": [
            {"properties": {"a": {"type": "string"}}, "additionalProperties": False},
            {"properties": {"b": {"type": "string"}}},
        ],
    }
    tool = one(closed, "gemini")  # merging would accept b, which the first branch forbids
    assert any("rejects properties ['b']" in x.detail for x in tool.losses)


def test_anthropic_and_openai_keep_allof_as_it_is() -> None:
    for profile in ("anthropic", "groq"):
        tool = tool_of("allof.create_user", profile)
        assert len(tool.parameters["allOf"]) == 2
        assert tool.losses == ()


# =========================================================================== 5. losses inside $defs


def test_losses_in_defs_name_where_they_were_sent() -> None:
    tool = tool_of("defs.route", "gemini")
    by_key = {(x.path, x.keyword): x for x in tool.losses}
    title = by_key[("/$defs/Stop", "title")]
    assert title.wire_paths == ("/properties/start", "/properties/end")
    bound = by_key[("/$defs/Stop/properties/km", "exclusiveMinimum")]
    assert bound.wire_paths == ("/properties/start/properties/km", "/properties/end/properties/km")
    for wire in bound.wire_paths:
        assert "exclusiveMinimum: 0" in at(tool.parameters, wire)["description"]
    assert by_key[("/properties/start", "$ref")].wire_paths == ("/properties/start",)
    assert by_key[("", "$defs")].wire_paths == ("",)
    report = format_loss_report(compile_for([BY_NAME["defs.route"]], "gemini"))
    assert "at /$defs/Stop/properties/km (sent at /properties/start/properties/km, /properties/end/properties/km)" in (
        report
    )
    unused = one({"type": "object", "$defs": {"Nope": {"type": "string"}}, "properties": {}})
    assert next(x for x in unused.losses if x.keyword == "Nope").wire_paths == ()


def test_wire_paths_of_openapi_branches_point_at_the_split_node() -> None:
    schema = {"type": "object", "properties": {"v": {"type": ["string", "integer"], "title": "V"}}}
    tool = one(schema, "gemini", form="openapi")
    title = next(x for x in tool.losses if x.keyword == "title")
    assert title.wire_paths == ("/properties/v",)
    assert "anyOf" in at(tool.parameters, "/properties/v")


# =========================================================================== 6. names without needless hashes


@pytest.mark.parametrize("profile", ["openai", "anthropic", "ollama"])
def test_unique_names_that_fit_carry_no_hash(profile: str) -> None:
    toolset = compile_for([spec({}, name="add.add"), spec({}, name="files.read-file")], profile)
    assert {t.spec.name: t.name for t in toolset.tools} == {"add.add": "add_add", "files.read-file": "files_read-file"}
    assert compile_for([spec({}, name="add.add")], "gemini").tools[0].name == "add.add"


def test_collisions_hash_only_the_losers_whatever_the_order() -> None:
    rule = get_profile("openai").tool_names
    a, b, c = spec({}, name="a.b.c"), spec({}, name="a.b_c"), spec({}, name="a_b.c")
    for order in ([a, b, c], [c, b, a], [b, a, c]):
        names = {t.spec.name: t.name for t in compile_for(order, "openai").tools}
        assert names["a.b.c"] == "a_b_c"  # the smallest canonical name keeps the readable form
        assert names["a.b_c"] == hashed_name("a.b_c", rule)
        assert names["a_b.c"] == hashed_name("a_b.c", rule)
    verbatim = spec({}, name="a_b_c")
    names = {t.spec.name: t.name for t in compile_for([a, b, verbatim], "openai").tools}
    assert names == {"a_b_c": "a_b_c", "a.b.c": hashed_name("a.b.c", rule), "a.b_c": hashed_name("a.b_c", rule)}


def test_adding_a_tool_renames_only_what_it_collides_with() -> None:
    first = [spec({}, name="git.status"), spec({}, name="git.log"), spec({}, name="add.add")]
    before = {t.spec.name: t.name for t in compile_for(first, "openai").tools}
    after = {t.spec.name: t.name for t in compile_for([*first, spec({}, name="time.now")], "openai").tools}
    assert after == {**before, "time.now": "time_now"}
    # A newcomer whose readable form is taken loses to the existing, smaller name: nothing is renamed.
    later = {t.spec.name: t.name for t in compile_for([*first, spec({}, name="git.status_")], "openai").tools}
    assert {k: later[k] for k in before} == before
    clash = {t.spec.name: t.name for t in compile_for([*first, spec({}, name="git_status.x")], "openai").tools}
    assert {k: clash[k] for k in before} == before


def test_unknown_history_names_never_take_an_offered_tools_name() -> None:
    toolset = compile_for([spec({}, name="a_b")], "openai")
    assert toolset.provider_name("a_b") == "a_b"
    gone = toolset.provider_name("a.b")  # a call in history to a tool the hub no longer offers
    assert gone != "a_b"
    assert gone == hashed_name("a.b", get_profile("openai").tool_names)
    assert compile_for([spec({}, name="x.y")], "openai").provider_name("a.b") == "a_b"


def test_old_style_hashed_names_still_map_back() -> None:
    rule = get_profile("openai").tool_names
    toolset = compile_for([spec({}, name="add.add"), spec({}, name="git_status")], "openai")
    old = hashed_name("add.add", rule)  # what routekit sent before: add_add_<8 hex>
    assert re.fullmatch(r"add_add_[0-9a-f]{8}", old)
    assert toolset.canonical_name(old) == "add.add"
    assert toolset.canonical_name("add_add") == "add.add"
    assert toolset.canonical_name("git_status") == "git_status"
