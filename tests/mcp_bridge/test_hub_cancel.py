"""A hub whose opening is cancelled closes what it started: no MCP server process is left running."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from mcp_bridge import McpHub, parse_config
from tests.processes import processes_with, wait_until_gone

from .conftest import PY

pytestmark = pytest.mark.anyio
SLOW_SERVER = Path(__file__).resolve().parent / "slow_start_server.py"


def slow_config(ready: Path, tag: str, seconds: float = 60.0) -> dict[str, object]:
    entry = {"command": PY, "args": [str(SLOW_SERVER), str(seconds), str(ready), tag], "connect_timeout": 120}
    return {"mcpServers": {"slow": entry, "fast-to-fail": {"command": PY, "args": ["-c", "pass"]}}}


async def wait_for(path: Path, seconds: float = 30.0) -> None:
    with anyio.fail_after(seconds):
        while not path.exists():
            await anyio.sleep(0.05)


async def test_cancelling_the_open_mid_start_leaves_no_child(tmp_path: Path) -> None:
    tag = f"slow-start-{uuid.uuid4().hex}"
    ready = tmp_path / "ready"
    hub = McpHub(parse_config(slow_config(ready, tag)))
    entered = False

    async def open_hub() -> None:
        nonlocal entered
        async with hub:
            entered = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_hub)
        await wait_for(ready)  # the server process is up and still starting
        assert processes_with(tag), "the slow server did not start"
        tg.cancel_scope.cancel()
    assert not entered
    assert wait_until_gone(tag, 10.0) == []


async def test_a_deadline_on_the_open_leaves_no_child(tmp_path: Path) -> None:
    tag = f"slow-start-{uuid.uuid4().hex}"
    ready = tmp_path / "ready"
    with anyio.move_on_after(1.5) as scope:
        async with McpHub(parse_config(slow_config(ready, tag))):
            pytest.fail("the hub opened although its server sleeps for a minute")
    assert scope.cancelled_caught
    assert ready.exists()
    assert wait_until_gone(tag, 10.0) == []
