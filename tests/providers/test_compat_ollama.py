"""Pins for providers._compat_ollama, the one use of a private ollama SDK name (``AsyncClient._request``).

Each test pins a fact the shim relies on; when one fails after an ollama upgrade, read the shim's docstring:
the first means the reason for the shim is gone (use ``AsyncClient.chat``), the others that the private method
changed under it. Against the fake Ollama server over HTTP on 127.0.0.1, through the real SDK.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import ollama
import pytest

from providers._compat_ollama import post_chat, post_chat_stream
from tests.fakes.base import FakeTurn, Fault
from tests.fakes.ollama import FakeOllamaServer
from tests.providers.conftest import start_fake

pytestmark = pytest.mark.anyio

NESTED_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "book",
        "description": "Book a trip",
        "parameters": {
            "type": "object",
            "properties": {
                "trip": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}},
                    "required": ["city"],
                }
            },
            "required": ["trip"],
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOllamaServer]:
    fake = start_fake("ollama")
    assert isinstance(fake, FakeOllamaServer)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def client(server: FakeOllamaServer) -> AsyncIterator[ollama.AsyncClient]:
    with server.lock:
        server.turns.clear()
        server.faults.clear()
        server.requests.clear()
    sdk = ollama.AsyncClient(host=server.origin)
    try:
        yield sdk
    finally:
        await sdk.close()  # type: ignore[no-untyped-call]


def _body(stream: bool) -> dict[str, Any]:
    messages = [{"role": "user", "content": "hi"}]
    return {"model": "fake-model-1", "stream": stream, "messages": messages, "tools": [NESTED_TOOL]}


async def test_the_sdks_chat_still_drops_nested_tool_properties(
    client: ollama.AsyncClient, server: FakeOllamaServer
) -> None:
    """The reason for the shim (ollama/ollama-python#724). Fails once ``chat()`` sends them: then send requests
    with ``AsyncClient.chat`` and delete providers/_compat_ollama.py."""
    server.turns.append(FakeTurn(text="ok"))
    await client.chat(model="fake-model-1", messages=[{"role": "user", "content": "hi"}], tools=[NESTED_TOOL])
    sent = server.requests[-1].json["tools"][0]["function"]["parameters"]["properties"]["trip"]
    assert sent["type"] == "object"
    assert "properties" not in sent


def test_the_private_request_method_keeps_its_shape() -> None:
    parameters = inspect.signature(ollama.AsyncClient._request).parameters
    assert list(parameters)[:2] == ["self", "cls"]
    assert parameters["stream"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["stream"].default is False


async def test_a_body_is_sent_as_built_and_parsed_into_chat_responses(
    client: ollama.AsyncClient, server: FakeOllamaServer
) -> None:
    server.turns.append(FakeTurn(text="hello"))
    response = await post_chat(client, _body(stream=False))
    assert isinstance(response, ollama.ChatResponse)
    assert response.message.content == "hello"
    assert server.requests[-1].json == _body(stream=False)  # nested properties included


async def test_a_stream_yields_chat_responses_up_to_done(client: ollama.AsyncClient, server: FakeOllamaServer) -> None:
    server.turns.append(FakeTurn(text="hello there"))
    chunks = [chunk async for chunk in await post_chat_stream(client, _body(stream=True))]
    assert all(isinstance(c, ollama.ChatResponse) for c in chunks)
    assert "".join(c.message.content or "" for c in chunks) == "hello there"
    assert chunks[-1].done
    assert server.requests[-1].json == _body(stream=True)


async def test_errors_come_as_the_sdks_response_errors(client: ollama.AsyncClient, server: FakeOllamaServer) -> None:
    server.faults.append(Fault(status=404, message="model 'fake-model-1' not found"))
    with pytest.raises(ollama.ResponseError) as status_error:
        await post_chat(client, _body(stream=False))
    assert status_error.value.status_code == 404
    server.turns.append(FakeTurn(text="one two three"))
    server.faults.append(Fault(error_event_at=1))
    with pytest.raises(ollama.ResponseError) as line_error:
        async for _ in await post_chat_stream(client, _body(stream=True)):
            pass
    assert line_error.value.status_code == -1  # an {"error": ...} line in the stream
