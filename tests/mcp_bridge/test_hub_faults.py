"""The hub against our own fault server (mcp SDK server side), over stdio and streamable HTTP.

Crashes mid-call, hangs, cancellation, garbage on stdout, a server that never starts, 10 MB results, restarts
and HTTP session expiry. Everything is real: subprocesses on pipes, HTTP on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_bridge import McpHub, ProgressEvent, parse_config
from providers.types import ResourcePart, TextPart

from .conftest import FAULT_SERVER, PY, fault_http, free_port

pytestmark = pytest.mark.anyio


def stdio_entry(state: Path, *extra: str, **options: Any) -> dict[str, Any]:
    return {"command": PY, "args": [str(FAULT_SERVER), "--state", str(state), *extra], **options}


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-state")


@pytest.fixture(scope="module")
async def hub(state: Path) -> AsyncIterator[McpHub]:
    """One hub shared by the module's tests; each test leaves it connected."""
    cfg = parse_config({"mcpServers": {"f": stdio_entry(state, max_restarts=3)}})
    async with McpHub(cfg) as hub:
        yield hub


async def wait_for(path: Path, seconds: float = 10.0) -> bool:
    with anyio.move_on_after(seconds):
        while not path.exists():
            await anyio.sleep(0.05)
        return True
    return False


async def test_tools_are_listed_with_canonical_names_and_annotations(hub: McpHub) -> None:
    specs = {spec.name: spec for spec in await hub.list_tools()}
    assert {"f.echo", "f.hang", "f.crash_once_write"} <= set(specs)
    echo = specs["f.echo"]
    assert echo.origin == "f"
    assert echo.input_schema is not None
    assert "text" in echo.input_schema["properties"]
    assert echo.annotations is not None
    assert echo.annotations.read_only is True
    assert specs["f.hang"].annotations is not None
    assert specs["f.hang"].annotations.destructive is True
    assert hub.status()["f"].state == "ready"


async def test_call_and_tool_error(hub: McpHub) -> None:
    ok = await hub.call_tool("f.echo", {"text": "hi"}, call_id="c-1")
    assert (ok.call_id, ok.name, ok.is_error, ok.text()) == ("c-1", "f.echo", False, "hi")
    failed = await hub.call_tool("f.fail", {"message": "disk on fire"})
    assert failed.is_error
    assert "Error executing tool fail" in failed.text()


async def test_unknown_tools_are_error_results(hub: McpHub) -> None:
    assert (await hub.call_tool("f.nope", {})).is_error
    assert "server.tool" in (await hub.call_tool("echo", {})).text()
    assert (await hub.call_tool("zz.echo", {})).is_error


async def test_timeout_cancels_on_server_and_session_stays_usable(hub: McpHub, state: Path) -> None:
    result = await hub.call_tool("f.hang_until_cancelled", {"tag": "t1"}, timeout=0.5)
    assert result.is_error
    assert "timed out after 0.5s" in result.text()
    assert await wait_for(state / "cancelled-t1"), "the server never saw notifications/cancelled"
    assert (await hub.call_tool("f.echo", {"text": "still here"})).text() == "still here"


async def test_caller_cancellation_sends_cancelled(hub: McpHub, state: Path) -> None:
    with anyio.move_on_after(0.5) as scope:
        await hub.call_tool("f.hang_until_cancelled", {"tag": "t2"})
    assert scope.cancelled_caught
    assert await wait_for(state / "cancelled-t2")
    assert (await hub.call_tool("f.echo", {"text": "ok"})).text() == "ok"


async def test_progress_events(hub: McpHub) -> None:
    events: list[ProgressEvent] = []

    async def on_progress(event: ProgressEvent) -> None:
        events.append(event)

    result = await hub.call_tool("f.slow", {"steps": 4}, on_progress=on_progress)
    assert result.text() == "done after 4 steps"
    assert [e.progress for e in events] == [1, 2, 3, 4]
    assert events[-1] == ProgressEvent(tool="f.slow", progress=4, total=4, message="step 4")


async def test_crash_mid_call_read_only_tool_is_retried_after_restart(hub: McpHub) -> None:
    before = (await hub.call_tool("f.pid", {})).text()
    result = await hub.call_tool("f.crash_once_readonly", {})
    assert not result.is_error, result.text()
    assert "readonly survived" in result.text()
    assert before not in result.text()
    assert hub.status()["f"].restarts >= 1


