"""A fake Anthropic Messages API that the real ``anthropic`` SDK talks to over HTTP.

Speaks the wire format of the shared folder's reference/provider-wire-formats.md §3: ``POST /v1/messages`` as
JSON or as SSE (every event with an ``event:`` line equal to ``data.type``; ``message_start`` carries the
input side of usage, ``message_delta`` the cumulative output; ``message_stop`` is terminal; tool input
arrives as ``input_json_delta`` pieces cut inside JSON strings), ``GET /v1/models`` and
``GET /v1/models/{id}``, and errors in Anthropic's envelope.

It validates requests the way the real API does (the rules routekit's adapters must respect) and
answers ``400 invalid_request_error`` when a request breaks one, so tests elsewhere can prove that a
history translated for Anthropic is acceptable to it.

Usage convention of the scripts: ``FakeUsage.input_tokens`` is the *total* prompt size (cached tokens
included), as every fake treats it; on this wire ``input_tokens`` is the uncached rest.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
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

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
USER_BLOCKS = {"text", "image", "document", "tool_result", "search_result"}
ASSISTANT_BLOCKS = {"text", "thinking", "redacted_thinking", "tool_use", "server_tool_use"}

# HTTP status -> Anthropic error type (wire-formats §3 "HTTP errors").
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class InvalidRequest(Exception):
    """A request the real API would refuse with 400 invalid_request_error."""


class FakeAnthropicServer(FakeProviderServer):
    provider = "anthropic"

    def __init__(self) -> None:
        super().__init__()
        self.models = ["fake-model-1", "fake-model-2", "claude-fake-3"]
        # None: any credential is accepted (as the checklist says); a set: only these keys (401 otherwise).
        self.accepted_keys: set[str] | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ routing

    def handle(self, request: RecordedRequest) -> Rendered | None:
        if not self._authorized(request):
            return self._error(401, "authentication_error", "invalid x-api-key")
        if request.method == "POST" and request.path == "/v1/messages":
            return self._messages(request)
        if request.method == "GET" and request.path == "/v1/models":
            return self._json(self._models_page())
        if request.method == "GET" and request.path.startswith("/v1/models/"):
            model_id = request.path.removeprefix("/v1/models/")
            if model_id not in self.models:
                return self._error(404, "not_found_error", f"model: {model_id}")
            return self._json(self._model_info(model_id))
        return None

    def _authorized(self, request: RecordedRequest) -> bool:
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if key is None and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key:
            return False
        return self.accepted_keys is None or key in self.accepted_keys

    def _messages(self, request: RecordedRequest) -> Rendered:
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(request.body, dict):
            return self._error(400, "invalid_request_error", "request body must be a JSON object")
        body = request.body
        try:
            validate_request(body)
        except InvalidRequest as exc:
            return self._error(400, "invalid_request_error", str(exc))
        if body["model"] not in self.models:
            return self._error(404, "not_found_error", f"model: {body['model']}")
        turn = self.next_turn(request)
        model = turn.model or body["model"]
        message_id = f"msg_fake_{next(self._ids)}"
        if body.get("stream"):
            return Rendered(
                chunks=self.render_stream(turn, model, message_id),
                content_type="text/event-stream; charset=utf-8",
                headers=self._headers(),
            )
        return self._json(self.render_message(turn, model, message_id))

    # ------------------------------------------------------------------ decision rule

    def default_turn(self, request: RecordedRequest) -> FakeTurn:
        body = request.body if isinstance(request.body, dict) else {}
        tools = body.get("tools") or []
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        content = last.get("content") if isinstance(last, dict) else None
        has_result = isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        )
        if tools and not has_result and (body.get("tool_choice") or {}).get("type") != "none":
            tool = tools[0]
            return FakeTurn(tool_calls=[FakeToolCall(tool["name"], arguments_for(tool.get("input_schema") or {}))])
        return FakeTurn(text="All done.")

    # ------------------------------------------------------------------ rendering

    def _headers(self) -> dict[str, str]:
        return {"request-id": f"req_fake_{next(self._ids)}"}

    def _json(self, payload: Any, status: int = 200) -> Rendered:
        return Rendered(status=status, body=json.dumps(payload).encode(), headers=self._headers())

    def _error(self, status: int, error_type: str, message: str) -> Rendered:
        request_id = f"req_fake_{next(self._ids)}"
        body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
        return Rendered(status=status, body=json.dumps(body).encode(), headers={"request-id": request_id})

    def render_error(self, fault: Fault) -> Rendered:
        status = fault.status or 500
        return self._error(status, fault.error_type or ERROR_TYPES.get(status, "api_error"), fault.message)

    def render_stream_error(self, fault: Fault) -> bytes:
        error = {"type": fault.error_type or "overloaded_error", "message": fault.message}
        return sse({"type": "error", "error": error}, event="error")

    def corrupt_chunk(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {not json\n\n'

    def _tool_ids(self, turn: FakeTurn) -> list[str]:
        return [call.id or f"toolu_fake{next(self._ids):04d}" for call in turn.tool_calls]

    @staticmethod
    def _stop_reason(turn: FakeTurn) -> str:
        return turn.stop or ("tool_use" if turn.tool_calls else "end_turn")

    def render_message(self, turn: FakeTurn, model: str, message_id: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if turn.thinking is not None:
            signature = turn.thinking_signature or "sig_fake_thinking"
            content.append({"type": "thinking", "thinking": turn.thinking, "signature": signature})
        if turn.text:
            content.append({"type": "text", "text": turn.text})
        for call, call_id in zip(turn.tool_calls, self._tool_ids(turn), strict=True):
            content.append({"type": "tool_use", "id": call_id, "name": call.name, "input": call.arguments})
        message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": self._stop_reason(turn),
            "stop_sequence": None,
        }
        if turn.usage is not None:
            message["usage"] = {**_input_usage(turn.usage), **_output_usage(turn.usage)}
        return message

    def render_stream(self, turn: FakeTurn, model: str, message_id: str) -> list[bytes]:
        start: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        if turn.usage is not None:
            start["usage"] = {**_input_usage(turn.usage), "output_tokens": 1}
        chunks = [_event({"type": "message_start", "message": start})]
        index = 0
        if turn.thinking is not None:
            chunks += _block(index, {"type": "thinking", "thinking": "", "signature": ""}, _thinking_deltas(turn))
            index += 1
        if turn.text:
            deltas = [{"type": "text_delta", "text": piece} for piece in split_text(turn.text)]
            chunks += _block(index, {"type": "text", "text": ""}, deltas)
            if index == 0:
                chunks.insert(2, _event({"type": "ping"}))
            index += 1
        for call, call_id in zip(turn.tool_calls, self._tool_ids(turn), strict=True):
            opening = {"type": "tool_use", "id": call_id, "name": call.name, "input": {}}
            chunks += _block(index, opening, _json_deltas(call.arguments))
            index += 1
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(turn), "stop_sequence": None},
        }
        if turn.usage is not None:
            delta["usage"] = {**_input_usage(turn.usage), **_output_usage(turn.usage)}
        chunks.append(_event(delta))
        chunks.append(_event({"type": "message_stop"}))
        return chunks

    # ------------------------------------------------------------------ models

    def _model_info(self, model_id: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id.replace("-", " ").title(),
            "created_at": "2026-01-01T00:00:00Z",
            "lifecycle": "active",
            "max_input_tokens": 200000,
            "max_tokens": 64000,
        }

    def _models_page(self) -> dict[str, Any]:
        data = [self._model_info(model_id) for model_id in self.models]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }


# ---------------------------------------------------------------------- wire helpers


def _event(data: dict[str, Any]) -> bytes:
    return sse(data, event=data["type"])


def _block(index: int, opening: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    chunks = [_event({"type": "content_block_start", "index": index, "content_block": opening})]
    chunks += [_event({"type": "content_block_delta", "index": index, "delta": delta}) for delta in deltas]
    chunks.append(_event({"type": "content_block_stop", "index": index}))
    return chunks


def _thinking_deltas(turn: FakeTurn) -> list[dict[str, Any]]:
    deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split_text(turn.thinking or "", 2)]
    deltas.append({"type": "signature_delta", "signature": turn.thinking_signature or "sig_fake_thinking"})
    return deltas


def _json_deltas(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The input JSON in pieces, as the API streams it: an empty first piece, then cuts inside strings."""
    deltas: list[dict[str, Any]] = [{"type": "input_json_delta", "partial_json": ""}]
    if arguments:
        text = json.dumps(arguments)
        deltas += [{"type": "input_json_delta", "partial_json": piece} for piece in split_text(text, 4)]
    return deltas


