"""A fake Ollama server speaking /api/chat (JSON and NDJSON), /api/tags, /api/version and /api/show.

Shapes follow the shared folder's reference/provider-wire-formats.md §5: tool calls arrive whole with
arguments as a JSON object and no ids; usage (``prompt_eval_count``/``eval_count``) appears only on the
``done: true`` object; streams are NDJSON with no blank lines; errors are ``{"error": "..."}`` with the
HTTP status, or an ``{"error": ...}`` line inside a 200 stream.

Requests are validated the way the server (and Go's JSON decoding) would refuse them, plus the
conversation rules routekit must respect: tool messages follow an assistant message with tool calls and
do not outnumber them, tools are ``type: function``, images are base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import (
    FakeProviderServer,
    FakeToolCall,
    FakeTurn,
    Fault,
    RecordedRequest,
    Rendered,
    ndjson,
    split_text,
)

_ROLES = {"system", "user", "assistant", "tool"}
_THINK_LEVELS = {"low", "medium", "high"}
_EXAMPLE_VALUES: dict[str, Any] = {
    "string": "x",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}


class InvalidRequest(Exception):
    """A request the real server would refuse with 400."""


class FakeOllamaServer(FakeProviderServer):
    provider = "ollama"
    stream_content_type = "application/x-ndjson"

    def __init__(self) -> None:
        super().__init__()
        self.version = "0.12.3"
        self.api_key: str | None = None  # when set, every request needs `Authorization: Bearer <key>` (hosted)
        self.split_tool_calls = False  # one NDJSON line per tool call instead of all calls in one line
        self.omit_prompt_eval_count = False  # the prompt came fully from cache: Ollama leaves the count out
        self.corrupt_with_blank_line = False  # the corrupt chunk is an empty line (the SDK's json.loads fails)

    # ------------------------------------------------------------------ routing

    def handle(self, request: RecordedRequest) -> Rendered | None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "unauthorized")
        route = (request.method, request.path)
        if route == ("GET", "/api/tags"):
            return self._json({"models": [self._model_entry(name) for name in self.models]})
        if route == ("GET", "/api/version"):
            return self._json({"version": self.version})
        if route == ("POST", "/api/show"):
            return self._show(request)
        if route == ("POST", "/api/chat"):
            return self._chat(request)
        return None

    def not_found(self, request: RecordedRequest) -> Rendered:
        # Go's ServeMux answer for an unknown route.
        return Rendered(status=404, body=b"404 page not found", content_type="text/plain")

    def _chat(self, request: RecordedRequest) -> Rendered:
        body = request.body
        try:
            validate_chat(body)
        except InvalidRequest as exc:
            return self._error(400, str(exc))
        model = body["model"]
        if not self._known(model):
            return self._error(404, f'model "{model}" not found, try pulling it first')
        turn = self.next_turn(request)
        if body.get("stream", True):  # the server streams unless told otherwise
            return Rendered(chunks=self.render_stream(turn, model), content_type=self.stream_content_type)
        return self._json(self.render_json(turn, model))

    def _show(self, request: RecordedRequest) -> Rendered:
        body = request.body if isinstance(request.body, dict) else {}
        name = body.get("model") or body.get("name") or ""
        if not self._known(name):
            return self._error(404, f"model '{name}' not found")
        return self._json(
            {
                "modelfile": f"FROM {name}",
                "parameters": "stop <|eot_id|>",
                "template": "{{ .Prompt }}",
                "details": self._details(),
                "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
                "capabilities": ["completion", "tools"],
                "modified_at": "2026-10-01T12:00:00.000000Z",
            }
        )

    def _known(self, model: str) -> bool:
        return model in self.models or model.removesuffix(":latest") in self.models

    # ------------------------------------------------------------------ decision rule

    def default_turn(self, request: RecordedRequest) -> FakeTurn:
        body = request.json
        tools = body.get("tools") or []
        messages = body.get("messages") or []
        answered = bool(messages) and messages[-1].get("role") == "tool"
        if tools and not answered:
            function = tools[0]["function"]
            schema = function.get("parameters") or {}
            properties = schema.get("properties") or {}
            arguments = {
                name: _EXAMPLE_VALUES.get(str((properties.get(name) or {}).get("type")), "x")
                for name in schema.get("required") or []
            }
            return FakeTurn(tool_calls=[FakeToolCall(name=function["name"], arguments=arguments)])
        if answered:
            return FakeTurn(text=f"The tool said: {messages[-1].get('content', '')}")
        return FakeTurn(text="Hello from the fake Ollama.")

    # ------------------------------------------------------------------ rendering

    def render_json(self, turn: FakeTurn, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.text}
        if turn.thinking:
            message["thinking"] = turn.thinking
        if turn.tool_calls:
            message["tool_calls"] = [_wire_call(call) for call in turn.tool_calls]
        return self._final(turn, model, message)

    def render_stream(self, turn: FakeTurn, model: str) -> list[bytes]:
        chunks: list[bytes] = []
        name = turn.model or model
        if turn.thinking:
            for piece in split_text(turn.thinking):
                chunks.append(ndjson(self._chunk(name, {"role": "assistant", "content": "", "thinking": piece})))
        if turn.text:
            for piece in split_text(turn.text):
                chunks.append(ndjson(self._chunk(name, {"role": "assistant", "content": piece})))
        if turn.tool_calls:
            groups = [[call] for call in turn.tool_calls] if self.split_tool_calls else [turn.tool_calls]
            for group in groups:
                message = {"role": "assistant", "content": "", "tool_calls": [_wire_call(c) for c in group]}
                chunks.append(ndjson(self._chunk(name, message)))
        chunks.append(ndjson(self._final(turn, model, {"role": "assistant", "content": ""})))
        return chunks

    def _chunk(self, model: str, message: dict[str, Any]) -> dict[str, Any]:
        return {"model": model, "created_at": _timestamp(), "message": message, "done": False}

    def _final(self, turn: FakeTurn, model: str, message: dict[str, Any]) -> dict[str, Any]:
        final: dict[str, Any] = {
            "model": turn.model or model,
            "created_at": _timestamp(),
            "message": message,
            "done": True,
            "done_reason": turn.stop or "stop",
            "total_duration": 120_000_000,
            "load_duration": 1_000_000,
        }
        if turn.usage is not None:
            if not self.omit_prompt_eval_count:
                final["prompt_eval_count"] = turn.usage.input_tokens
                final["prompt_eval_duration"] = 30_000_000
            final["eval_count"] = turn.usage.output_tokens
            final["eval_duration"] = 80_000_000
        return final

    def render_error(self, fault: Fault) -> Rendered:
        return self._error(fault.status or 500, fault.message)

    def render_stream_error(self, fault: Fault) -> bytes:
        return ndjson({"error": fault.message})

    def corrupt_chunk(self) -> bytes:
        if self.corrupt_with_blank_line:
            return b"\n"
        return b'{"model":"fake-model-1","message":{"role":"assistant","content":"tru\n'

    # ------------------------------------------------------------------ helpers

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": "2026-10-01T12:00:00.000000Z",
            "size": 4_661_224_676,
            "digest": "a" * 64,
            "details": self._details(),
        }

    @staticmethod
    def _details() -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "8.0B",
            "quantization_level": "Q4_K_M",
        }

    @staticmethod
    def _json(data: dict[str, Any], status: int = 200) -> Rendered:
        return Rendered(status=status, body=json.dumps(data).encode())

    @staticmethod
    def _error(status: int, message: str) -> Rendered:
        return Rendered(status=status, body=json.dumps({"error": message}).encode())


def validate_chat(body: Any) -> None:
    """Raise InvalidRequest for what Ollama (or routekit's rules for it) refuses."""
    if not isinstance(body, dict):
        raise InvalidRequest("invalid request body: not a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model is required")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("json: cannot unmarshal stream into Go struct field ChatRequest.stream of type bool")
    if "options" in body and not isinstance(body["options"], dict):
        raise InvalidRequest("json: cannot unmarshal options into Go struct field ChatRequest.options")
    think = body.get("think")
    if think is not None and not isinstance(think, bool) and think not in _THINK_LEVELS:
        raise InvalidRequest(f'invalid think value: "{think}" (must be "high", "medium", "low", true, or false)')
    _validate_tools(body.get("tools"))
    messages = body.get("messages")
    if messages is None:
        return
    if not isinstance(messages, list):
        raise InvalidRequest("json: cannot unmarshal messages into Go struct field ChatRequest.messages of type array")
    _validate_messages(messages)


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise InvalidRequest("json: cannot unmarshal tools into Go struct field ChatRequest.tools of type array")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(f'tools[{i}]: type must be "function"')
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidRequest(f"tools[{i}]: function.name is required")
        parameters = function.get("parameters")
        if parameters is not None and (not isinstance(parameters, dict) or parameters.get("type") != "object"):
            raise InvalidRequest(f'tools[{i}]: function.parameters must be an object schema with type "object"')


def _validate_messages(messages: list[Any]) -> None:
    open_calls: list[str] = []  # names of the last assistant turn's calls not yet answered
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidRequest(f"messages[{i}]: role must be one of system, user, assistant, tool")
        if "content" in message and not isinstance(message["content"], str):
            raise InvalidRequest(f"messages[{i}]: json: cannot unmarshal content into Go value of type string")
        for image in message.get("images") or []:
            _validate_image(i, image)
        role = message["role"]
        if role == "assistant":
            open_calls = _validate_calls(i, message.get("tool_calls"))
        elif role == "tool":
            if not open_calls:
                raise InvalidRequest(
                    f"messages[{i}]: tool message without a preceding assistant tool call (or more results than calls)"
                )
            name = message.get("tool_name")
            if name is not None and name not in open_calls:
                raise InvalidRequest(
                    f"messages[{i}]: tool_name {name!r} answers no call of the previous assistant turn"
                )
            open_calls.remove(name if name is not None else open_calls[0])
        else:
            open_calls = []


def _validate_calls(i: int, calls: Any) -> list[str]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise InvalidRequest(f"messages[{i}]: tool_calls must be an array")
    names: list[str] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"messages[{i}]: tool call without function.name")
        if not isinstance(function.get("arguments", {}), dict):
            raise InvalidRequest(
                f"messages[{i}]: json: cannot unmarshal string into Go struct field "
                "ToolCallFunction.tool_calls.function.arguments of type map[string]interface {}"
            )
        names.append(function["name"])
    return names


def _validate_image(i: int, image: Any) -> None:
    if not isinstance(image, str):
        raise InvalidRequest(f"messages[{i}]: images must be base64 strings")
    try:
        base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"messages[{i}]: illegal base64 data in image") from None


def _wire_call(call: FakeToolCall) -> dict[str, Any]:
    # No id on the wire: Ollama's tool calls are matched by position and name.
    return {"function": {"name": call.name, "arguments": call.arguments}}


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
