"""The HTTP API through a real uvicorn: every endpoint, per-user isolation, limits, SSRF, secrets."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from providers.types import Usage
from storage import SQLStore, UsageEntry
from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import ADMIN_TOKEN, OPENAI_KEY, SECOND_KEY, Service, base_settings

MODULE_SECRETS = [OPENAI_KEY, SECOND_KEY, ADMIN_TOKEN, "hdr-secret-value-123456", "mcp-bearer-secret-98765"]


@pytest.fixture(scope="module")
def alice(service: Service) -> tuple[str, str]:
    return service.new_user("alice")


@pytest.fixture(scope="module")
def bob(service: Service) -> tuple[str, str]:
    return service.new_user("bob")


@pytest.fixture(scope="module")
def alice_config(service: Service, alice: tuple[str, str], fake_openai: FakeOpenAIServer) -> dict[str, Any]:
    with service.client(alice[1]) as c:
        answer = c.post(
            "/api/user/llm-config",
            json={
                "provider": "openai",
                "api_key": OPENAI_KEY,
                "label": "fake openai",
                "base_url": fake_openai.origin + "/v1",
                "default_model": "fake-model-1",
                "extra_headers": {"X-Extra": "hdr-secret-value-123456"},
            },
        )
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()
    return data


# --------------------------------------------------------------------------- authentication


def test_health_docs_and_openapi(service: Service) -> None:
    with service.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        docs = c.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        spec = c.get("/openapi.json").json()
    assert "/api/sessions/{session_id}/messages" in spec["paths"]
    assert "/api/user/llm-config/{config_id}/test" in spec["paths"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer rk_not-a-real-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no-token", "wrong-token", "wrong-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/user/llm-config"),
        ("POST", "/api/user/llm-config"),
        ("GET", "/api/providers"),
        ("GET", "/api/providers/openai/models"),
        ("GET", "/api/user/mcp-servers"),
        ("GET", "/api/sessions"),
        ("POST", "/api/sessions"),
        ("GET", "/api/usage"),
    ],
)
def test_every_user_endpoint_needs_a_valid_token(
    service: Service, headers: dict[str, str], method: str, path: str
) -> None:
    with service.client() as c:
        answer = c.request(method, path, headers=headers, json={} if method == "POST" else None)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_admin_endpoints_need_the_admin_token(service: Service, alice: tuple[str, str]) -> None:
    with service.client(alice[1]) as c:
        assert c.post("/api/admin/users", json={"name": "mallory"}).status_code == 401
        assert c.get("/api/admin/mcp-servers").status_code == 401
    with service.client() as c:
        assert c.post("/api/admin/users", json={"name": "mallory"}).status_code == 401


def test_admin_issues_lists_and_revokes_tokens(service: Service) -> None:
    user_id, token = service.new_user("carol")
    with service.admin() as admin:
        assert admin.post("/api/admin/users", json={"name": "carol"}).status_code == 409
        extra = admin.post(f"/api/admin/users/{user_id}/tokens", json={"label": "laptop"})
        assert extra.status_code == 201
        listed = admin.get(f"/api/admin/users/{user_id}/tokens").json()
        assert {t["label"] for t in listed} == {"created with the user", "laptop"}
        assert all("token" not in t for t in listed)
        assert admin.get("/api/admin/users/nope/tokens").status_code == 404
    with service.client(extra.json()["token"]) as c:
        assert c.get("/api/sessions").status_code == 200
    with service.admin() as admin:
        revoked = admin.delete(f"/api/admin/users/{user_id}/tokens/{extra.json()['token_id']}")
        assert revoked.status_code == 204
        assert admin.delete(f"/api/admin/users/{user_id}/tokens/unknown").status_code == 404
    with service.client(extra.json()["token"]) as c:
        assert c.get("/api/sessions").status_code == 401
    with service.client(token) as c:
        assert c.get("/api/sessions").status_code == 200


# --------------------------------------------------------------------------- provider keys


def test_provider_catalogue(service: Service, alice: tuple[str, str]) -> None:
    with service.client(alice[1]) as c:
        providers = c.get("/api/providers").json()
    names = {p["name"] for p in providers}
    assert {"anthropic", "openai", "gemini", "ollama"} <= names
    openai = next(p for p in providers if p["name"] == "openai")
    assert openai["requires_key"] is True
    assert openai["family"] == "openai"


def test_config_is_answered_masked(service: Service, alice: tuple[str, str], alice_config: dict[str, Any]) -> None:
    assert alice_config["api_key_masked"] == "****" + OPENAI_KEY[-4:]
    assert alice_config["extra_header_names"] == ["X-Extra"]
    assert alice_config["is_default"] is True
    assert alice_config["status"] == "ok"
    assert "api_key" not in alice_config
    with service.client(alice[1]) as c:
        listed = c.get("/api/user/llm-config").json()
        one = c.get(f"/api/user/llm-config/{alice_config['id']}").json()
    assert [x["id"] for x in listed] == [alice_config["id"]]
    assert one == alice_config


def test_config_test_and_models_against_the_fake(
    service: Service, alice: tuple[str, str], alice_config: dict[str, Any], fake_openai: FakeOpenAIServer
) -> None:
    with service.client(alice[1]) as c:
        check = c.post(f"/api/user/llm-config/{alice_config['id']}/test")
        models = c.get("/api/providers/openai/models")
        by_id = c.get("/api/providers/openai/models", params={"config_id": alice_config["id"]})
        missing = c.get("/api/providers/anthropic/models")
        unknown = c.get("/api/providers/nope/models")
    assert check.status_code == 200, check.text
    assert check.json()["ok"] is True, check.text
    assert models.status_code == 200
    assert [m["id"] for m in models.json()] == ["fake-model-1", "fake-model-2"]
    assert by_id.json() == models.json()
    assert missing.status_code == 404
    assert "POST /api/user/llm-config" in missing.json()["detail"]
    assert unknown.status_code == 404
    seen = [r for r in fake_openai.requests if r.path.endswith("/models")]
    assert seen
    assert seen[-1].headers.get("authorization") == f"Bearer {OPENAI_KEY}"


def test_a_rejected_key_tests_not_ok_without_echoing_it(
    service: Service, alice: tuple[str, str], fake_openai: FakeOpenAIServer
) -> None:
    with service.client(alice[1]) as c:
        created = c.post(
            "/api/user/llm-config",
            json={"provider": "openai", "api_key": SECOND_KEY, "base_url": fake_openai.origin + "/v1"},
        ).json()
        assert created["is_default"] is False  # the first openai config stays the default
        fake_openai.valid_keys = {OPENAI_KEY}
        try:
            check = c.post(f"/api/user/llm-config/{created['id']}/test")
        finally:
            fake_openai.valid_keys = None
        assert check.status_code == 200
        assert check.json()["ok"] is False
        assert SECOND_KEY[-8:] not in check.text
        assert c.delete(f"/api/user/llm-config/{created['id']}").status_code == 204
        assert c.get(f"/api/user/llm-config/{created['id']}").status_code == 404


def test_update_key_and_default(service: Service, alice: tuple[str, str], fake_openai: FakeOpenAIServer) -> None:
    with service.client(alice[1]) as c:
        first = c.get("/api/user/llm-config").json()[0]
        second = c.post(
            "/api/user/llm-config",
            json={"provider": "openai", "api_key": "sk-test-placeholder-000000", "base_url": fake_openai.origin},
        ).json()
        updated = c.put(f"/api/user/llm-config/{second['id']}", json={"api_key": SECOND_KEY, "default": True})
        assert updated.status_code == 200, updated.text
        assert updated.json()["api_key_masked"] == "****" + SECOND_KEY[-4:]
        assert updated.json()["is_default"] is True
        assert c.get(f"/api/user/llm-config/{first['id']}").json()["is_default"] is False
        back = c.put(f"/api/user/llm-config/{first['id']}", json={"default": True}).json()
        assert back["is_default"] is True
        assert back["extra_header_names"] == ["X-Extra"]
        headers_only = c.put(
            f"/api/user/llm-config/{second['id']}", json={"extra_headers": {"X-Other": "hdr-secret-value-123456"}}
        ).json()
        assert headers_only["api_key_masked"] == "****" + SECOND_KEY[-4:]  # the key was kept
        assert headers_only["extra_header_names"] == ["X-Other"]
        assert c.delete(f"/api/user/llm-config/{second['id']}").status_code == 204


def test_config_validation_never_echoes_the_key(service: Service, alice: tuple[str, str]) -> None:
    with service.client(alice[1]) as c:
        bad_field = c.post("/api/user/llm-config", json={"provider": "openai", "api_key": OPENAI_KEY, "bogus": 1})
        bad_type = c.post("/api/user/llm-config", json={"provider": "openai", "api_key": {"k": OPENAI_KEY}})
        unknown = c.post("/api/user/llm-config", json={"provider": "nope", "api_key": OPENAI_KEY})
        bad_url = c.post(
            "/api/user/llm-config", json={"provider": "openai", "api_key": OPENAI_KEY, "base_url": "ftp://x.example"}
        )
    for answer in (bad_field, bad_type):
        assert answer.status_code == 422
        assert OPENAI_KEY not in answer.text
    assert unknown.status_code == 400
    assert "GET /api/providers" in unknown.json()["detail"]
    assert bad_url.status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/v1",
        "http://169.254.169.254/latest",
        "http://10.0.0.7/v1",
        "http://localhost:11434",
        "http://internal.example/v1",
    ],
)
def test_provider_base_url_is_checked_for_ssrf(service: Service, alice: tuple[str, str], url: str) -> None:
    with service.client(alice[1]) as c:
        answer = c.post("/api/user/llm-config", json={"provider": "openai", "api_key": OPENAI_KEY, "base_url": url})
    assert answer.status_code == 400, answer.text


# --------------------------------------------------------------------------- MCP servers


def test_user_adds_a_remote_mcp_server_with_secret_headers(service: Service, alice: tuple[str, str]) -> None:
    entry = {
        "url": "https://public.example/mcp",
        "headers": {"Authorization": "Bearer mcp-bearer-secret-98765"},
        "allowTools": ["search*"],
    }
    with service.client(alice[1]) as c:
        saved = c.put("/api/user/mcp-servers/docs", json=entry)
        assert saved.status_code == 200, saved.text
        listed = c.get("/api/user/mcp-servers").json()
    data = saved.json()
    assert data["scope"] == "user"
    assert data["transport"] == "http"
    assert data["config"] == {"type": "http", "url": "https://public.example/mcp", "allow_tools": ["search*"]}
    assert data["headers_masked"] == {"Authorization": "****8765"}
    assert [s["name"] for s in listed if s["scope"] == "user"] == ["docs"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/mcp",
        "http://[::1]/mcp",
        "http://[::ffff:127.0.0.1]/mcp",
        "http://2130706433/mcp",
        "http://0x7f.1/mcp",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/mcp",
        "http://172.16.3.4/mcp",
        "http://192.168.0.10/mcp",
        "http://100.64.0.1/mcp",
        "http://0.0.0.0/mcp",
        "http://localhost:3000/mcp",
        "http://internal.example/mcp",
        "http://metadata.example/mcp",
        "http://mixed.example/mcp",
        "http://v6-local.example/mcp",
        "http://does-not-resolve.example/mcp",
        "file:///etc/passwd",
        "http://user:pw@public.example/mcp",
    ],
)
def test_ssrf_urls_are_refused(service: Service, alice: tuple[str, str], url: str) -> None:
    with service.client(alice[1]) as c:
        answer = c.put("/api/user/mcp-servers/evil", json={"url": url})
        names = [s["name"] for s in c.get("/api/user/mcp-servers").json()]
    assert answer.status_code == 400, answer.text
    assert "evil" not in names


def test_a_user_cannot_add_a_stdio_server(service: Service, alice: tuple[str, str]) -> None:
    with service.client(alice[1]) as c:
        by_command = c.put("/api/user/mcp-servers/shell", json={"command": "bash", "args": ["-c", "id"]})
        by_type = c.put("/api/user/mcp-servers/shell", json={"type": "stdio", "command": "sh"})
        env_ref = c.put("/api/user/mcp-servers/leak", json={"url": "https://public.example/${HOME}"})
        names = [s["name"] for s in c.get("/api/user/mcp-servers").json()]
    assert by_command.status_code == 403
    assert "admin catalogue" in by_command.json()["detail"]
    assert by_type.status_code == 403
    assert env_ref.status_code == 400
    assert "shell" not in names
    assert "leak" not in names


def test_admin_catalogue_offers_stdio_servers(service: Service, alice: tuple[str, str], bob: tuple[str, str]) -> None:
    with service.admin() as admin:
        saved = admin.put(
            "/api/admin/mcp-servers/files",
            json={"command": "npx", "args": ["-y", "srv"], "env": {"TOKEN": "abcdefgh1234"}},
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["env_masked"] == {"TOKEN": "****1234"}
        assert [s["name"] for s in admin.get("/api/admin/mcp-servers").json()] == ["files"]
    for _, token in (alice, bob):
        with service.client(token) as c:
            catalog = [s for s in c.get("/api/user/mcp-servers").json() if s["scope"] == "catalog"]
            assert [s["name"] for s in catalog] == ["files"]
            assert c.delete("/api/user/mcp-servers/files").status_code == 404  # not theirs to delete
    with service.admin() as admin:
        assert admin.delete("/api/admin/mcp-servers/files").status_code == 204
        assert admin.delete("/api/admin/mcp-servers/files").status_code == 404


def test_private_targets_allowed_when_the_admin_says_so(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer
) -> None:
    svc = Service(tmp_path_factory.mktemp("open"), base_settings(fake_openai, allow_private_networks=True)).start()
    try:
        _, token = svc.new_user("dave")
        with svc.client(token) as c:
            answer = c.put("/api/user/mcp-servers/local", json={"url": "http://127.0.0.1:8080/mcp"})
        assert answer.status_code == 200, answer.text
    finally:
        svc.stop()


# --------------------------------------------------------------------------- sessions and isolation


def test_sessions_create_list_history_delete(
    service: Service, alice: tuple[str, str], alice_config: dict[str, Any]
) -> None:
    with service.client(alice[1]) as c:
        created = c.post("/api/sessions", json={"title": "first", "mcp_servers": ["docs"]})
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["provider_config_id"] == alice_config["id"]
        assert session["model"] == "fake-model-1"
        assert session["mcp_servers"] == ["docs"]
        explicit = c.post("/api/sessions", json={"provider_config_id": alice_config["id"], "model": "fake-model-2"})
        assert explicit.json()["model"] == "fake-model-2"
        assert c.post("/api/sessions", json={"mcp_servers": ["nope"]}).status_code == 400
        assert c.post("/api/sessions", json={"provider": "anthropic"}).status_code == 400
        listed = [s["id"] for s in c.get("/api/sessions").json()]
        assert session["id"] in listed
        assert explicit.json()["id"] in listed
        history = c.get(f"/api/sessions/{session['id']}").json()
        assert history["session"]["id"] == session["id"]
        assert history["messages"] == []
        assert c.delete(f"/api/sessions/{explicit.json()['id']}").status_code == 204
        assert c.get(f"/api/sessions/{explicit.json()['id']}").status_code == 404


def test_another_users_resources_answer_404(
    service: Service, alice: tuple[str, str], bob: tuple[str, str], alice_config: dict[str, Any]
) -> None:
    with service.client(alice[1]) as c:
        session = c.post("/api/sessions", json={"title": "private"}).json()
    config_id, session_id = alice_config["id"], session["id"]
    with service.client(bob[1]) as c:
        assert c.get("/api/user/llm-config").json() == []
        assert c.get("/api/sessions").json() == []
        for method, path, body in [
            ("GET", f"/api/user/llm-config/{config_id}", None),
            ("PUT", f"/api/user/llm-config/{config_id}", {"default": True}),
            ("DELETE", f"/api/user/llm-config/{config_id}", None),
            ("POST", f"/api/user/llm-config/{config_id}/test", None),
            ("GET", "/api/providers/openai/models", None),
            ("GET", f"/api/providers/openai/models?config_id={config_id}", None),
            ("GET", f"/api/sessions/{session_id}", None),
            ("DELETE", f"/api/sessions/{session_id}", None),
            ("POST", f"/api/sessions/{session_id}/messages", {"content": "hi"}),
            ("POST", f"/api/sessions/{session_id}/approvals/call_1", {"approve": True}),
            ("GET", f"/api/usage?session_id={session_id}", None),
            ("DELETE", "/api/user/mcp-servers/docs", None),
        ]:
            answer = c.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
        assert c.post("/api/sessions", json={"provider_config_id": config_id}).status_code == 404
        assert "docs" not in [s["name"] for s in c.get("/api/user/mcp-servers").json()]
    with service.client(alice[1]) as c:  # still there for its owner
        assert c.get(f"/api/user/llm-config/{config_id}").status_code == 200
        assert c.get(f"/api/sessions/{session_id}").status_code == 200


# --------------------------------------------------------------------------- usage


def test_usage_grouping_is_per_user(
    service: Service, alice: tuple[str, str], bob: tuple[str, str], alice_config: dict[str, Any]
) -> None:
    alice_id, bob_id = alice[0], bob[0]

    async def write(store: SQLStore) -> None:
        session = await store.sessions.create(alice_id, provider_config_id=alice_config["id"], model="gpt-4.1-mini")
        await store.usage.record_many(
            [
                UsageEntry(
                    alice_id,
                    "openai",
                    "gpt-4.1-mini",
                    Usage(input_tokens=1000, output_tokens=100),
                    session_id=session.id,
                ),
                UsageEntry(alice_id, "openai", "gpt-4.1-mini", Usage(input_tokens=2000, output_tokens=200)),
                UsageEntry(alice_id, "anthropic", "claude-sonnet-4-5", Usage(input_tokens=10, output_tokens=None)),
                UsageEntry(bob_id, "openai", "gpt-4.1-mini", Usage(input_tokens=99999, output_tokens=9999)),
            ]
        )

    service.call(write)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with service.client(alice[1]) as c:
        by_provider = c.get("/api/usage", params={"by": "provider"}).json()
        by_day_provider = c.get("/api/usage", params=[("by", "day"), ("by", "provider")]).json()
        future = c.get("/api/usage", params={"since": "2999-01-01"}).json()
        assert c.get("/api/usage", params={"since": "yesterday"}).status_code == 400
        assert c.get("/api/usage", params={"by": "password"}).status_code == 422
    groups = {g["group"]["provider"]: g for g in by_provider["groups"]}
    assert set(groups) == {"anthropic", "openai"}
    assert groups["openai"]["calls"] == 2
    assert groups["openai"]["input_tokens"] == 3000
    assert groups["anthropic"]["tokens_unknown"] == 1
    assert groups["anthropic"]["cost_unknown"] == 1
    assert float(groups["openai"]["cost_usd"]) > 0
    assert by_provider["total"]["calls"] == 3  # bob's call is not alice's
    assert all(g["group"]["day"] == today for g in by_day_provider["groups"])
    assert by_day_provider["by"] == ["day", "provider"]
    assert future["groups"] == []
    assert future["total"] is None
    with service.client(bob[1]) as c:
        bob_usage = c.get("/api/usage", params={"by": "provider"}).json()
    assert bob_usage["total"]["calls"] == 1
    assert bob_usage["total"]["input_tokens"] == 99999


# --------------------------------------------------------------------------- limits


def test_oversized_bodies_are_refused(service: Service, alice: tuple[str, str]) -> None:
    big = {"provider": "openai", "api_key": OPENAI_KEY, "label": "x" * (70 * 1024)}
    with service.client(alice[1]) as c:
        declared = c.post("/api/user/llm-config", json=big)

        def chunks() -> Any:  # no Content-Length: chunked transfer encoding
            for _ in range(80):
                yield b"x" * 1024

        chunked = c.post("/api/sessions", content=chunks(), headers={"content-type": "application/json"})
        assert len(c.get("/api/user/llm-config").json()) == 1
    assert declared.status_code == 413
    assert chunked.status_code == 413
    assert "64" not in declared.json()["detail"] or "limit" in declared.json()["detail"]


def test_rate_limit_answers_429_with_retry_after(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer
) -> None:
    svc = Service(
        tmp_path_factory.mktemp("rate"), base_settings(fake_openai, requests_per_minute=5, failed_auth_per_minute=5)
    ).start()
    try:
        _, token = svc.new_user("erin")
        _, other = svc.new_user("frank")
        with svc.client(token) as c:
            codes = [c.get("/api/sessions").status_code for _ in range(6)]
            limited = c.get("/api/sessions")
        assert codes == [200] * 5 + [429]
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        with svc.client(other) as c:  # per user: frank is not limited by erin's requests
            assert c.get("/api/sessions").status_code == 200
        with svc.client("rk_guessed-token") as c:  # wrong tokens are limited per client address
            guesses = [c.get("/api/sessions").status_code for _ in range(6)]
        assert guesses == [401] * 5 + [429]
    finally:
        svc.stop()


def test_settings_are_frozen_and_default_safe() -> None:
    from agent.http import ServiceSettings

    settings = ServiceSettings()
    assert settings.allow_private_networks is False
    assert settings.admin_token_sha256 is None
    assert not settings.admin_token_matches("anything")
    with pytest.raises(AttributeError):
        settings.max_body_bytes = 1  # type: ignore[misc]
    assert replace(settings, max_body_bytes=1).max_body_bytes == 1


def test_admin_api_disabled_without_admin_token(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer
) -> None:
    svc = Service(tmp_path_factory.mktemp("noadmin"), base_settings(fake_openai, admin_token_sha256=None)).start()
    try:
        with svc.client(ADMIN_TOKEN) as c:
            assert c.post("/api/admin/users", json={"name": "x"}).status_code == 403
    finally:
        svc.stop()


# --------------------------------------------------------------------------- the page


def test_page_and_static_files_are_served_with_a_strict_policy(service: Service) -> None:
    with service.client() as c:
        page = c.get("/")
        script = c.get("/static/app.js")
        style = c.get("/static/app.css")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<html lang="en">' in page.text
    assert 'name="viewport"' in page.text
    for attribute in ('src="http', "src='http", 'href="http', "href='http", "//cdn"):
        assert attribute not in page.text  # nothing loaded from elsewhere
    assert 'fetch("http' not in script.text
    assert "import " not in script.text
    assert script.status_code == 200
    assert style.status_code == 200
    assert page.headers["x-content-type-options"] == "nosniff"


# --------------------------------------------------------------------------- last: the secret scan


def test_zz_no_secret_in_any_response_or_log(service: Service, captured_logs: Any) -> None:
    assert len(service.bodies) > 50  # the scan saw the traffic of this module
    assert any("uvicorn.access" in line for line in captured_logs.lines)  # and the access log
    for secret in MODULE_SECRETS:
        leaks = [b for b in service.bodies if secret in b]
        assert not leaks, f"a response body or header carried a test secret: {leaks[0][:200]}"
        logged = [line for line in captured_logs.lines if secret in line]
        assert not logged, f"a log line carried a test secret: {logged[0][:200]}"
