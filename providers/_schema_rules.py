"""Per-target schema rules, as data.

Each rule is one line with its reason beside it (the provider's error text, doc or issue, mostly as
collected in provider-rules.md), so the next person can see why it exists and delete it when the
provider changes. The compiler in ``_schema_compile.py`` only interprets these tables.

Actions for a keyword the compiler meets in a schema node:

* ``keep``     — passed through (schema-valued keywords are compiled recursively).
* ``describe`` — removed from the schema and written into the node's ``description``
  (``"format: uri; minLength: 3"``) so the model still sees it; a ``moved_to_description`` loss.
* ``drop``     — removed; a ``dropped`` loss (only for things with no meaning for the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KeywordAction = Literal["keep", "describe", "drop"]


@dataclass(frozen=True, slots=True)
class KeywordRule:
    action: KeywordAction
    reason: str


def _keep(reason: str) -> KeywordRule:
    return KeywordRule("keep", reason)


def _describe(reason: str) -> KeywordRule:
    return KeywordRule("describe", reason)


def _drop(reason: str) -> KeywordRule:
    return KeywordRule("drop", reason)


# --------------------------------------------------------------------------- keyword families

# Keywords whose value is one subschema, a list of subschemas, or a map name -> subschema.
SCHEMA_VALUED: frozenset[str] = frozenset(
    {"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else"}
    | {"unevaluatedItems", "unevaluatedProperties", "additionalItems"}
)
SCHEMA_LISTS: frozenset[str] = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
SCHEMA_MAPS: frozenset[str] = frozenset({"properties", "patternProperties", "dependentSchemas"})

# Annotations: no validation meaning, so moving them into the description never changes what is valid.
ANNOTATIONS: frozenset[str] = frozenset(
    {"title", "description", "default", "examples", "example", "deprecated", "readOnly", "writeOnly"}
)

# Every keyword of JSON Schema 2020-12 (and draft-07 spellings) routekit knows how to reason about.
# Anything else (vendor extensions such as ``x-order``, ``markdownDescription``) is an unknown keyword.
KNOWN_KEYWORDS: frozenset[str] = (
    SCHEMA_VALUED
    | SCHEMA_LISTS
    | SCHEMA_MAPS
    | ANNOTATIONS
    | {"type", "enum", "const", "format", "pattern", "minLength", "maxLength", "minimum", "maximum"}
    | {"exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems"}
    | {"minContains", "maxContains", "required", "minProperties", "maxProperties", "dependentRequired"}
    | {"dependencies", "contentMediaType", "contentEncoding", "contentSchema", "nullable"}
    | {"$schema", "$id", "$comment", "$anchor", "$dynamicAnchor", "$vocabulary", "$ref", "$dynamicRef"}
    | {"$defs", "definitions", "propertyOrdering"}
)

# Handled by the compiler itself for every target (never looked up in a target table).
# $schema/$id/...: identify the document, say nothing about the arguments; Gemini 400s on $schema
# (provider-rules.md §Gemini); dropping them everywhere keeps one behaviour.
METADATA_DROPPED: dict[str, str] = {
    "$schema": "dialect marker, no meaning for arguments (Gemini rejects it: provider-rules.md)",
    "$id": "document identifier, no meaning for arguments; refs are inlined",
    "$comment": "comment for schema authors, not for the model",
    "$anchor": "anchor for $ref; refs are inlined",
    "$dynamicAnchor": "anchor for $dynamicRef; refs are inlined",
    "$vocabulary": "meta-schema vocabulary declaration, no meaning for arguments",
}
UNKNOWN_KEYWORD_REASON = "not a JSON Schema keyword routekit knows; no provider validates it"

# ``"properties": null``, ``"required": null``: what Go servers emit for nil maps and slices (and Python ones
# for unset fields). JSON Schema allows null for none of these keywords, so a null there means "none": the
# keyword is left out (``properties`` becomes ``{}``), for every target and at every depth, and it is no loss.
# Only these keywords take null as a real value: ``{"default": null}``, ``{"const": null}``.
NULL_IS_A_VALUE: frozenset[str] = frozenset({"default", "const", "example"})

STRING_KEYWORDS = frozenset({"minLength", "maxLength", "pattern", "format", "contentMediaType", "contentEncoding"})
NUMBER_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
ARRAY_KEYWORDS = frozenset(
    {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains"}
    | {"additionalItems", "unevaluatedItems"}
)
OBJECT_KEYWORDS = frozenset(
    {"properties", "required", "additionalProperties", "patternProperties", "propertyNames", "minProperties"}
    | {"maxProperties", "dependentRequired", "dependentSchemas", "unevaluatedProperties", "propertyOrdering"}
)
TYPE_SPECIFIC: dict[str, frozenset[str]] = {
    "string": STRING_KEYWORDS,
    "number": NUMBER_KEYWORDS,
    "integer": NUMBER_KEYWORDS,
    "array": ARRAY_KEYWORDS,
    "object": OBJECT_KEYWORDS,
}
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})


# --------------------------------------------------------------------------- target tables


@dataclass(frozen=True, slots=True)
class TargetRules:
    """How one schema target treats each keyword, plus its structural quirks."""

    name: str
    keywords: dict[str, KeywordRule]
    unknown: KeywordRule
    openapi: bool = False  # Gemini ``parameters``: upper-case types, ``nullable``, no type arrays
    formats: dict[str, frozenset[str]] | None = None  # allowed ``format`` per type; None = any
    string_enums_only: bool = False
    max_depth: int | None = None  # nesting limit of object/array levels
    # Names of root properties (function parameters) must match this, or ToolSchemaError.
    parameter_name_pattern: str | None = None
    parameter_name_reason: str = ""
    # ``required`` names that are not among ``properties``: "keep" them (valid JSON Schema: the argument must
    # be present, with any value the object allows), or "drop" them from ``required`` — moved into the
    # description when the object allows the name as an extra property, dropped when it forbids it (then no
    # argument could ever satisfy it).
    undefined_required: Literal["keep", "drop"] = "keep"
    # Merge ``allOf`` branches that are plain object schemas into their parent (the same arguments are
    # valid); what cannot be merged stays in ``allOf`` and gets the target's rule for it.
    merge_all_of: bool = False


_JSON_SCHEMA_KEEP = _keep("JSON Schema keyword the target accepts")

# Anthropic input_schema: "JSON Schema object; non-strict accepts most of JSON Schema" (provider-rules.md).
# ``required`` names without a property are kept: Anthropic accepts them and they mean what JSON Schema says
# (the argument must be there); allOf is accepted as it is.
ANTHROPIC = TargetRules(
    name="anthropic",
    keywords={kw: _JSON_SCHEMA_KEEP for kw in KNOWN_KEYWORDS},
    unknown=_drop(UNKNOWN_KEYWORD_REASON),
)

# OpenAI non-strict: root object with properties (openai-agents#449); the rest of JSON Schema is accepted,
# ``required`` names without a property and allOf included. (Strict mode: see OPENAI_STRICT.)
OPENAI = TargetRules(
    name="openai",
    keywords={kw: _JSON_SCHEMA_KEEP for kw in KNOWN_KEYWORDS},
    unknown=_drop(UNKNOWN_KEYWORD_REASON),
)

# Ollama: OpenAI shape, no server-side validation found; ``default`` kept because it "makes some Ollama
# models behave better" (pydantic-ai profiles/openai.py). ``required`` names without a property are
# mis-handled (camel#2629): dropped. The server reads ``parameters`` into a fixed struct (ollama
# api/types.go ToolFunctionParameters: type, $defs, items, required, properties), so a root allOf never
# reaches the model: merged where it is a plain conjunction of objects.
OLLAMA = TargetRules(
    name="ollama",
    keywords={
        **{kw: _JSON_SCHEMA_KEEP for kw in KNOWN_KEYWORDS},
        "allOf": _describe("Ollama reads parameters into a fixed struct without allOf (ollama api/types.go)"),
    },
    unknown=_drop(UNKNOWN_KEYWORD_REASON),
    undefined_required="drop",
    merge_all_of=True,
)

# OpenAI strict (openai-agents strict_schema.py, pydantic-ai profiles/openai.py, OpenAI structured-outputs
# docs). Validation keywords listed here cannot be expressed: with strict=None they disqualify strict mode,
# with strict=True they are moved into the description.
_STRICT_UNSUPPORTED = "not supported in OpenAI strict mode (provider-rules.md §OpenAI strict)"
OPENAI_STRICT = TargetRules(
    name="openai",
    keywords={
        **{kw: _JSON_SCHEMA_KEEP for kw in KNOWN_KEYWORDS},
        **{
            kw: _describe(_STRICT_UNSUPPORTED)
            for kw in (
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
                "not",
                "if",
                "then",
                "else",
                "allOf",
                "dependentRequired",
                "dependentSchemas",
                "dependencies",
                "additionalItems",
                "contentMediaType",
                "contentEncoding",
                "contentSchema",
            )
        },
        # "no default" in strict mode (pydantic-ai removes it); an annotation, so the model still reads it.
        "default": _describe("OpenAI strict mode rejects default (pydantic-ai profiles/openai.py)"),
        "examples": _describe("not in OpenAI's strict-mode keyword list; kept for the model as text"),
        "example": _describe("OpenAPI spelling, not JSON Schema; kept for the model as text"),
        "deprecated": _describe("not in OpenAI's strict-mode keyword list; kept for the model as text"),
        "readOnly": _describe("not in OpenAI's strict-mode keyword list; kept for the model as text"),
        "writeOnly": _describe("not in OpenAI's strict-mode keyword list; kept for the model as text"),
        "nullable": _describe("OpenAPI spelling, not JSON Schema; strict mode rejects unknown keywords"),
        "propertyOrdering": _drop("Gemini-only ordering hint; strict mode rejects unknown keywords"),
    },
    unknown=_drop(UNKNOWN_KEYWORD_REASON),
    # format: only these (OpenAI structured-outputs docs; `uri` rejected per chatlas#255).
    formats={
        "string": frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}),
    },
    # "up to 10 levels of nesting" (OpenAI structured-outputs docs; 5 reported in ellmer#671, unverified).
    max_depth=10,
    # allOf is not supported in strict mode; a plain conjunction of objects merges without a change of meaning.
    # ``required`` names without a property: strict needs required == the property names, so they cannot
    # stay; the compiler's strict invariants handle them (a reason not to be strict, or with strict=True
    # dropped when the object is closed and refused when it is open).
    merge_all_of=True,
)

# Gemini parameters_json_schema: JSON Schema accepted, but still observed needing removal: $schema
# (handled for all targets), title (python-genai#1732 per pydantic-ai), exclusiveMinimum/Maximum
# (pydantic-ai strips them: "NOT yet supported"). Keywords outside the documented JSON-Schema subset are
# ignored by the API at best, so they go to the description where the model can read them.
_GEMINI_JSON_IGNORED = "outside Gemini's documented JSON Schema subset (ignored or rejected by the API)"
_GEMINI_JSON_KEPT = (
    "type",
    "properties",
    "required",
    "items",
    "prefixItems",
    "additionalProperties",
    "anyOf",
    "oneOf",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "description",
    "default",
    "propertyOrdering",
    "nullable",
)
GEMINI_JSON = TargetRules(
    name="gemini",
    keywords={
        **{kw: _describe(_GEMINI_JSON_IGNORED) for kw in KNOWN_KEYWORDS},
        **{kw: _JSON_SCHEMA_KEEP for kw in _GEMINI_JSON_KEPT},
        "title": _describe("Gemini rejects title in parameters_json_schema (python-genai#1732 via pydantic-ai)"),
        "examples": _describe("Gemini 400s on examples (provider-rules.md §Gemini)"),
        "exclusiveMinimum": _describe("NOT yet supported by Gemini (pydantic-ai google profile)"),
        "exclusiveMaximum": _describe("NOT yet supported by Gemini (pydantic-ai google profile)"),
    },
    unknown=_drop(UNKNOWN_KEYWORD_REASON),
    # "parameters.required[0]: property is not defined" (400; cline#11162, iBUHub/AIStudioToAPI#154).
    undefined_required="drop",
    # allOf is outside the subset: merged where it is a plain conjunction of objects, else described.
    merge_all_of=True,
)

# Gemini parameters (OpenAPI 3.0 subset). Kept: the google-genai Schema fields the Developer API accepts.
# Everything below "describe" produced 400s in the issues collected in provider-rules.md §Gemini.
_GEMINI_400 = "Gemini Developer API 400s on it in `parameters` (provider-rules.md §Gemini)"
GEMINI_OPENAPI = TargetRules(
    name="gemini",
    keywords={
        **{kw: _describe(_GEMINI_400) for kw in KNOWN_KEYWORDS},
        **{
            kw: _keep("google-genai Schema field accepted by the Developer API")
            for kw in (
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
            )
        },
        "additionalProperties": _describe(
            "google-genai process_schema refuses additionalProperties outside Vertex mode"
        ),
        "default": _describe("Gemini 400s on default in `parameters` (provider-rules.md §Gemini)"),
        "title": _describe("Gemini 400s on title in `parameters` (provider-rules.md §Gemini)"),
    },
    unknown=_drop(UNKNOWN_KEYWORD_REASON),
    openapi=True,
    # mcp-agent's table of accepted formats (provider-rules.md §Gemini).
    formats={
        "string": frozenset({"enum", "date-time"}),
        "number": frozenset({"float", "double"}),
        "integer": frozenset({"int32", "int64"}),
    },
    string_enums_only=True,  # Schema.enum is list[str]; non-string enums 400 (provider-rules.md §Gemini)
    # FunctionDeclaration.parameters docstring: "Parameter names must start with a letter or an underscore
    # and must only contain chars a-z, A-Z, 0-9, or underscores with a maximum length of 64".
    parameter_name_pattern=r"[A-Za-z_][A-Za-z0-9_]{0,63}",
    parameter_name_reason="google-genai FunctionDeclaration.parameters: parameter names [A-Za-z_][A-Za-z0-9_]{0,63}",
    # "parameters.required[0]: property is not defined" (400; cline#11162, iBUHub/AIStudioToAPI#154).
    undefined_required="drop",
    merge_all_of=True,  # no allOf in `parameters`
)

# Recursive $ref: unrolled this many times, then cut with a loss entry (strict OpenAI: not qualifying).
RECURSION_UNROLL = 2
