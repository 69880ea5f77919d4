"""A fake Gemini API (Developer API and Vertex AI URL shapes) that google-genai talks to over HTTP.

Routes (every API version prefix the SDK may use: ``v1``, ``v1beta`` and Vertex's ``v1beta1``/``v1``):

* ``POST /{ver}/models/{m}:generateContent`` and ``…:streamGenerateContent?alt=sse`` (Developer API)
* ``POST /{ver}/publishers/google/models/{m}:…`` (Vertex express mode) and
  ``/{ver}/projects/{p}/locations/{l}/publishers/google/models/{m}:…`` (Vertex project mode)
* ``GET /{ver}/models`` (``{"models": [...]}``) and ``GET /{ver}/publishers/google/models``
  (``{"publisherModels": [...]}``)

Requests are validated the way the real API does (see ``_Validator``) and rejected with 400
``INVALID_ARGUMENT`` in Google's error envelope. The google-genai SDK sends most nested objects in
camelCase but some (function declarations, function responses) as snake_case model dumps; the real API
accepts both spellings, so the validator reads both.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import (
    FakeProviderServer,
    FakeToolCall,
    FakeTurn,
    FakeUsage,
    Fault,
    RecordedRequest,
    Rendered,
    split_text,
    sse,
)

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
CODES_BY_STATUS = {"RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "INTERNAL": 500, "INVALID_ARGUMENT": 400}

SKIP_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")

# google-genai FunctionDeclaration.name docstring: letter/underscore start; a-z A-Z 0-9 _ . : -; max 128.
FUNCTION_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}")
# Keywords the Developer API's `parameters` (OpenAPI 3.0 subset) answers with "Unknown name ...".
OPENAPI_REJECTED = {
    "$schema",
    "$defs",
    "defs",
    "$ref",
    "ref",
    "$id",
    "additionalProperties",
    "additional_properties",
    "default",
    "title",
    "examples",
    "const",
    "exclusiveMinimum",
    "exclusive_minimum",
    "exclusiveMaximum",
    "exclusive_maximum",
    "oneOf",
    "one_of",
    "allOf",
    "all_of",
    "uniqueItems",
    "propertyNames",
    "patternProperties",
}
OPENAPI_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
PART_DATA_FIELDS = (
    ("text", "text"),
    ("inlineData", "inline_data"),
    ("fileData", "file_data"),
    ("functionCall", "function_call"),
    ("functionResponse", "function_response"),
    ("executableCode", "executable_code"),
    ("codeExecutionResult", "code_execution_result"),
)

_GENERATE = re.compile(
    r"/(?P<ver>v1|v1beta|v1beta1|v1alpha)/"
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?P<publisher>publishers/google/)?models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)"
)
_ALLOWED = "tool_config.function_calling_config.allowed_function_names"
_LIST = re.compile(r"/(?P<ver>v1|v1beta|v1beta1|v1alpha)/(?P<publisher>publishers/google/)?models")


@dataclass
class GeminiFault(Fault):
    """A Fault with Google error ``details`` (e.g. RetryInfo) and an optional ``retry_delay`` shortcut."""

    details: list[dict[str, Any]] = field(default_factory=list)
    retry_delay: str | None = None  # e.g. "1.5s" -> a google.rpc.RetryInfo detail


def _get(obj: Any, camel: str, snake: str | None = None) -> Any:
    """A field by its camelCase or snake_case name (the real API accepts both)."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(snake) if snake else None


def _signature_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    cleaned = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


class InvalidRequest(Exception):
    """A request the real API would reject with 400 INVALID_ARGUMENT."""


