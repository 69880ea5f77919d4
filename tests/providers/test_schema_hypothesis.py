"""Property-based tests: generated JSON Schemas keep the compiler's invariants for every target.

The generator includes issue 12's defect shapes: Go servers' nil maps (``"properties": null``), ``required``
names without a property (open and closed objects), and ``allOf`` splitting an object's properties.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.errors import ToolSchemaError
from providers.types import ToolSpec
from tests.providers.test_schema import (
    TARGETS,
    check_all,
    check_complete,
    compile_for,
    example_args,
    without_nulls,
)

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
DESCRIPTIONS = st.text(alphabet="abc xyz.", min_size=1, max_size=12)


def _annotated(schema: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    extras = st.fixed_dictionaries(
        {},
        optional={"description": DESCRIPTIONS, "title": NAMES, "$comment": NAMES, "x-vendor": st.integers(0, 3)},
    )
    return st.tuples(schema, extras).map(lambda pair: {**pair[0], **pair[1]})


STRINGS = st.fixed_dictionaries(
    {"type": st.just("string")},
    optional={
        "minLength": st.integers(0, 3),
        "maxLength": st.integers(4, 9),
        "format": st.sampled_from(["uri", "date-time", "email", "uuid"]),
        "pattern": st.sampled_from(["^a", "^(?!x)"]),
        "default": st.just("abc"),
    },
)
NUMBERS = st.fixed_dictionaries(
    {"type": st.sampled_from(["integer", "number"])},
    optional={
        "minimum": st.integers(0, 1),
        "maximum": st.integers(5, 9),
        "exclusiveMaximum": st.integers(10, 12),
        "multipleOf": st.just(1),
        "default": st.just(2),
    },
)
LEAVES = _annotated(
    st.one_of(
        STRINGS,
        NUMBERS,
        st.just({"type": "boolean"}),
        st.just({"type": ["string", "null"]}),
        st.just({"type": ["integer", "string"], "minimum": 1, "minLength": 1}),
        st.lists(NAMES, min_size=1, max_size=3, unique=True).map(lambda v: {"type": "string", "enum": v}),
        st.lists(st.integers(0, 9), min_size=1, max_size=3, unique=True).map(lambda v: {"enum": v}),
        st.sampled_from(["on", 3, True]).map(lambda v: {"const": v}),
        st.just({"$ref": "#/$defs/Leaf"}),
        st.just({"$ref": "#/$defs/Node"}),
        st.just({"type": "object", "properties": None, "required": None}),  # a Go nil map and slice
    )
)


def _objects(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def build(props: dict[str, Any], req_flags: list[bool], closed: bool | None, shape: str) -> dict[str, Any]:
        required = [n for n, flag in zip(props, req_flags, strict=False) if flag]
        out: dict[str, Any] = {"type": "object", "properties": props, "required": required}
        if closed is not None:
            out["additionalProperties"] = not closed
        if shape == "ghost":  # a required name without a property
            out["required"] = [*required, "ghost_name"]
        elif shape == "allof" and len(props) > 1:  # the same object written as a conjunction
            first, *rest = props
            out["properties"] = {first: props[first]}
            out["required"] = [n for n in required if n == first]
            out["allOf"] = [
                {"type": "object", "properties": {n: props[n]}, **({"required": [n]} if n in required else {})}
                for n in rest
            ]
        return out

    return st.builds(
        build,
        st.dictionaries(NAMES, children, min_size=1, max_size=3),
        st.lists(st.booleans(), min_size=3, max_size=3),
        st.sampled_from([None, True, None]),
        st.sampled_from(["plain", "plain", "ghost", "allof"]),
    )


def _composites(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return _annotated(
        st.one_of(
            _objects(children),
            st.builds(lambda item, n: {"type": "array", "items": item, "minItems": n}, children, st.integers(0, 1)),
            st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b}),
            children.map(lambda b: {"anyOf": [b, {"type": "null"}], "default": None}),
        )
    )


SCHEMAS = st.recursive(LEAVES, _composites, max_leaves=8)
ROOTS = st.builds(
    lambda obj, dialect: {
        **({"$schema": "https://json-schema.org/draft/2020-12/schema"} if dialect else {}),
        **obj,
        "$defs": {
            "Leaf": {"type": "string", "title": "Leaf"},
            "Node": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "next": {"$ref": "#/$defs/Node"}},
                "required": ["name"],
            },
        },
    },
    _objects(SCHEMAS),
    st.booleans(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROOTS)
def test_generated_schemas_keep_invariants_for_every_target(schema: dict[str, Any]) -> None:
    meaning = without_nulls(schema)  # what the nulls stand for: nothing
    jsonschema.Draft202012Validator.check_schema(meaning)
    before = copy.deepcopy(schema)
    spec = ToolSpec(name="gen.tool", description="generated", input_schema=schema)
    for profile, strict, form in TARGETS:
        refused: ToolSchemaError | None = None
        try:
            toolset = compile_for([spec], profile, strict, form)
        except ToolSchemaError as exc:
            refused = exc
        if refused is not None:
            # Only the restricted forms may refuse; the error names tool, provider and keyword.
            assert strict is True or form == "openapi", refused
            assert "gen.tool" in str(refused)
            assert profile in str(refused)
            assert refused.keyword in str(refused)
            continue
        check_all(toolset, profile)
        tool = toolset.tools[0]
        check_complete(schema, tool)
        again = compile_for([ToolSpec.model_validate(spec.model_dump())], profile, strict, form).tools[0]
        assert json.dumps(again.parameters) == json.dumps(tool.parameters)
        if form != "openapi" and not tool.strict:
            # Only removals that widen what is valid: a value valid for the original stays valid.
            args = example_args(meaning, meaning, True)
            if jsonschema.Draft202012Validator(meaning).is_valid(args):
                jsonschema.validate(args, tool.parameters)
    assert schema == before