async def test_crash_mid_call_side_effect_tool_is_not_retried(hub: McpHub) -> None:
    before = (await hub.call_tool("f.pid", {})).text()
    result = await hub.call_tool("f.crash_once_write", {})
    assert result.is_error
    assert "not retried" in result.text()
    assert "may or may not have taken effect" in result.text()
    after = await hub.call_tool("f.pid", {})  # the server was restarted behind the scenes
    assert not after.is_error
    assert after.text() != before


async def test_server_that_cannot_restart_ends_failed_with_stderr(tmp_path: Path) -> None:
    cfg = parse_config({"mcpServers": {"f": stdio_entry(tmp_path, "--start-once", max_restarts=2)}})
    async with McpHub(cfg) as hub:
        assert (await hub.call_tool("f.crash", {})).is_error
        down = await hub.call_tool("f.echo", {"text": "x"})
        assert down.is_error
        assert "not available" in down.text()
        status = hub.status()["f"]
        assert status.state == "failed"
        assert status.restarts == 2
        assert "database is locked" in (status.error or "")


async def test_garbage_on_stdout_is_survived(tmp_path: Path) -> None:
    cfg = parse_config({"mcpServers": {"f": stdio_entry(tmp_path, "--garbage-banner")}})
    async with McpHub(cfg) as hub:
        assert hub.status()["f"].state == "ready"
        assert (await hub.call_tool("f.garbage", {})).text() == "answered after garbage"
        assert (await hub.call_tool("f.echo", {"text": "after"})).text() == "after"


async def test_never_starting_server_is_reported_and_others_work(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "mcpServers": {
                "good": stdio_entry(tmp_path),
                "bad": stdio_entry(tmp_path, "--fail-start"),
                "missing": {"command": str(tmp_path / "no-such-binary")},
                "off": {"command": "whatever", "disabled": True},
            }
        }
    )
    async with McpHub(cfg) as hub:
        status = hub.status()
        assert set(status) == {"good", "bad", "missing"}
        assert status["good"].state == "ready"
        assert status["bad"].state == "failed"
        assert "FAULT_SERVER_TOKEN is not set" in (status["bad"].error or "")
        assert "FAULT_SERVER_TOKEN is not set" in status["bad"].stderr_tail
        assert status["missing"].state == "failed"
        assert "command not found" in (status["missing"].error or "")
        assert (await hub.call_tool("good.echo", {"text": "fine"})).text() == "fine"
        down = await hub.call_tool("bad.echo", {"text": "x"})
        assert down.is_error
        assert "FAULT_SERVER_TOKEN" in down.text()
        assert all(spec.origin == "good" for spec in hub.tools())


async def test_connect_timeout(tmp_path: Path) -> None:
    # `sleep` never speaks MCP: the hub gives up after connect_timeout and reports it.
    cfg = parse_config({"mcpServers": {"mute": {"command": "sleep", "args": ["30"], "connect_timeout": 0.5}}})
    async with McpHub(cfg) as hub:
        status = hub.status()["mute"]
        assert status.state == "failed"
        assert "within 0.5s" in (status.error or "")


async def test_ten_megabyte_result_is_bounded(hub: McpHub) -> None:
    result = await hub.call_tool("f.big", {"size": 10_000_000})
    assert not result.is_error
    total = sum(len(p.text.encode()) for p in result.content if isinstance(p, TextPart))
    assert total < 1_100_000
    assert "result truncated" in result.content[-1].text  # type: ignore[union-attr]
    assert result.structured is None  # the 10 MB structured copy was dropped too


async def test_stdio_environment_is_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTEKIT_TEST_PARENT_SECRET", "sk-parent-secret")
    monkeypatch.setenv("ROUTEKIT_TEST_PASSED", "visible")
    entry = stdio_entry(tmp_path, env={"GIVEN": "${ROUTEKIT_TEST_PASSED}"}, inherit_env=["ROUTEKIT_TEST_PASSED"])
    async with McpHub(parse_config({"mcpServers": {"f": entry}})) as hub:
        assert (await hub.call_tool("f.env", {"name": "ROUTEKIT_TEST_PARENT_SECRET"})).text() == "<unset>"
        assert (await hub.call_tool("f.env", {"name": "GIVEN"})).text() == "visible"
        assert (await hub.call_tool("f.env", {"name": "ROUTEKIT_TEST_PASSED"})).text() == "visible"
        assert (await hub.call_tool("f.env", {"name": "PATH"})).text() != "<unset>"


