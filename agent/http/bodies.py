"""Request bodies: JSON that is not valid Unicode is refused with 400 before any route sees it.

Python's ``json`` accepts ``"\\ud800"`` (an escaped lone surrogate) and, from bytes, even UTF-8-encoded
surrogates; such a string can be stored (escaped) but never encoded again, so every later answer that
contains it fails. One check here covers every JSON body of the API. The common case costs a strict
UTF-8 decode and one substring search; only a body with an escaped surrogate is parsed to look closer
(a correctly paired surrogate, i.e. an escaped astral character, is fine).
"""

from __future__ import annotations

import email.message
import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# An escaped UTF-16 surrogate, \uD800-\uDFFF, in any case (the backslash itself may be escaped: then the
# slow path finds the string valid).
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def invalid_unicode(body: bytes) -> str | None:
    """Why ``body`` (a JSON request body) is not valid Unicode, or None when it is (or is not JSON at all:
    the route's own parsing reports that)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the request body is not valid UTF-8 (byte {exc.start})"
    if not _ESCAPED_SURROGATE.search(text):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "the request body contains a lone UTF-16 surrogate escape (such as \\ud800), which is not valid Unicode"
    return None


def _is_json(scope: Scope) -> bool:
    """What FastAPI parses as JSON: no content type, ``application/json`` or ``application/*+json``."""
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            message = email.message.Message()
            message["content-type"] = value.decode("latin-1")
            subtype = message.get_content_subtype()
            return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))
    return True


class ValidUnicodeBodies:
    """Pure ASGI (streamed answers pass untouched): reads a JSON request body, refuses it with 400 when it is
    not valid Unicode, and otherwise hands it on unchanged (later messages, such as a disconnect, too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS") or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)  # a disconnect before the body ended
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = invalid_unicode(body) if body else None
        if problem is not None:
            await _refuse(send, problem)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _replay(first: list[Message], receive: Receive) -> Receive:
    pending = list(first)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _refuse(send: Send, detail: str) -> None:
    payload: dict[str, Any] = {"detail": detail + "; send the text as valid UTF-8 JSON"}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
