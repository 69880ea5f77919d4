"""A fake OpenAI Chat Completions server (also the wire of every OpenAI-compatible preset and Azure).

Speaks the wire of the shared folder's reference/provider-wire-formats.md §1: ``POST /v1/chat/completions``
(JSON or SSE with ``data:`` lines only, usage in an extra ``choices: []`` chunk when
``stream_options.include_usage`` is set, ``data: [DONE]`` terminator) and ``GET /v1/models``. Azure paths
(``/openai/deployments/{deployment}/chat/completions`` and ``/openai/models``) are served too, the
deployment name standing in for the model.

Requests are validated the way the real API does (tool names, schema shape, strict-mode rules, tool-call
ids, every call answered by a ``tool`` message, no orphan results) and rejected with a 400 in OpenAI's
error envelope, so tests of other modules can prove a request is valid for OpenAI.

Stream quirks of compatible servers can be switched on with :attr:`FakeOpenAIServer.tool_call_style`:

* ``"openai"``: the real API (id/name on the first fragment, arguments in pieces, one index per call);
* ``"all_index_0"``: every call whole, each at index 0 with its own id (Ollama's /v1, some vLLM builds);
* ``"anonymous_index_0"``: like ``all_index_0`` but without ids (the client has to make them up);
* ``"whole"``: all calls whole in one chunk, with distinct indexes;
* ``"no_index"``: fragments without ``index`` (id/name on the first fragment of each call).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Literal

from tests.fakes.base import (
    FakeProviderServer,
    FakeToolCall,
    FakeTurn,
    Fault,
    RecordedRequest,
    Rendered,
    now,
    split_text,
    sse,
)

ToolCallStyle = Literal["openai", "all_index_0", "anonymous_index_0", "whole", "no_index"]

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_CHAT_PATH = re.compile(r"^(?:/v1|/openai/deployments/(?P<deployment>[^/]+))/chat/completions$")
_MODELS_PATHS = {"/v1/models", "/openai/models"}

# The error "type" OpenAI puts in its envelope for each status (401 really is invalid_request_error).
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("service_unavailable", None),
    529: ("overloaded_error", None),
}


class InvalidRequest(Exception):
    """A request the real API would reject with 400."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


