"""A client that disconnects while its run's MCP hub is opening leaves no MCP server process behind."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import Service, base_settings
from tests.mcp_bridge.conftest import PY
from tests.processes import processes_with, wait_until_gone

SLOW_SERVER = Path(__file__).resolve().parents[1] / "mcp_bridge" / "slow_start_server.py"
DROPS = 5


@pytest.fixture(scope="module")
def leak_service(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer, captured_logs: Any
) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("leak"), base_settings(fake_openai, max_concurrent_runs=DROPS)).start()
    try:
        yield svc
    finally:
        svc.stop()


def test_dropping_the_client_while_the_hub_opens_stops_the_server(
    leak_service: Service, fake_openai: FakeOpenAIServer, tmp_path: Path
) -> None:
    tag = f"slow-start-{uuid.uuid4().hex}"
    ready_dir = tmp_path / "ready"
    ready_dir.mkdir()
    _, token = leak_service.new_openai_user("dropper", fake_openai)
    leaked = 0
    for n in range(DROPS):
        ready = ready_dir / f"{n}"
        entry = {"command": PY, "args": [str(SLOW_SERVER), "120", str(ready), tag], "connect_timeout": 300}
        with leak_service.admin() as admin:  # a new entry each time: no idle hub to reuse
            assert admin.put(f"/api/admin/mcp-servers/slow{n}", json=entry).status_code == 200
        with leak_service.client(token) as c:
            session = c.post("/api/sessions", json={"mcp_servers": [f"slow{n}"]}).json()
            with c.stream("POST", f"/api/sessions/{session['id']}/messages", json={"content": "hi"}) as response:
                assert response.status_code == 200
                deadline = time.monotonic() + 30
                while not ready.exists():  # the server process runs and is still starting
                    assert time.monotonic() < deadline, "the slow MCP server never started"
                    time.sleep(0.05)
            # Leaving the block closed the connection in the middle of the hub's opening.
        if wait_until_gone(tag, 10.0):
            leaked += 1
    assert leaked == 0, f"{leaked} of {DROPS} dropped clients left their MCP server running"
    assert processes_with(tag) == []
    with leak_service.client(token) as c:  # and the sessions are free again
        assert not any(s["running"] for s in c.get("/api/sessions").json())
