"""Runs over HTTP: the SSE stream of agent events, tool calls with approvals, run limits, isolation."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.profiles import get_profile
from providers.schema import provider_tool_name
from tests.fakes.base import FakeToolCall, FakeTurn
from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import ADMIN_TOKEN, OPENAI_KEY, Service, base_settings

TOOL_SERVER = Path(__file__).resolve().parents[1] / "agent" / "tool_server.py"


def wire(canonical: str) -> str:
    return provider_tool_name(canonical, get_profile("openai").tool_names)


@pytest.fixture(scope="module")
def tool_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tools") / "calls.jsonl"


@pytest.fixture(scope="module")
def runs_service(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer, captured_logs: Any, tool_log: Path
) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("runs"), base_settings(fake_openai, max_concurrent_runs=1)).start()
    with svc.admin() as admin:
        entry = {"command": sys.executable, "args": [str(TOOL_SERVER)], "env": {"AGENT_TOOL_LOG": str(tool_log)}}
        assert admin.put("/api/admin/mcp-servers/t", json=entry).status_code == 200
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def user(runs_service: Service, fake_openai: FakeOpenAIServer) -> str:
    _, token = runs_service.new_openai_user("runner", fake_openai, default_model="fake-model-1")
    return token


@pytest.fixture
def fake(fake_openai: FakeOpenAIServer) -> FakeOpenAIServer:
    fake_openai.reset()
    return fake_openai


STREAMED: list[str] = []  # every SSE line any test read, for the secret scan at the end


def events_of(response: httpx.Response, on_event: Any = None) -> list[tuple[str, dict[str, Any]]]:
    """Parse an SSE body as it arrives; ``on_event(kind, data)`` runs for each event."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind, data = "message", ""
    for line in response.iter_lines():
        STREAMED.append(line)
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "" and data:
            parsed = json.loads(data)
            events.append((kind, parsed))
            if on_event is not None:
                on_event(kind, parsed)
            kind, data = "message", ""
    return events