class FakeOpenAIServer(FakeProviderServer):
    provider = "openai"

    def __init__(self) -> None:
        super().__init__()
        self._counter = 0
        self._counter_lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget scripts, faults, recorded requests and switches (lets a test module share one server)."""
        with self.lock:
            self.turns.clear()
            self.faults.clear()
            self.requests.clear()
        self.models = ["fake-model-1", "fake-model-2"]
        self.tool_call_style: ToolCallStyle = "openai"
        self.usage_details = True  # send prompt_tokens_details / completion_tokens_details
        self.thinking_field = "reasoning_content"  # DeepSeek style; OpenRouter uses "reasoning"
        self.valid_keys: set[str] | None = None  # when set, other bearer keys get a 401 like OpenAI's
        self.stall_seconds = FakeProviderServer.stall_seconds

    # ------------------------------------------------------------------ routing

    def handle(self, request: RecordedRequest) -> Rendered | None:
        denied = self._check_key(request)
        if denied is not None:
            return denied
        if request.method == "GET" and request.path in _MODELS_PATHS:
            return self._models()
        match = _CHAT_PATH.match(request.path)
        if request.method == "POST" and match is not None:
            return self._chat(request, match.group("deployment"))
        return None

    def not_found(self, request: RecordedRequest) -> Rendered:
        return self._error(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None)

    def _check_key(self, request: RecordedRequest) -> Rendered | None:
        if self.valid_keys is None:
            return None
        key = request.headers.get("api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if key in self.valid_keys:
            return None
        # OpenAI echoes a masked form of the key it got; the adapter must scrub it.
        shown = key[:3] + "*" * 10 + key[-4:] if len(key) > 8 else key
        message = f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
        return self._error(401, message, "invalid_request_error", "invalid_api_key")

    def _next_id(self) -> int:
        with self._counter_lock:
            self._counter += 1
            return self._counter

    def _models(self) -> Rendered:
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in self.models]
        return self._json({"object": "list", "data": data})

    def _chat(self, request: RecordedRequest, deployment: str | None) -> Rendered:
        body = request.body
        try:
            if not isinstance(body, dict):
                raise InvalidRequest("We could not parse the JSON body of your request.")
            validate_chat_request(body)
        except InvalidRequest as exc:
            return self._error(400, exc.message, "invalid_request_error", exc.code, exc.param)
        model = deployment or body["model"]
        if model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return self._error(404, message, "invalid_request_error", "model_not_found")
        turn = self.next_turn(request)
        number = self._next_id()
        headers = {"x-request-id": f"req_fake{number:04d}"}
        response_id = f"chatcmpl-fake{number:04d}"
        model = turn.model or model
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self.render_stream(turn, response_id, model, include_usage)
            return Rendered(chunks=chunks, headers=headers, content_type="text/event-stream; charset=utf-8")
        return self._json(self.render_completion(turn, response_id, model), headers)

    # ------------------------------------------------------------------ decision rule

    def default_turn(self, request: RecordedRequest) -> FakeTurn:
        body = request.body if isinstance(request.body, dict) else {}
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        answered = bool(messages) and messages[-1].get("role") == "tool"
        if tools and not answered and body.get("tool_choice") != "none":
            function = tools[0]["function"]
            return FakeTurn(tool_calls=[FakeToolCall(function["name"], arguments_for(function.get("parameters")))])
        return FakeTurn(text="The answer is 42.")

    # ------------------------------------------------------------------ rendering

    @staticmethod
    def _call_id(call: FakeToolCall, position: int, response_id: str) -> str:
        return call.id or f"call_{response_id[-4:]}{position:02d}abc"

    def _finish_reason(self, turn: FakeTurn) -> str:
        return turn.stop or ("tool_calls" if turn.tool_calls else "stop")

    def render_usage(self, turn: FakeTurn) -> dict[str, Any] | None:
        if turn.usage is None:
            return None
        u = turn.usage
        usage: dict[str, Any] = {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
        }
        if self.usage_details:
            usage["prompt_tokens_details"] = {"cached_tokens": u.cache_read_tokens, "audio_tokens": 0}
            usage["completion_tokens_details"] = {
                "reasoning_tokens": u.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return usage

    def render_completion(self, turn: FakeTurn, response_id: str, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None, "refusal": None}
        if turn.thinking is not None:
            message[self.thinking_field] = turn.thinking
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._call_id(call, i, response_id),
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for i, call in enumerate(turn.tool_calls)
            ]
        body: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion",
            "created": now(),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish_reason(turn)}],
            "system_fingerprint": "fp_fake",
        }
        usage = self.render_usage(turn)
        if usage is not None:
            body["usage"] = usage
        return body

    def render_stream(self, turn: FakeTurn, response_id: str, model: str, include_usage: bool) -> list[bytes]:
        created = now()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": response_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return sse(payload)

        chunks = [chunk({"role": "assistant", "content": None if turn.tool_calls and not turn.text else ""})]
        if turn.thinking:
            chunks += [chunk({self.thinking_field: piece}) for piece in split_text(turn.thinking)]
        if turn.text:
            chunks += [chunk({"content": piece}) for piece in split_text(turn.text)]
        chunks += [chunk({"tool_calls": fragment}) for fragment in self._tool_fragments(turn, response_id)]
        chunks.append(chunk({}, self._finish_reason(turn)))
        usage = self.render_usage(turn)
        if include_usage and usage is not None:
            chunks.append(
                sse(
                    {
                        "id": response_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        chunks.append(b"data: [DONE]\n\n")
        return chunks

    def _tool_fragments(self, turn: FakeTurn, response_id: str) -> list[list[dict[str, Any]]]:
        """The ``delta.tool_calls`` lists, one per chunk, in the configured style."""
        calls = [
            (i, self._call_id(call, i, response_id), call.name, json.dumps(call.arguments))
            for i, call in enumerate(turn.tool_calls)
        ]
        style = self.tool_call_style
        if style == "whole":
            return [[_whole(i, cid, name, args) for i, cid, name, args in calls]] if calls else []
        if style == "all_index_0":
            return [[_whole(0, cid, name, args)] for _, cid, name, args in calls]
        if style == "anonymous_index_0":
            return [
                [{"index": 0, "type": "function", "function": {"name": name, "arguments": args}}]
                for *_, name, args in calls
            ]
        out: list[list[dict[str, Any]]] = []
        for i, cid, name, args in calls:
            first = {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
            pieces = [{"index": i, "function": {"arguments": piece}} for piece in split_text(args, 3)]
            fragments = [first, *pieces]
            if style == "no_index":
                for fragment in fragments:
                    fragment.pop("index")
            out += [[fragment] for fragment in fragments]
        return out

    # ------------------------------------------------------------------ errors

    def _json(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Rendered:
        return Rendered(body=json.dumps(payload).encode(), headers=dict(headers or {}))

    def _error(
        self, status: int, message: str, error_type: str, code: str | None, param: str | None = None
    ) -> Rendered:
        envelope = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
        return Rendered(status=status, body=json.dumps(envelope).encode(), headers={"x-request-id": "req_error0001"})

    def render_error(self, fault: Fault) -> Rendered:
        status = fault.status or 500
        error_type, code = _ERROR_TYPES.get(status, ("server_error", None))
        return self._error(status, fault.message, fault.error_type or error_type, code)

    def render_stream_error(self, fault: Fault) -> bytes:
        error = {"message": fault.message, "type": fault.error_type or "server_error", "param": None, "code": None}
        return sse({"error": error})

    def corrupt_chunk(self) -> bytes:
        return b'data: {"id":"chatcmpl-broken","choices":[{"delta":{"content":"x"\n\n'


def _whole(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def arguments_for(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Arguments satisfying ``schema``'s required properties (with values that contain JSON-ish text)."""
    if not schema:
        return {}
    properties = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        out[name] = _value_for(properties.get(name) or {})
    return out