class FakeGeminiServer(FakeProviderServer):
    provider = "gemini"
    DEFAULT_MODELS = ("fake-model-1", "fake-model-2", "gemini-2.5-flash", "gemini-3-pro-preview")

    def __init__(self) -> None:
        super().__init__()
        self.models = list(self.DEFAULT_MODELS)
        self.valid_keys: set[str] | None = None  # None: accept any key
        self.issued_signatures: set[bytes] = set()
        self.usage_extra: dict[str, Any] = {}  # merged into every usageMetadata, e.g. toolUsePromptTokenCount
        self._call_counter = 0

    # ------------------------------------------------------------------ routing

    def handle(self, request: RecordedRequest) -> Rendered | None:
        auth = self._authenticate(request)
        if auth is not None:
            return auth
        if request.method == "GET":
            listing = _LIST.fullmatch(request.path)
            return self._list_models(bool(listing.group("publisher"))) if listing else None
        match = _GENERATE.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return None
        model = match.group("model")
        if model not in self.models:
            return self._error(
                404,
                f"models/{model} is not found for API version {match.group('ver')}, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported methods.",
            )
        stream = match.group("method") == "streamGenerateContent"
        if stream and request.query.get("alt") != ["sse"]:
            return self._error(400, "streamGenerateContent without alt=sse is not served by this fake")
        try:
            _Validator(model, self.issued_signatures).check(request.body)
        except InvalidRequest as exc:
            return self._error(400, str(exc))
        turn = self.next_turn(request)
        return self._render_stream(turn, model) if stream else self._render_json(turn, model)

    def _authenticate(self, request: RecordedRequest) -> Rendered | None:
        key = request.headers.get("x-goog-api-key") or next(iter(request.query.get("key") or []), None)
        bearer = request.headers.get("authorization")
        if not key and not bearer:
            return self._error(403, "Method doesn't allow unregistered callers (callers without established identity).")
        if key and self.valid_keys is not None and key not in self.valid_keys:
            return self._error(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )
        return None

    def _list_models(self, vertex: bool) -> Rendered:
        entries = []
        for name in self.models:
            entry: dict[str, Any] = {
                "name": f"publishers/google/models/{name}" if vertex else f"models/{name}",
                "displayName": name.replace("-", " ").title(),
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            entries.append(entry)
        key = "publisherModels" if vertex else "models"
        return Rendered(body=json.dumps({key: entries}).encode())

    # ------------------------------------------------------------------ decision rule

    def default_turn(self, request: RecordedRequest) -> FakeTurn:
        body = request.body if isinstance(request.body, dict) else {}
        contents = body.get("contents") or []
        last_parts = (contents[-1].get("parts") or []) if contents else []
        answered = any(_get(p, "functionResponse", "function_response") for p in last_parts)
        declarations = [
            d
            for tool in body.get("tools") or []
            for d in (_get(tool, "functionDeclarations", "function_declarations") or [])
        ]
        if declarations and not answered:
            first = declarations[0]
            schema = _get(first, "parametersJsonSchema", "parameters_json_schema") or first.get("parameters") or {}
            return FakeTurn(tool_calls=[FakeToolCall(name=first["name"], arguments=_sample_arguments(schema))])
        return FakeTurn(text="The answer is 42.")

    # ------------------------------------------------------------------ rendering

    def _parts(self, turn: FakeTurn, model: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(thinking+text parts, function-call parts) for a turn."""
        gemini3 = model.startswith("gemini-3")
        head: list[dict[str, Any]] = []
        if turn.thinking is not None:
            thought: dict[str, Any] = {"text": turn.thinking, "thought": True}
            if turn.thinking_signature:
                thought["thoughtSignature"] = self._issue(turn.thinking_signature)
            head.append(thought)
        if turn.text:
            head.append({"text": turn.text})
        calls: list[dict[str, Any]] = []
        for position, call in enumerate(turn.tool_calls):
            body: dict[str, Any] = {"name": call.name, "args": call.arguments}
            call_id = call.id or (self._next_call_id() if gemini3 else None)
            if call_id:
                body["id"] = call_id
            part: dict[str, Any] = {"functionCall": body}
            signature = call.signature
            if signature is None and gemini3 and position == 0:
                # Gemini 3 signs the first function call of a step only (parallel calls carry none).
                signature = base64.b64encode(os.urandom(24)).decode()
            if signature:
                part["thoughtSignature"] = self._issue(signature)
            calls.append(part)
        return head, calls

    def _issue(self, signature: str) -> str:
        raw = _signature_bytes(signature)
        if raw is not None:
            with self.lock:
                self.issued_signatures.add(raw)
        return signature

    def _next_call_id(self) -> str:
        with self.lock:
            self._call_counter += 1
            return f"fc{self._call_counter:04d}x"

    def _usage(self, usage: FakeUsage | None, fraction: float = 1.0) -> dict[str, Any] | None:
        if usage is None:
            return None
        candidates = max(0, usage.output_tokens - usage.reasoning_tokens)
        meta: dict[str, Any] = {
            "promptTokenCount": usage.input_tokens,
            "candidatesTokenCount": int(candidates * fraction),
        }
        if usage.reasoning_tokens:
            meta["thoughtsTokenCount"] = usage.reasoning_tokens
        if usage.cache_read_tokens:
            meta["cachedContentTokenCount"] = usage.cache_read_tokens
        meta["totalTokenCount"] = usage.input_tokens + int(candidates * fraction) + usage.reasoning_tokens
        meta.update(self.usage_extra)
        return meta

    def _envelope(
        self, parts: list[dict[str, Any]], model: str, turn: FakeTurn, finish: str | None, usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if usage is not None:
            chunk["usageMetadata"] = usage
        chunk["modelVersion"] = turn.model or model
        chunk["responseId"] = "resp-fake-1"
        return chunk

    def _render_json(self, turn: FakeTurn, model: str) -> Rendered:
        head, calls = self._parts(turn, model)
        body = self._envelope(head + calls, model, turn, turn.stop or "STOP", self._usage(turn.usage))
        return Rendered(body=json.dumps(body).encode())

    def _render_stream(self, turn: FakeTurn, model: str) -> Rendered:
        head, calls = self._parts(turn, model)
        pieces: list[list[dict[str, Any]]] = []
        for part in head:
            if "thought" in part:
                pieces.append([part])
            else:
                pieces.extend([{"text": piece}] for piece in split_text(part["text"], 3))
        if calls:
            pieces.append(calls)  # parallel calls arrive whole, together, in one chunk
        if not pieces:
            pieces.append([{"text": ""}])
        chunks: list[bytes] = []
        for index, parts in enumerate(pieces):
            last = index == len(pieces) - 1
            usage = self._usage(turn.usage, 1.0 if last else (index + 1) / len(pieces))
            finish = (turn.stop or "STOP") if last else None
            chunks.append(sse(self._envelope(parts, model, turn, finish, usage)))
        return Rendered(chunks=chunks, content_type="text/event-stream")

    # ------------------------------------------------------------------ errors

    def _error(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> Rendered:
        error: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return Rendered(status=status, body=json.dumps({"error": error}, indent=2).encode())

    def render_error(self, fault: Fault) -> Rendered:
        status = fault.status or 500
        details = list(getattr(fault, "details", []) or [])
        delay = getattr(fault, "retry_delay", None)
        if delay:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
        rendered = self._error(status, fault.message, details)
        if fault.error_type:
            body = json.loads(rendered.body or b"{}")
            body["error"]["status"] = fault.error_type
            rendered.body = json.dumps(body).encode()
        return rendered

    def render_stream_error(self, fault: Fault) -> bytes:
        status = fault.error_type or "INTERNAL"
        code = CODES_BY_STATUS.get(status, 500)
        return sse({"error": {"code": code, "message": fault.message, "status": status}})

    def corrupt_chunk(self) -> bytes:
        return b'data: {"candidates": [{"content": \n\n'

    def not_found(self, request: RecordedRequest) -> Rendered:
        return self._error(404, f"Requested entity was not found: {request.method} {request.path}")


def _sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a tool call built from the schema's required properties."""
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name in schema.get("required") or []:
        spec = properties.get(name) or {}
        kind = str(spec.get("type", "string")).lower()
        if spec.get("enum"):
            arguments[name] = spec["enum"][0]
        else:
            arguments[name] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(
                kind, "Paris"
            )
    return arguments


class _Validator:
    """The request checks the real Gemini API makes (those we know of), as 400 INVALID_ARGUMENT."""

    def __init__(self, model: str, issued: set[bytes]) -> None:
        self.model = model
        self.issued = issued
        self.declared: set[str] = set()

    def check(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise InvalidRequest("Invalid JSON payload received.")
        self._tools(body.get("tools") or [])
        self._tool_config(_get(body, "toolConfig", "tool_config"))
        self._generation_config(_get(body, "generationConfig", "generation_config") or {})
        contents = body.get("contents")
        if not contents:
            raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
        for index, content in enumerate(contents):
            self._content(index, content)
        self._pairing(contents)

    # --- tools
    def _tools(self, tools: list[Any]) -> None:
        for t, tool in enumerate(tools):
            for d, decl in enumerate(_get(tool, "functionDeclarations", "function_declarations") or []):
                where = f"tools[{t}].function_declarations[{d}]"
                name = decl.get("name")
                if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
                    raise InvalidRequest(
                        f"* GenerateContentRequest.{where}.name: Invalid function name. Must start with a letter or "
                        "an underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, "
                        "with a maximum length of 128."
                    )
                if name in self.declared:
                    raise InvalidRequest(f"* GenerateContentRequest.{where}.name: Duplicate function name {name}")
                self.declared.add(name)
                parameters = decl.get("parameters")
                json_schema = _get(decl, "parametersJsonSchema", "parameters_json_schema")
                if parameters is not None and json_schema is not None:
                    raise InvalidRequest(f"{where}: parameters and parameters_json_schema are mutually exclusive")
                if parameters is not None:
                    if str(parameters.get("type", "")).upper() != "OBJECT":
                        raise InvalidRequest(
                            f"* GenerateContentRequest.{where}.parameters.type: must be OBJECT for function parameters"
                        )
                    self._openapi(parameters, f"{where}.parameters")
                if json_schema is not None:
                    self._json_schema(json_schema, f"{where}.parameters_json_schema")

    def _openapi(self, schema: Any, where: str) -> None:
        if not isinstance(schema, dict):
            raise InvalidRequest(f"Invalid value at '{where}': expected a Schema object")
        for key in schema:
            if key in OPENAPI_REJECTED:
                raise InvalidRequest(
                    f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
                )
        kind = schema.get("type")
        if isinstance(kind, list):
            raise InvalidRequest(
                f"Invalid JSON payload received. Unknown name \"type\" at '{where}': "
                "Proto field is not repeating, cannot start list."
            )
        if kind is not None and str(kind).upper() not in OPENAPI_TYPES:
            raise InvalidRequest(
                f"Invalid value at '{where}.type' "
                f'(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "{kind}"'
            )
        any_of = _get(schema, "anyOf", "any_of")
        if any_of is not None:
            siblings = set(schema) - {"anyOf", "any_of", "description", "nullable"}
            if siblings:
                raise InvalidRequest(
                    f"* GenerateContentRequest.{where}.any_of: must be the only field set besides description, "
                    f"found {sorted(siblings)}"
                )
            for i, sub in enumerate(any_of):
                self._openapi(sub, f"{where}.any_of[{i}]")
        if kind is None and any_of is None:
            # LibreChat#6971: "...parameters.properties[mode].type: must be specified when not using one_of,
            # any_of or all_of fields"
            raise InvalidRequest(
                f"* GenerateContentRequest.{where}.type: must be specified when not using one_of, any_of or all_of "
                "fields"
            )
        if str(kind or "").upper() != "STRING" and schema.get("enum") is not None:
            raise InvalidRequest(f"* GenerateContentRequest.{where}.enum: only allowed for STRING type")
        for name, sub in (schema.get("properties") or {}).items():
            self._openapi(sub, f"{where}.properties[{name}].value")
        if schema.get("items") is not None:
            self._openapi(schema["items"], f"{where}.items")
        required = schema.get("required")
        if required and not schema.get("properties"):
            raise InvalidRequest(
                f"* GenerateContentRequest.{where}.required: properties must be set when required is set"
            )

    @staticmethod
    def _json_schema(schema: Any, where: str) -> None:
        if not isinstance(schema, dict):
            raise InvalidRequest(f"{where}: the schema must be a JSON object")
        if "$schema" in schema:
            raise InvalidRequest(
                f"Invalid JSON payload received. Unknown name \"$schema\" at '{where}': Cannot find field."
            )
        if schema.get("type") not in ("object", None):
            raise InvalidRequest(f"{where}: the schema must describe an object")

    def _tool_config(self, config: Any) -> None:
        calling = _get(config, "functionCallingConfig", "function_calling_config") if config else None
        if not calling:
            return
        mode = calling.get("mode")
        if mode not in (None, "AUTO", "ANY", "NONE", "VALIDATED"):
            raise InvalidRequest(f"Invalid value at 'tool_config.function_calling_config.mode', \"{mode}\"")
        allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") or []
        if allowed and mode not in ("ANY", "VALIDATED"):
            raise InvalidRequest(f"* GenerateContentRequest.{_ALLOWED}: only allowed with mode ANY")
        for name in allowed:
            if name not in self.declared:
                raise InvalidRequest(f"* GenerateContentRequest.{_ALLOWED}: {name} is not a declared function")

    @staticmethod
    def _generation_config(config: dict[str, Any]) -> None:
        temperature = config.get("temperature")
        if temperature is not None and not 0 <= temperature <= 2:
            raise InvalidRequest("* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]")
        top_p = _get(config, "topP", "top_p")
        if top_p is not None and not 0 <= top_p <= 1:
            raise InvalidRequest("* GenerateContentRequest.generation_config.top_p: must be in [0.0, 1.0]")
        max_tokens = _get(config, "maxOutputTokens", "max_output_tokens")
        if max_tokens is not None and max_tokens <= 0:
            raise InvalidRequest("* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
        stops = _get(config, "stopSequences", "stop_sequences") or []
        if len(stops) > 5:
            raise InvalidRequest("* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences")

    # --- contents
    def _content(self, index: int, content: Any) -> None:
        role = content.get("role") if isinstance(content, dict) else None
        if role not in (None, "user", "model"):
            raise InvalidRequest(
                f"* GenerateContentRequest.contents[{index}].role: Please use a valid role: user, model."
            )
        parts = content.get("parts")
        if not parts:
            raise InvalidRequest(f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.")
        for p, part in enumerate(parts):
            where = f"contents[{index}].parts[{p}]"
            present = [camel for camel, snake in PART_DATA_FIELDS if _get(part, camel, snake) is not None]
            if len(present) != 1:
                raise InvalidRequest(
                    f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
                    "initialized field"
                )
            call = _get(part, "functionCall", "function_call")
            response = _get(part, "functionResponse", "function_response")
            if call is not None and role != "model":
                raise InvalidRequest(f"* GenerateContentRequest.{where}: function_call is only allowed in model turns")
            if response is not None:
                if role == "model":
                    raise InvalidRequest(f"* GenerateContentRequest.{where}: function_response must be in a user turn")
                if not isinstance(response.get("name"), str) or not response.get("name"):
                    raise InvalidRequest(
                        f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty."
                    )
                if not isinstance(response.get("response"), dict):
                    raise InvalidRequest(
                        f"Invalid value at '{where}.function_response.response' "
                        "(type.googleapis.com/google.protobuf.Struct), "
                        f"{json.dumps(response.get('response'))}"
                    )
            signature = _get(part, "thoughtSignature", "thought_signature")
            if signature is not None and _signature_bytes(signature) is None:
                raise InvalidRequest(
                    f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 decoding failed"
                )
            if call is not None and self.model.startswith("gemini-3"):
                self._signed(call, signature, where)

    def _signed(self, call: dict[str, Any], signature: Any, where: str) -> None:
        raw = _signature_bytes(signature)
        if raw is None:
            raise InvalidRequest(
                f"Function call is missing a thought_signature in functionCall parts. This is required for tools to "
                f"work correctly, and missing thought_signature may lead to degraded model performance. Additional "
                f"data, function call `default_api:{call.get('name')}` , position {where}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        if raw != SKIP_SIGNATURE and raw not in self.issued:
            raise InvalidRequest(f"Corrupted thought signature at {where}.")

    @staticmethod
    def _pairing(contents: list[Any]) -> None:
        """Every model turn with function calls is answered by the next turn, one response per call."""
        for index, content in enumerate(contents):
            calls = [c for p in content.get("parts") or [] if (c := _get(p, "functionCall", "function_call"))]
            if not calls or index == len(contents) - 1:
                continue
            following = contents[index + 1].get("parts") or []
            responses = [r for p in following if (r := _get(p, "functionResponse", "function_response"))]
            if len(responses) != len(calls):
                raise InvalidRequest(
                    "Please ensure that the number of function response parts is equal to the number of function "
                    "call parts of the function call turn."
                )
            if sorted(c.get("name") for c in calls) != sorted(r.get("name") for r in responses):
                raise InvalidRequest("Please ensure that function response names match the function call names.")
            call_ids = {c["id"] for c in calls if c.get("id")}
            response_ids = {r["id"] for r in responses if r.get("id")}
            if call_ids and response_ids and call_ids != response_ids:
                raise InvalidRequest("Please ensure that function response ids match the function call ids.")