async def test_allow_and_deny_lists(tmp_path: Path) -> None:
    entry = stdio_entry(tmp_path, allow_tools=["echo", "pid", "crash*"], deny_tools=["crash"], autoApprove=["pid"])
    async with McpHub(parse_config({"mcpServers": {"f": entry}})) as hub:
        names = {spec.name for spec in await hub.list_tools()}
        assert names == {"f.echo", "f.pid", "f.crash_once_readonly", "f.crash_once_write"}
        denied = await hub.call_tool("f.crash", {})
        assert denied.is_error
        assert "not allowed" in denied.text()
        assert hub.is_auto_approved("f.pid")
        assert not hub.is_auto_approved("f.echo")


async def test_resources_and_prompts(hub: McpHub) -> None:
    resources = await hub.list_resources()
    assert [(r.server, r.uri) for r in resources] == [("f", "fault://greeting")]
    parts = await hub.read_resource("f", "fault://greeting")
    assert parts == [ResourcePart(uri="fault://greeting", media_type="text/plain", text="hello from the fault server")]
    prompts = await hub.list_prompts("f")
    assert prompts[0].name == "summarize"
    assert prompts[0].arguments[0].name == "topic"
    assert prompts[0].arguments[0].required
    got = await hub.get_prompt("f", "summarize", {"topic": "MCP"})
    assert got.messages[0].role == "user"
    assert got.messages[0].text == "Summarize MCP in one line."


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_both_protocol_eras_over_stdio(tmp_path: Path, protocol: str) -> None:
    cfg = parse_config({"mcpServers": {"f": stdio_entry(tmp_path, protocol=protocol)}})
    async with McpHub(cfg) as hub:
        status = hub.status()["f"]
        assert status.protocol_version == ("2025-11-25" if protocol == "legacy" else "2026-07-28")
        assert (await hub.call_tool("f.echo", {"text": protocol})).text() == protocol


async def test_streamable_http_call_and_session_expiry(tmp_path: Path) -> None:
    port = free_port()
    cfg = parse_config(
        {"mcpServers": {"h": {"url": f"http://127.0.0.1:{port}/mcp", "protocol": "legacy", "max_restarts": 3}}}
    )
    first = fault_http(port, tmp_path)
    first.__enter__()
    try:
        async with McpHub(cfg) as hub:
            assert hub.status()["h"].protocol_version == "2025-11-25"
            first_pid = (await hub.call_tool("h.pid", {})).text()
            first.__exit__(None, None, None)
            # A restarted server knows nothing of our session: it answers 404 and the hub opens a new session.
            with fault_http(port, tmp_path):
                result = await hub.call_tool("h.echo", {"text": "new session"})
                assert not result.is_error, result.text()
                assert result.text() == "new session"
                assert (await hub.call_tool("h.pid", {})).text() != first_pid
    finally:
        first.__exit__(None, None, None)


async def test_streamable_http_modern_era(tmp_path: Path) -> None:
    port = free_port()
    cfg = parse_config({"mcpServers": {"h": {"url": f"http://127.0.0.1:{port}/mcp"}}})
    with fault_http(port, tmp_path):
        async with McpHub(cfg) as hub:
            assert hub.status()["h"].protocol_version == "2026-07-28"
            events: list[ProgressEvent] = []

            async def on_progress(event: ProgressEvent) -> None:
                events.append(event)

            assert (await hub.call_tool("h.slow", {"steps": 3}, on_progress=on_progress)).text() == "done after 3 steps"
            assert [e.progress for e in events] == [1, 2, 3]
            timed_out = await hub.call_tool("h.hang_until_cancelled", {"tag": "http"}, timeout=0.5)
            assert timed_out.is_error
            assert "timed out" in timed_out.text()
            assert await wait_for(tmp_path / "cancelled-http")
            assert (await hub.call_tool("h.echo", {"text": "usable"})).text() == "usable"