def _value_for(schema: dict[str, Any]) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None and schema.get("anyOf"):
        return _value_for(schema["anyOf"][0])
    if kind == "integer":
        return 3
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_value_for(schema.get("items") or {})]
    if kind == "object":
        return arguments_for(schema)
    return 'Paris, "FR" {x}'  # quotes and braces so fragment splits land inside JSON strings


# --------------------------------------------------------------------------- validation


def validate_chat_request(body: dict[str, Any]) -> None:
    """Raise :class:`InvalidRequest` for what the real Chat Completions API rejects."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("you must provide a model parameter", "model", "missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    tools = body.get("tools")
    if tools is not None:
        _validate_tools(tools)
    _validate_tool_choice(body.get("tool_choice"), tools)
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise InvalidRequest("Use either max_tokens or max_completion_tokens, not both.", "max_tokens")
    if "stream_options" in body and not body.get("stream"):
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    _validate_messages(messages)


def _validate_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise InvalidRequest("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise InvalidRequest(
                f"Missing required parameter: '{where}.function'.", where, "missing_required_parameter"
            )
        function = tool["function"]
        name = function.get("name")
        if not isinstance(name, str) or len(name) > 64 or _NAME.fullmatch(name) is None:
            raise InvalidRequest(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a string that matches "
                "the pattern '^[a-zA-Z0-9_-]+$'."
                if isinstance(name, str) and len(name) <= 64
                else f"Invalid '{where}.function.name': string too long. Expected a string with maximum length 64.",
                f"{where}.function.name",
                "invalid_value",
            )
        if name in seen:
            raise InvalidRequest(f"Duplicate function name: '{name}'.", f"{where}.function.name", "invalid_value")
        seen.add(name)
        params = function.get("parameters")
        if params is None:
            continue
        if not isinstance(params, dict) or params.get("type") != "object":
            raise InvalidRequest(
                f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"', "
                f"got 'type: \"{params.get('type') if isinstance(params, dict) else params}\"'.",
                f"{where}.function.parameters",
                "invalid_function_parameters",
            )
        if "properties" not in params:
            raise InvalidRequest(
                f"Invalid schema for function '{name}': In context=(), object schema missing properties.",
                f"{where}.function.parameters",
                "invalid_function_parameters",
            )
        if function.get("strict"):
            _validate_strict(name, params, ())


def _validate_strict(name: str, schema: Any, path: tuple[str, ...]) -> None:
    """OpenAI strict mode: every object closes additionalProperties and requires all its properties."""
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema
    context = f"context=({', '.join(repr(p) for p in path)})"
    if is_object:
        if schema.get("additionalProperties") is not False:
            raise InvalidRequest(
                f"Invalid schema for function '{name}': In {context}, 'additionalProperties' is required to be "
                "supplied and to be false.",
                None,
                "invalid_function_parameters",
            )
        properties = schema.get("properties") or {}
        missing = [key for key in properties if key not in (schema.get("required") or [])]
        if missing:
            raise InvalidRequest(
                f"Invalid schema for function '{name}': In {context}, 'required' is required to be supplied and "
                f"to be an array including every key in properties. Missing '{missing[0]}'.",
                None,
                "invalid_function_parameters",
            )
        for key, sub in properties.items():
            _validate_strict(name, sub, (*path, "properties", key))
    if isinstance(schema.get("items"), dict):
        _validate_strict(name, schema["items"], (*path, "items"))
    for keyword in ("anyOf", "allOf"):
        for j, sub in enumerate(schema.get(keyword) or []):
            _validate_strict(name, sub, (*path, keyword, str(j)))
    for keyword in ("$defs", "definitions"):
        for key, sub in (schema.get(keyword) or {}).items():
            _validate_strict(name, sub, (*path, keyword, key))


def _validate_tool_choice(choice: Any, tools: Any) -> None:
    if choice is None:
        return
    if not tools:
        raise InvalidRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
        )
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest(f"Invalid value for 'tool_choice': '{choice}'.", "tool_choice", "invalid_value")
        return
    name = ((choice or {}).get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not name:
        raise InvalidRequest("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
    if name not in {t["function"]["name"] for t in tools}:
        raise InvalidRequest(
            f"Invalid value for 'tool_choice': tool choice '{name}' not found in 'tools' parameter.", "tool_choice"
        )


def _validate_messages(messages: list[Any]) -> None:
    pending: list[str] = []  # ids of the last assistant tool_calls still waiting for a tool message
    known: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidRequest(f"Invalid value for '{where}.role'.", f"{where}.role", "invalid_value")
        role = message["role"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.tool_call_id'.",
                    f"{where}.tool_call_id",
                    "missing_required_parameter",
                )
            _check_id_length(call_id, f"{where}.tool_call_id")
            if call_id not in known:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    f"{where}.role",
                )
            if call_id in pending:
                pending.remove(call_id)
            if not isinstance(message.get("content"), (str, list)):
                raise InvalidRequest(f"Invalid type for '{where}.content': expected a string.", f"{where}.content")
            continue
        if pending:
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
                f"messages.[{i}].role",
            )
        known = set()
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if message.get("content") is None and not calls:
                raise InvalidRequest(
                    f"Invalid value for '{where}.content': expected content or tool_calls.", f"{where}.content"
                )
            for j, call in enumerate(calls):
                cid = call.get("id") if isinstance(call, dict) else None
                if not isinstance(cid, str) or not cid:
                    raise InvalidRequest(f"Missing required parameter: '{where}.tool_calls[{j}].id'.")
                _check_id_length(cid, f"{where}.tool_calls[{j}].id")
                function = call.get("function") or {}
                if call.get("type") != "function" or not isinstance(function.get("arguments"), str):
                    raise InvalidRequest(
                        f"Invalid type for '{where}.tool_calls[{j}].function.arguments': expected a string."
                    )
                if not isinstance(function.get("name"), str) or not function["name"]:
                    raise InvalidRequest(f"Missing required parameter: '{where}.tool_calls[{j}].function.name'.")
                pending.append(cid)
                known.add(cid)
        else:
            _validate_content(message.get("content"), where, allow_images=role == "user")
    if pending:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
            "messages",
        )


def _check_id_length(call_id: str, param: str) -> None:
    if len(call_id) > 40:
        raise InvalidRequest(
            f"Invalid '{param}': string too long. Expected a string with maximum length 40, but got a string with "
            f"length {len(call_id)} instead.",
            param,
            "string_above_max_length",
        )


def _validate_content(content: Any, where: str, *, allow_images: bool) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise InvalidRequest(f"Invalid type for '{where}.content': expected a string or array.", f"{where}.content")
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and allow_images:
            url = (part.get("image_url") or {}).get("url")
            if isinstance(url, str) and (url.startswith(("http://", "https://")) or _is_image_data_url(url)):
                continue
            raise InvalidRequest(
                f"Invalid '{where}.content[{j}].image_url.url': expected a URL or a base64 data URL of an image.",
                f"{where}.content[{j}].image_url.url",
                "invalid_image_url",
            )
        if kind == "input_audio" and allow_images:
            audio = part.get("input_audio") or {}
            if isinstance(audio.get("data"), str) and audio.get("format") in ("wav", "mp3"):
                continue
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', 'audio', "
            "and 'file'.",
            f"{where}.content[{j}].type",
            "invalid_value",
        )


def _is_image_data_url(url: str) -> bool:
    return re.fullmatch(r"data:image/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=]+", url) is not None
