"""The hub against @modelcontextprotocol/server-everything (npm), over stdio, streamable HTTP and SSE.

Every tool the server offers to a client with sampling, elicitation and roots: plain text, numbers, images,
annotated content, resource links, embedded resources, structured content, progress, sampling, form and URL
elicitation (request and -32042 error paths), roots, log messages, list_changed, tasks-only tools.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_bridge import (
    ElicitationRequest,
    ElicitationResponse,
    McpHub,
    ProgressEvent,
    SamplingRequest,
    SamplingResponse,
    parse_config,
)
from providers.types import ImagePart, Message, ResourcePart, TextPart

from .conftest import EVERYTHING, everything_http, free_port

pytestmark = pytest.mark.anyio

ALL_TOOLS = {
    "echo",
    "get-annotated-message",
    "get-env",
    "get-resource-links",
    "get-resource-reference",
    "get-roots-list",
    "get-structured-content",
    "get-sum",
    "get-tiny-image",
    "gzip-file-as-resource",
    "simulate-research-query",
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    "trigger-elicitation-request",
    "trigger-long-running-operation",
    "trigger-sampling-request",
    "trigger-url-elicitation",
}


@dataclass
class Recorder:
    sampling: list[SamplingRequest] = field(default_factory=list)
    elicitations: list[ElicitationRequest] = field(default_factory=list)

    async def sample(self, request: SamplingRequest) -> SamplingResponse:
        self.sampling.append(request)
        return SamplingResponse(message=Message.assistant(f"echo-model says: {request.messages[-1].text}"), model="m1")

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        self.elicitations.append(request)
        if request.mode == "url":
            return ElicitationResponse(action="accept")
        return ElicitationResponse(action="accept", content={"name": "Ada Lovelace", "check": True})


@pytest.fixture(scope="module", params=["stdio", "http", "sse"])
def everything_entry(
    request: pytest.FixtureRequest, reference_servers: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("root")
    if request.param == "stdio":
        yield {
            "command": "node",
            "args": [str(EVERYTHING), "stdio"],
            "env": {"GZIP_ALLOWED_DOMAINS": "127.0.0.1"},
            "roots": [str(root)],
        }
        return
    port = free_port()
    kind, path = ("streamableHttp", "mcp") if request.param == "http" else ("sse", "sse")
    with everything_http(kind, port):
        yield {"type": request.param, "url": f"http://127.0.0.1:{port}/{path}", "roots": [str(root)]}


@pytest.fixture(scope="module")
async def session(everything_entry: dict[str, Any]) -> AsyncIterator[tuple[McpHub, Recorder]]:
    recorder = Recorder()
    cfg = parse_config({"mcpServers": {"e": everything_entry}})
    async with McpHub(cfg, sampling=recorder.sample, elicitation=recorder.elicit) as hub:
        assert hub.status()["e"].state == "ready", hub.status()["e"].error
        yield hub, recorder


async def tool_names(hub: McpHub) -> set[str]:
    # The 5 capability-gated tools are registered after `initialized` and announced with tools/list_changed.
    with anyio.move_on_after(10):
        while {s.name.removeprefix("e.") for s in await hub.list_tools()} != ALL_TOOLS:
            await anyio.sleep(0.1)
    return {s.name.removeprefix("e.") for s in await hub.list_tools()}


async def test_all_tools_listed_after_list_changed(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    assert await tool_names(hub) == ALL_TOOLS
    echo = hub.tool("e.echo")
    assert echo is not None
    assert echo.annotations is not None
    assert echo.annotations.read_only is True
    assert echo.input_schema is not None
    assert echo.input_schema["$schema"].startswith("http://json-schema.org/draft-07")


async def test_echo_and_sum(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    assert (await hub.call_tool("e.echo", {"message": "hello"})).text() == "Echo: hello"
    assert "42" in (await hub.call_tool("e.get-sum", {"a": 40, "b": 2})).text()


async def test_tiny_image(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    result = await hub.call_tool("e.get-tiny-image", {})
    images = [p for p in result.content if isinstance(p, ImagePart)]
    assert len(images) == 1
    assert images[0].media_type == "image/png"
    assert images[0].data is not None
    assert images[0].data.startswith(b"\x89PNG")


async def test_annotated_message(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    result = await hub.call_tool("e.get-annotated-message", {"messageType": "error", "includeImage": True})
    assert any(isinstance(p, TextPart) and "error" in p.text.lower() for p in result.content)
    assert any(isinstance(p, ImagePart) for p in result.content)


async def test_resource_links(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    result = await hub.call_tool("e.get-resource-links", {"count": 3})
    links = [p for p in result.content if isinstance(p, ResourcePart)]
    assert len(links) == 3
    assert all(link.text is None and link.data is None and link.uri for link in links)


@pytest.mark.parametrize("kind", ["Text", "Blob"])
async def test_embedded_resources(session: tuple[McpHub, Recorder], kind: str) -> None:
    hub, _ = session
    result = await hub.call_tool("e.get-resource-reference", {"resourceType": kind, "resourceId": 2})
    assert not result.is_error, result.text()
    embedded = [p for p in result.content if isinstance(p, ResourcePart)]
    assert len(embedded) == 1
    assert (embedded[0].text is not None) if kind == "Text" else (embedded[0].data is not None)


async def test_structured_content_validated(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    result = await hub.call_tool("e.get-structured-content", {"location": "Chicago"})
    assert not result.is_error
    assert result.structured is not None
    assert "temperature" in result.structured
    assert "does not match" not in result.text()


async def test_long_running_operation_reports_progress(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    events: list[ProgressEvent] = []

    async def on_progress(event: ProgressEvent) -> None:
        events.append(event)

    result = await hub.call_tool(
        "e.trigger-long-running-operation", {"duration": 0.4, "steps": 4}, on_progress=on_progress
    )
    assert not result.is_error
    assert "completed" in result.text().lower()
    assert [e.progress for e in events] == [1, 2, 3, 4]
    assert all(e.total == 4 for e in events)


async def test_sampling(session: tuple[McpHub, Recorder]) -> None:
    hub, recorder = session
    result = await hub.call_tool("e.trigger-sampling-request", {"prompt": "What is 2+2?", "maxTokens": 50})
    assert "echo-model says" in result.text()
    request = recorder.sampling[-1]
    assert request.server == "e"
    assert request.max_tokens == 50
    assert "2+2" in request.messages[-1].text


async def test_form_elicitation_applies_defaults(session: tuple[McpHub, Recorder]) -> None:
    hub, recorder = session
    result = await hub.call_tool("e.trigger-elicitation-request", {})
    request = recorder.elicitations[-1]
    assert request.mode == "form"
    assert request.schema is not None
    assert "name" in request.schema["properties"]
    text = result.text()
    assert "Ada Lovelace" in text
    assert "Agreed to terms: true" in text
    assert "Favorite Integer: 42" in text  # not answered by the handler: filled from the schema default


async def test_url_elicitation_request_path(session: tuple[McpHub, Recorder]) -> None:
    hub, recorder = session
    result = await hub.call_tool("e.trigger-url-elicitation", {"url": "https://auth.example/start"})
    assert not result.is_error, result.text()
    assert recorder.elicitations[-1].mode == "url"
    assert recorder.elicitations[-1].url == "https://auth.example/start"


async def test_url_elicitation_error_path_is_retried(session: tuple[McpHub, Recorder]) -> None:
    hub, recorder = session
    before = len(recorder.elicitations)
    args = {"url": "https://auth.example/pay", "errorPath": True, "elicitationId": "el-7"}
    result = await hub.call_tool("e.trigger-url-elicitation", args)
    assert not result.is_error, result.text()
    # first the prerequisite carried by the -32042 error, then (after the retry) the request-path elicitation
    urls = [r.url for r in recorder.elicitations[before:]]
    assert len(urls) == 2
    assert urls[-1] == "https://auth.example/pay"


async def test_roots(session: tuple[McpHub, Recorder], everything_entry: dict[str, Any]) -> None:
    hub, _ = session
    result = await hub.call_tool("e.get-roots-list", {})
    assert Path(everything_entry["roots"][0]).name in result.text()


async def test_gzip_resource_and_resources_list_changed(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    changes: list[tuple[str, str]] = []
    hub.on_change(lambda server, method: changes.append((server, method)))
    data = "data:text/plain;base64," + base64.b64encode(b"hello gzip " * 20).decode()
    result = await hub.call_tool(
        "e.gzip-file-as-resource", {"name": "h.txt.gz", "data": data, "outputType": "resource"}
    )
    assert not result.is_error, result.text()
    blobs = [p for p in result.content if isinstance(p, ResourcePart) and p.data]
    assert blobs
    assert blobs[0].data is not None
    assert blobs[0].data[:2] == b"\x1f\x8b"
    with anyio.move_on_after(5):
        while ("e", "notifications/resources/list_changed") not in changes:
            await anyio.sleep(0.05)
    assert ("e", "notifications/resources/list_changed") in changes


async def test_resources_and_prompts(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    resources = await hub.list_resources("e")
    assert resources
    assert all(r.server == "e" for r in resources)
    parts = await hub.read_resource("e", resources[0].uri)
    assert parts
    assert parts[0].uri == resources[0].uri
    prompts = {p.name: p for p in await hub.list_prompts("e")}
    assert {"simple-prompt", "args-prompt"} <= set(prompts)
    got = await hub.get_prompt("e", "args-prompt", {"city": "Paris", "state": "TX"})
    assert "Paris" in got.messages[0].text


async def test_server_log_messages_reach_python_logging(
    session: tuple[McpHub, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    hub, _ = session
    caplog.set_level(logging.DEBUG, logger="mcp_bridge.server.e")
    assert not (await hub.call_tool("e.toggle-simulated-logging", {})).is_error
    try:
        with anyio.move_on_after(15):
            while not any(r.name == "mcp_bridge.server.e" for r in caplog.records):
                await anyio.sleep(0.1)
        assert any(r.name == "mcp_bridge.server.e" for r in caplog.records)
    finally:
        await hub.call_tool("e.toggle-simulated-logging", {})


async def test_subscriber_updates_toggle(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    on = await hub.call_tool("e.toggle-subscriber-updates", {})
    off = await hub.call_tool("e.toggle-subscriber-updates", {})
    assert not on.is_error
    assert not off.is_error
    assert on.text() != off.text()


async def test_task_only_tool_is_a_clear_error(session: tuple[McpHub, Recorder]) -> None:
    hub, _ = session
    result = await hub.call_tool("e.simulate-research-query", {"topic": "MCP"})
    assert result.is_error
    assert "task" in result.text().lower()


async def test_stdio_env_does_not_leak_parent_secrets(reference_servers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak")
    entry = {"command": "node", "args": [str(EVERYTHING), "stdio"], "env": {"GZIP_ALLOWED_DOMAINS": "127.0.0.1"}}
    async with McpHub(parse_config({"mcpServers": {"e": entry}})) as hub:
        text = (await hub.call_tool("e.get-env", {})).text()
        assert "sk-test-should-not-leak" not in text
        assert "OPENAI_API_KEY" not in text
        assert "GZIP_ALLOWED_DOMAINS" in text
        assert "PATH" in text
