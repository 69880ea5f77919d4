"""Invalid Unicode: refused with 400 at the door (every JSON body), and stored bad rows never make a listing 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from storage import SQLStore
from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import OPENAI_KEY, Service

LONE = "\\ud800"  # as it appears in JSON text: an escaped lone surrogate
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def user(service: Service) -> tuple[str, str]:
    return service.new_user("unicode-user")


def config_body(fake: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "api_key": OPENAI_KEY,
        "base_url": fake.origin + "/v1",
        "default_model": "fake-model-1",
        **extra,
    }


def raw(
    client: httpx.Client, method: str, path: str, text: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.request(method, path, content=text.encode("utf-8"), headers=headers or JSON)


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    assert "not valid Unicode" in answer.json()["detail"] or "not valid UTF-8" in answer.json()["detail"]


def test_lone_surrogates_are_refused_on_every_json_route(
    service: Service, user: tuple[str, str], fake_openai: FakeOpenAIServer
) -> None:
    _, token = user
    good = json.dumps(config_body(fake_openai))
    with service.client(token) as c:
        # A provider config: in options, in the label, in a header value.
        assert_refused(raw(c, "POST", "/api/user/llm-config", good[:-1] + f', "options": {{"x": "{LONE}"}}}}'))
        assert_refused(raw(c, "POST", "/api/user/llm-config", good[:-1] + f', "label": "a{LONE}b"}}'))
        assert_refused(raw(c, "POST", "/api/user/llm-config", good[:-1] + ', "extra_headers": {"X": "\\udfff"}}'))
        # A lone low surrogate in a key, uppercase hex; and a high surrogate whose pair is missing.
        assert_refused(raw(c, "PUT", "/api/user/mcp-servers/x", '{"url": "https://public.example/", "\\uDC00": 1}'))
        assert_refused(raw(c, "PUT", "/api/user/mcp-servers/x", f'{{"url": "https://public.example/{LONE}x"}}'))
        # Charset parameter, +json subtype, and no content type at all: FastAPI parses all three as JSON.
        body = f'{{"url": "https://public.example/{LONE}"}}'
        headers = {"content-type": "application/json; charset=utf-8"}
        assert_refused(raw(c, "PUT", "/api/user/mcp-servers/x", body, headers))
        assert_refused(raw(c, "PUT", "/api/user/mcp-servers/x", body, {"content-type": "application/merge-patch+json"}))
        assert_refused(c.request("PUT", "/api/user/mcp-servers/x", content=body.encode()))
        # Raw bytes that are not UTF-8 (a UTF-8-encoded surrogate, and a stray continuation byte).
        assert_refused(c.put("/api/user/mcp-servers/x", content=b'{"url": "https://a/\xed\xa0\x80"}', headers=JSON))
        assert_refused(c.put("/api/user/mcp-servers/x", content=b'{"url": "https://a/\x80"}', headers=JSON))
        created = c.post("/api/user/llm-config", json=config_body(fake_openai))
        assert created.status_code == 201, created.text
        session = c.post("/api/sessions", json={"provider_config_id": created.json()["id"]}).json()
        assert_refused(raw(c, "POST", "/api/sessions", f'{{"title": "{LONE}"}}'))
        assert_refused(raw(c, "POST", f"/api/sessions/{session['id']}/messages", f'{{"content": "hi {LONE}"}}'))
        # Nothing of it was stored, and every listing answers.
        assert c.get("/api/user/mcp-servers").status_code == 200
        assert [s["name"] for s in c.get("/api/user/mcp-servers").json() if s["scope"] == "user"] == []
        assert len(c.get("/api/user/llm-config").json()) == 1
        assert c.get(f"/api/sessions/{session['id']}").json()["messages"] == []
    with service.admin() as admin:
        entry = f'{{"command": "python", "args": ["{LONE}"]}}'
        assert_refused(raw(admin, "PUT", "/api/admin/mcp-servers/bad", entry))
        assert_refused(raw(admin, "POST", "/api/admin/users", f'{{"name": "{LONE}"}}'))


def test_valid_text_that_looks_like_a_surrogate_passes(
    service: Service, user: tuple[str, str], fake_openai: FakeOpenAIServer
) -> None:
    _, token = user
    # An escaped pair is one astral character; an escaped backslash before "ud800" is plain text.
    body = json.dumps(config_body(fake_openai))[:-1] + ', "label": "\\ud83d\\ude00 and \\\\ud800"}'
    with service.client(token) as c:
        created = raw(c, "POST", "/api/user/llm-config", body)
        assert created.status_code == 201, created.text
        assert created.json()["label"] == "\U0001f600 and \\ud800"
        listed = {r["id"]: r for r in c.get("/api/user/llm-config").json()}
        assert listed[created.json()["id"]]["label"] == "\U0001f600 and \\ud800"
        assert listed[created.json()["id"]]["status"] == "ok"


def test_stored_bad_rows_are_listed_as_unreadable_not_500(service: Service, fake_openai: FakeOpenAIServer) -> None:
    """Rows written before the door was closed (inserted here through the store): one unreadable row, the
    others as usual; using the bad row is a clear refusal."""
    user_id, token = service.new_user("has-bad-rows")
    with service.client(token) as c:
        assert c.post("/api/user/llm-config", json=config_body(fake_openai, label="good")).status_code == 201
        good_server = c.put("/api/user/mcp-servers/good", json={"url": "https://public.example/mcp"})
        assert good_server.status_code == 200, good_server.text

    async def insert(store: SQLStore) -> str:
        bad = await store.provider_configs.create(
            user_id, "openai", api_key=OPENAI_KEY, label="bad", options={"x": "a\ud800b"}
        )
        await store.mcp_servers.save(user_id, "bad", {"type": "http", "url": "https://public.example/\udc00"})
        await store.mcp_servers.save(None, "bad-global", {"type": "stdio", "command": "x", "args": ["\ud800"]})
        return bad.id

    bad_id = service.call(insert)
    with service.client(token) as c:
        configs = c.get("/api/user/llm-config")
        assert configs.status_code == 200, configs.text
        by_label = {r["label"]: r for r in configs.json()}
        assert by_label["good"]["status"] == "ok"
        assert by_label["good"]["error"] is None
        assert by_label["bad"]["status"] == "unreadable"
        assert "not valid Unicode" in by_label["bad"]["error"]
        assert by_label["bad"]["options"] == {}
        one = c.get(f"/api/user/llm-config/{bad_id}")
        assert one.status_code == 200
        assert one.json()["status"] == "unreadable"

        servers = c.get("/api/user/mcp-servers")
        assert servers.status_code == 200, servers.text
        by_name = {s["name"]: s for s in servers.json()}
        assert by_name["good"]["status"] == "ok"
        assert by_name["good"]["config"]["url"] == "https://public.example/mcp"
        assert by_name["bad"]["status"] == "unreadable"
        assert by_name["bad"]["config"] == {}
        assert "delete it and add it again" in by_name["bad"]["error"]
        assert by_name["bad-global"]["status"] == "unreadable"

        # Using the bad config is refused with a clear answer, not an internal error.
        session = c.post("/api/sessions", json={"provider_config_id": bad_id})
        assert session.status_code == 201, session.text
        run = c.post(f"/api/sessions/{session.json()['id']}/messages", json={"content": "hi"})
        assert run.status_code == 409
        assert "not valid Unicode" in run.json()["detail"]
        # And the fix the error names works: delete it, and the listings are clean again.
        assert c.delete(f"/api/user/llm-config/{bad_id}").status_code == 204
        assert c.delete("/api/user/mcp-servers/bad").status_code == 204
        assert all(r["status"] == "ok" for r in c.get("/api/user/llm-config").json())
    with service.admin() as admin:
        catalog = admin.get("/api/admin/mcp-servers")
        assert catalog.status_code == 200, catalog.text
        assert {s["name"]: s["status"] for s in catalog.json()}["bad-global"] == "unreadable"