def new_session(client: httpx.Client, **body: Any) -> str:
    created = client.post("/api/sessions", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_a_text_answer_streams_as_events(runs_service: Service, user: str, fake: FakeOpenAIServer) -> None:
    fake.turns.append(FakeTurn(text="Hello from the fake model, streamed."))
    with runs_service.client(user) as c:
        session_id = new_session(c)
        with c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": "Hi!"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = events_of(response)
        kinds = [k for k, _ in events]
        assert kinds[0] == "run_started"
        assert kinds[-1] == "final"
        assert "".join(d["text"] for k, d in events if k == "text") == "Hello from the fake model, streamed."
        usage = [d for k, d in events if k == "usage"]
        assert usage
        assert usage[-1]["total"]["input_tokens"] == 42
        final = events[-1][1]["result"]
        assert final["text"] == "Hello from the fake model, streamed."
        assert final["stop_reason"] == "end_turn"
        assert final["session_id"] == session_id
        history = c.get(f"/api/sessions/{session_id}").json()
        assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
        assert history["messages"][0]["parts"][0]["text"] == "Hi!"
        report = c.get("/api/usage", params={"session_id": session_id, "by": "model"}).json()
        assert report["total"]["calls"] == 1
        assert report["total"]["output_tokens"] == 9
    assert fake.requests[-1].headers.get("authorization") == f"Bearer {OPENAI_KEY}"


def _run_with_approval(
    service: Service, token: str, fake: FakeOpenAIServer, approve: bool
) -> tuple[list[tuple[str, dict[str, Any]]], list[int], str]:
    fake.turns.append(FakeTurn(tool_calls=[FakeToolCall(wire("t.delete_item"), {"name": "report.txt"})]))
    fake.turns.append(FakeTurn(text="All done."))
    answers: list[int] = []
    with service.client(token) as c, service.client(token) as other:
        session_id = new_session(c, mcp_servers=["t"])

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "approval_requested":
                body = {"approve": approve, "reason": None if approve else "not today"}
                answers.append(
                    other.post(f"/api/sessions/{session_id}/approvals/{data['call_id']}", json=body).status_code
                )

        with c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": "delete it"}) as response:
            assert response.status_code == 200
            events = events_of(response, on_event)
    return events, answers, session_id


def _tool_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_tool_call_waits_for_approval_then_runs(
    runs_service: Service, user: str, fake: FakeOpenAIServer, tool_log: Path
) -> None:
    events, answers, session_id = _run_with_approval(runs_service, user, fake, approve=True)
    kinds = [k for k, _ in events]
    assert answers == [204]
    assert kinds.index("approval_requested") < kinds.index("tool_started") < kinds.index("tool_finished")
    asked = dict(events)["approval_requested"]
    assert asked["name"] == "t.delete_item"
    assert asked["arguments"] == {"name": "report.txt"}
    finished = dict(events)["tool_finished"]
    assert finished["executed"] is True
    assert finished["is_error"] is False
    assert "deleted report.txt" in finished["result_text"]
    assert events[-1][0] == "final"
    assert events[-1][1]["result"]["text"] == "All done."
    assert {"tool": "delete_item", "arguments": {"name": "report.txt"}} in _tool_log(tool_log)
    with runs_service.client(user) as c:
        calls = c.get(f"/api/sessions/{session_id}").json()["tool_calls"]
    assert [(x["name"], x["status"]) for x in calls] == [("t.delete_item", "finished")]


def test_a_denied_tool_call_does_not_run(
    runs_service: Service, user: str, fake: FakeOpenAIServer, tool_log: Path
) -> None:
    before = len(_tool_log(tool_log))
    events, answers, _ = _run_with_approval(runs_service, user, fake, approve=False)
    assert answers == [204]
    finished = dict(events)["tool_finished"]
    assert finished["executed"] is False
    assert "not today" in finished["result_text"]
    assert "tool_started" not in dict(events)
    assert len(_tool_log(tool_log)) == before
    tool_message = json.dumps(fake.requests[-1].body["messages"][-1])
    assert "not today" in tool_message  # the model was told why


def test_mcp_hubs_are_reused_between_runs_and_dropped_on_config_changes(
    runs_service: Service, user: str, fake: FakeOpenAIServer, tool_log: Path
) -> None:
    pool = runs_service.app.state.routekit.hubs
    with runs_service.client(user) as c:
        opened = pool.opened
        for n in range(2):
            fake.turns.append(FakeTurn(tool_calls=[FakeToolCall(wire("t.add"), {"a": n, "b": 1})]))
            fake.turns.append(FakeTurn(text=f"sum {n + 1}"))
            session_id = new_session(c, mcp_servers=["t"])
            with c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": "add"}) as response:
                events = events_of(response)
            assert events[-1][1]["result"]["text"] == f"sum {n + 1}"
            assert dict(events)["tool_finished"]["result_text"] == str(n + 1)
        assert pool.opened - opened <= 1  # the second run leased the hub the first one returned
        assert pool.idle_count >= 1
    with runs_service.admin() as admin:  # any catalogue change drops the open hubs
        entry = {"command": sys.executable, "args": [str(TOOL_SERVER)], "env": {"AGENT_TOOL_LOG": str(tool_log)}}
        assert admin.put("/api/admin/mcp-servers/t", json=entry).status_code == 200
    assert pool.idle_count == 0


def test_run_limits_and_other_users_while_a_run_waits(runs_service: Service, user: str, fake: FakeOpenAIServer) -> None:
    fake.turns.append(FakeTurn(tool_calls=[FakeToolCall(wire("t.delete_item"), {"name": "x"})]))
    fake.turns.append(FakeTurn(text="ok"))
    _, intruder = runs_service.new_user("intruder")
    outcomes: dict[str, Any] = {}
    with runs_service.client(user) as c, runs_service.client(user) as second, runs_service.client(intruder) as bad:
        session_id = new_session(c, mcp_servers=["t"])
        other_session = new_session(c)

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind != "approval_requested":
                return
            call_id = data["call_id"]
            same = second.post(f"/api/sessions/{session_id}/messages", json={"content": "again"})
            busy = second.post(f"/api/sessions/{other_session}/messages", json={"content": "parallel"})
            outcomes["same"] = same.status_code
            outcomes["busy"] = (busy.status_code, busy.headers.get("retry-after"))
            outcomes["listed"] = [s["running"] for s in second.get("/api/sessions").json() if s["id"] == session_id]
            outcomes["intruder"] = bad.post(f"/api/sessions/{session_id}/approvals/{call_id}", json={"approve": True})
            outcomes["unknown"] = second.post(f"/api/sessions/{session_id}/approvals/nope", json={"approve": True})
            outcomes["ok"] = second.post(f"/api/sessions/{session_id}/approvals/{call_id}", json={"approve": True})

        with c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": "go"}) as response:
            events = events_of(response, on_event)
    assert outcomes["same"] == 409
    assert outcomes["busy"][0] == 429
    assert int(outcomes["busy"][1]) >= 1
    assert outcomes["listed"] == [True]
    assert outcomes["intruder"].status_code == 404
    assert outcomes["unknown"].status_code == 404
    assert outcomes["ok"].status_code == 204
    assert events[-1][0] == "final"
    with runs_service.client(user) as c:  # the slot is free again
        fake.turns.append(FakeTurn(text="second run"))
        with c.stream("POST", f"/api/sessions/{other_session}/messages", json={"content": "now"}) as response:
            assert events_of(response)[-1][1]["result"]["text"] == "second run"


def test_a_client_that_goes_away_cancels_its_run(
    runs_service: Service, user: str, fake: FakeOpenAIServer, tool_log: Path
) -> None:
    fake.turns.append(FakeTurn(tool_calls=[FakeToolCall(wire("t.delete_item"), {"name": "never.txt"})]))
    with runs_service.client(user) as c:
        session_id = new_session(c, mcp_servers=["t"])
        with c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": "go"}) as response:
            for line in response.iter_lines():
                if line == "event: approval_requested":
                    break  # leave while the run waits for approval
        running = True
        for _ in range(200):  # the service notices the disconnect and ends the run
            running = next(s["running"] for s in c.get("/api/sessions").json() if s["id"] == session_id)
            if not running:
                break
            time.sleep(0.05)
        assert running is False
        fake.turns.append(FakeTurn(text="fresh run"))
        other = new_session(c)
        with c.stream("POST", f"/api/sessions/{other}/messages", json={"content": "again"}) as response:
            assert events_of(response)[-1][1]["result"]["text"] == "fresh run"  # the run slot was released
    assert {"tool": "delete_item", "arguments": {"name": "never.txt"}} not in _tool_log(tool_log)


def test_a_provider_error_ends_the_stream_with_an_error_event(
    runs_service: Service, user: str, fake: FakeOpenAIServer
) -> None:
    from tests.fakes.base import Fault

    for _ in range(4):
        fake.faults.append(Fault(status=401, message=f"Incorrect API key provided: {OPENAI_KEY}"))
    with runs_service.client(user) as c:
        session_id = new_session(c)
        with c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": "Hi"}) as response:
            events = events_of(response)
    assert events[-1][0] == "error"
    assert events[-1][1]["kind"] == "AuthenticationError"
    assert OPENAI_KEY not in json.dumps(events)


def test_messages_to_a_missing_session_and_bad_bodies(runs_service: Service, user: str) -> None:
    with runs_service.client(user) as c:
        assert c.post("/api/sessions/nope/messages", json={"content": "x"}).status_code == 404
        session_id = new_session(c)
        assert c.post(f"/api/sessions/{session_id}/messages", json={"content": ""}).status_code == 422
        assert c.post(f"/api/sessions/{session_id}/messages", json={"text": "x"}).status_code == 422
        assert c.post(f"/api/sessions/{session_id}/approvals/x", json={"approve": True}).status_code == 404


def test_zz_no_secret_in_streams_bodies_or_logs(runs_service: Service, captured_logs: Any) -> None:
    assert len(STREAMED) > 50
    for secret in (OPENAI_KEY, ADMIN_TOKEN):
        assert not [line for line in STREAMED if secret in line]
        assert not [b for b in runs_service.bodies if secret in b]
        assert not [line for line in captured_logs.lines if secret in line]
