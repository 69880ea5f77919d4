"""The one place routekit uses a private part of the ollama SDK: sending a ``/api/chat`` body it built itself.

Why. ``AsyncClient.chat()`` re-validates every tool through ``ollama.Tool``, whose ``Parameters.Property`` keeps
only ``type``/``items``/``description``/``enum`` and silently drops nested ``properties`` (open upstream:
ollama/ollama-python#724, fix proposed in #725; #429 was closed without a fix), while the Ollama server takes
nested properties (ollama/ollama#13508). MCP tools use nested objects routinely. The SDK has no public way to
send a request body as is, so the adapter sends the body ``chat()`` would send, minus the loss, through the
SDK's own request method ``AsyncClient._request``: same transport, NDJSON parser, ``ChatResponse`` models and
``ResponseError``\\ s as ``chat()``.

When to remove it: ``tests/providers/test_compat_ollama.py`` pins both facts this relies on, the loss in
``ollama.Tool`` (that test fails once the SDK keeps nested properties: then use ``chat()``) and the shape and
behaviour of ``_request`` (that test fails if an upgrade changes them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ollama import AsyncClient, ChatResponse

__all__ = ["post_chat", "post_chat_stream"]


async def post_chat(client: AsyncClient, body: dict[str, Any]) -> ChatResponse:
    """``POST /api/chat`` with ``body`` (``"stream": false``); the parsed response."""
    response: ChatResponse = await client._request(ChatResponse, "POST", "/api/chat", json=body)
    return response


async def post_chat_stream(client: AsyncClient, body: dict[str, Any]) -> AsyncIterator[ChatResponse]:
    """``POST /api/chat`` with ``body`` (``"stream": true``); the NDJSON lines, parsed, as the SDK yields them. The
    request is sent when iteration starts; close the iterator (``aclose``) to release the connection early."""
    chunks: AsyncIterator[ChatResponse] = await client._request(
        ChatResponse, "POST", "/api/chat", json=body, stream=True
    )
    return chunks