def _input_usage(usage: FakeUsage) -> dict[str, int]:
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "input_tokens": max(usage.input_tokens - cached, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def _output_usage(usage: FakeUsage) -> dict[str, Any]:
    out: dict[str, Any] = {"output_tokens": usage.output_tokens}
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def arguments_for(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments that satisfy a schema's required properties (the default decision rule)."""
    properties = schema.get("properties") or {}
    return {name: _sample(properties.get(name) or {}) for name in schema.get("required") or []}


def _sample(schema: dict[str, Any]) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    samples: dict[str, Any] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}
    if kind == "object":
        return arguments_for(schema)
    return samples.get(str(kind), "sample text")


# ---------------------------------------------------------------------- validation


def validate_request(body: dict[str, Any]) -> None:
    """Raise InvalidRequest for what the real Messages API refuses (messages quoted from its errors)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required")
    tool_names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), tool_names)
    thinking = _validate_thinking(body.get("thinking"), max_tokens)
    _validate_system(body.get("system"))
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 1):
            raise InvalidRequest(f"{key}: Input should be less than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops)):
        raise InvalidRequest("stop_sequences: Input should be a valid list of non-empty strings")
    _validate_messages(body.get("messages"), thinking)


def _validate_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise InvalidRequest(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if name in names:
            raise InvalidRequest("tools: Tool names must be unique.")
        names.add(name)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"tools.{i}.custom.input_schema: Field required")
        if schema.get("type") != "object":
            raise InvalidRequest(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        if "description" in tool and not isinstance(tool["description"], str):
            raise InvalidRequest(f"tools.{i}.custom.description: Input should be a valid string")
    return names


def _validate_tool_choice(choice: Any, names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in {"auto", "any", "tool", "none"}:
        raise InvalidRequest(
            "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        )
    if not names:
        raise InvalidRequest("tool_choice may only be specified while providing tools.")
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise InvalidRequest(f"tool_choice.tool.name: tool {choice.get('name')!r} not found in tools")
    if choice["type"] == "none" and "disable_parallel_tool_use" in choice:
        raise InvalidRequest("tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted")


def _validate_thinking(thinking: Any, max_tokens: int) -> bool:
    if thinking is None:
        return False
    if not isinstance(thinking, dict) or thinking.get("type") not in {"enabled", "disabled", "adaptive"}:
        raise InvalidRequest("thinking: Input tag does not match any of the expected tags")
    if thinking["type"] != "enabled":
        return bool(thinking["type"] == "adaptive")
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise InvalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if budget >= max_tokens:
        raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")
    return True


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(isinstance(b, dict) and b.get("type") == "text" for b in system):
        raise InvalidRequest("system: Input should be a valid string or a list of text blocks")


def _validate_messages(messages: Any, thinking: bool) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required")
    previous_role: str | None = None
    pending_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in {"user", "assistant"}:
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise InvalidRequest('messages: first message must use the "user" role')
        if role == previous_role:
            raise InvalidRequest('messages: roles must alternate between "user" and "assistant"')
        blocks = _blocks_of(message.get("content"), i, final_assistant=role == "assistant" and i == len(messages) - 1)
        if role == "user":
            _check_tool_results(blocks, i, pending_tool_uses)
            pending_tool_uses = set()
        else:
            pending_tool_uses = _check_assistant(blocks, i)
        previous_role = role
    if pending_tool_uses:
        raise InvalidRequest(
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
            f"after: {', '.join(sorted(pending_tool_uses))}. Each `tool_use` block must have a corresponding "
            "`tool_result` block in the next message."
        )
    if thinking:
        _check_thinking_continuity(messages)


def _blocks_of(content: Any, i: int, *, final_assistant: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content and not final_assistant:
            raise InvalidRequest(f"messages.{i}: all messages must have non-empty content")
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        raise InvalidRequest(f"messages.{i}.content: Input should be a valid string or list of content blocks")
    if not content and not final_assistant:
        raise InvalidRequest(
            f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        )
    return content


def _check_text(block: dict[str, Any], where: str) -> None:
    if not isinstance(block.get("text"), str) or not block["text"]:
        raise InvalidRequest(f"{where}: text content blocks must be non-empty")


def _check_image(block: dict[str, Any], where: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: Field required")
    if source.get("type") == "url":
        if not isinstance(source.get("url"), str) or not source["url"].startswith(("http://", "https://")):
            raise InvalidRequest(f"{where}.source.url: invalid URL")
        return
    if source.get("type") != "base64":
        raise InvalidRequest(f"{where}.source.type: Input should be 'base64', 'url' or 'file'")
    if source.get("media_type") not in IMAGE_TYPES:
        raise InvalidRequest(f"{where}.source.base64.media_type: Input should be one of {sorted(IMAGE_TYPES)}")
    try:
        base64.b64decode(source.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}.source.base64.data: invalid base64 data") from None
    if not source.get("data"):
        raise InvalidRequest(f"{where}.source.base64.data: image data is empty")


def _check_tool_results(blocks: list[dict[str, Any]], i: int, expected: set[str]) -> None:
    seen: set[str] = set()
    results_done = False
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type")
        if kind not in USER_BLOCKS:
            raise InvalidRequest(f"{where}: block type {kind!r} is not allowed in a user message")
        if kind == "text":
            _check_text(block, where)
        elif kind == "image":
            _check_image(block, where)
        if kind != "tool_result":
            results_done = True
            continue
        if results_done:
            raise InvalidRequest(f"{where}: tool_result blocks must come first in a user message, before other content")
        use_id = block.get("tool_use_id")
        if not isinstance(use_id, str) or not TOOL_USE_ID.match(use_id):
            raise InvalidRequest(f"{where}.tool_result.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if use_id not in expected:
            raise InvalidRequest(
                f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. Each `tool_result` "
                "block must have a corresponding `tool_use` block in the previous message."
            )
        if use_id in seen:
            raise InvalidRequest(f"{where}: duplicate tool_result for tool_use_id {use_id}")
        seen.add(use_id)
        if "is_error" in block and not isinstance(block["is_error"], bool):
            raise InvalidRequest(f"{where}.is_error: Input should be a valid boolean")
        _check_result_content(block.get("content"), where)
    missing = expected - seen
    if missing:
        raise InvalidRequest(
            f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(sorted(missing))}. Each `tool_use` block must have a corresponding `tool_result` block "
            "in the next message."
        )


def _check_result_content(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: Input should be a valid string or list")
    for k, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            _check_text(item, f"{where}.content.{k}")
        elif kind == "image":
            _check_image(item, f"{where}.content.{k}")
        elif kind not in {"document", "search_result"}:
            raise InvalidRequest(f"{where}.content.{k}: Input tag {kind!r} does not match the expected tags")


def _check_assistant(blocks: list[dict[str, Any]], i: int) -> set[str]:
    ids: set[str] = set()
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type")
        if kind not in ASSISTANT_BLOCKS:
            raise InvalidRequest(f"{where}: block type {kind!r} is not allowed in an assistant message")
        if kind == "text":
            _check_text(block, where)
        elif kind == "thinking":
            if not isinstance(block.get("thinking"), str):
                raise InvalidRequest(f"{where}.thinking.thinking: Field required")
            if not isinstance(block.get("signature"), str) or not block["signature"]:
                raise InvalidRequest(f"{where}.thinking.signature: Field required")
        elif kind == "redacted_thinking":
            if not isinstance(block.get("data"), str) or not block["data"]:
                raise InvalidRequest(f"{where}.redacted_thinking.data: Field required")
        elif kind == "tool_use":
            use_id, name = block.get("id"), block.get("name")
            if not isinstance(use_id, str) or not TOOL_USE_ID.match(use_id):
                raise InvalidRequest(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                raise InvalidRequest(f"{where}.tool_use.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if not isinstance(block.get("input"), dict):
                raise InvalidRequest(f"{where}.tool_use.input: Input should be a valid dictionary")
            if use_id in ids:
                raise InvalidRequest(f"{where}: `tool_use` ids must be unique")
            ids.add(use_id)
    return ids


def _check_thinking_continuity(messages: list[dict[str, Any]]) -> None:
    """With thinking on, the assistant turn that started the current tool loop must open with its thinking."""
    last_assistant = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    if last_assistant is None or not isinstance(last_assistant.get("content"), list):
        return
    content = last_assistant["content"]
    if not any(block.get("type") == "tool_use" for block in content):
        return
    first = content[0].get("type") if content else None
    if first not in {"thinking", "redacted_thinking"}:
        raise InvalidRequest(
            f"messages.{messages.index(last_assistant)}.content.0.type: Expected `thinking` or `redacted_thinking`, "
            f"but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a "
            "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
        )
