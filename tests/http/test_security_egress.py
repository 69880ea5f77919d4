"""What a tenant's configs may reach, through the real service (issue 11, defects 1-4).

Each test plays the hostile user of the outside review: key-less configs pointed at an endpoint the user
controls while the service's process holds provider keys; presets whose defaults are on localhost; URLs
that are checked at save time but not at use; IPv6 spellings of loopback; redirects to internal services;
one tenant's broken config tripping another tenant's circuit breaker; header secrets echoed in errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic import FakeAnthropicServer
from tests.fakes.base import FakeProviderServer, FakeTurn, Fault
from tests.fakes.ollama import FakeOllamaServer
from tests.fakes.openai import FakeOpenAIServer
from tests.fakes.redirect import InternalService, Redirector
from tests.http.conftest import OPENAI_KEY, SECOND_KEY, Service, base_settings
from tests.http.test_runs import events_of, new_session
from tests.providers.conftest import TEST_KEYS, start_fake

CANARY = "sk-operator-canary-0123456789abcdef"
HEADER_CANARY = "operator-header-canary-value"

# What a service's operator may have in its environment: none of it may reach a user's endpoint.
OPERATOR_ENV = {
    "OPENAI_API_KEY": CANARY,
    "OPENAI_ORG_ID": "org-operator-canary",
    "OPENAI_PROJECT_ID": "proj-operator-canary",
    "OPENAI_CUSTOM_HEADERS": f"X-Operator-Secret: {HEADER_CANARY}",
    "ANTHROPIC_API_KEY": CANARY,
    "ANTHROPIC_AUTH_TOKEN": CANARY,
    "ANTHROPIC_CUSTOM_HEADERS": f"X-Operator-Secret: {HEADER_CANARY}",
    "OLLAMA_API_KEY": CANARY,
    "OLLAMA_HOST": "http://127.0.0.1:9",
    "GEMINI_API_KEY": CANARY,
    "GOOGLE_API_KEY": CANARY,
    "VLLM_API_KEY": CANARY,
}


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeProviderServer]:
    server = start_fake("anthropic")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fake_ollama() -> Iterator[FakeProviderServer]:
    server = start_fake("ollama")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def internal() -> Iterator[InternalService]:
    server = InternalService().start()
    try:
        yield server
    finally:
        server.stop()


def _allowing(*servers: Any, **overrides: Any) -> Any:
    first, *rest = servers
    settings = base_settings(first, **overrides)
    hosts = set(settings.allowed_hosts) | {f"127.0.0.1:{s.port}" for s in rest}
    return replace(settings, allowed_hosts=frozenset(hosts))


@pytest.fixture(scope="module")
def egress_service(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
    fake_ollama: FakeOllamaServer,
    captured_logs: Any,
) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("egress"), _allowing(fake_openai, fake_anthropic, fake_ollama)).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OPERATOR_ENV.items():
        monkeypatch.setenv(name, value)


def _config(client: httpx.Client, **body: Any) -> httpx.Response:
    body.setdefault("default_model", "fake-model-1")
    return client.post("/api/user/llm-config", json=body)


def _run(client: httpx.Client, config_id: str, text: str = "hi") -> list[tuple[str, dict[str, Any]]]:
    session = new_session(client, provider_config_id=config_id)
    with client.stream("POST", f"/api/sessions/{session}/messages", json={"content": text}) as response:
        assert response.status_code == 200, response.read()
        return events_of(response)


def _wire_text(server: FakeProviderServer, since: int = 0) -> str:
    return "\n".join(f"{r.path} {r.headers} {r.body!r}" for r in server.requests[since:])


# --------------------------------------------------------------------------- 1. the operator's environment


@pytest.mark.usefixtures("operator_env")
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "groq", "mistral", "azure"])
def test_a_keyless_config_of_a_provider_that_needs_a_key_is_refused(
    egress_service: Service, fake_openai: FakeOpenAIServer, provider: str
) -> None:
    _, token = egress_service.new_user(f"keyless-{provider}")
    with egress_service.client(token) as c:
        answer = _config(c, provider=provider, base_url=fake_openai.origin + "/v1")
    assert answer.status_code == 400, answer.text
    assert "has no API key" in answer.json()["detail"]
    assert "never uses its own" in answer.json()["detail"]
    assert CANARY not in answer.text


@pytest.mark.usefixtures("operator_env")
def test_no_operator_credential_reaches_a_users_endpoint(
    egress_service: Service,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
    fake_ollama: FakeOllamaServer,
) -> None:
    """A user's key-less openai-compatible and ollama configs, and a keyed anthropic one, each checked,
    listed and run: no request to the user's endpoints carries anything from the operator's environment."""
    marks = {s: len(s.requests) for s in (fake_openai, fake_anthropic, fake_ollama)}
    _, token = egress_service.new_user("env-prober")
    with egress_service.client(token) as c:
        configs = [
            _config(c, provider="openai-compatible", base_url=fake_openai.origin + "/v1"),
            _config(c, provider="anthropic", api_key=TEST_KEYS["anthropic"], base_url=fake_anthropic.origin),
            _config(c, provider="ollama", base_url=fake_ollama.origin),
        ]
        for created in configs:
            assert created.status_code == 201, created.text
            config_id = created.json()["id"]
            assert c.post(f"/api/user/llm-config/{config_id}/test").json()["ok"] is True
            provider = created.json()["provider"]
            assert c.get(f"/api/providers/{provider}/models", params={"config_id": config_id}).status_code == 200
            for server in (fake_openai, fake_anthropic, fake_ollama):
                server.turns.append(FakeTurn(text="hello"))
            assert _run(c, config_id)[-1][0] == "final"
    for server, mark in marks.items():
        assert len(server.requests) > mark, f"{server} got no request"
        wire = _wire_text(server, mark)
        for secret in (CANARY, HEADER_CANARY, "org-operator-canary", "proj-operator-canary"):
            assert secret not in wire
        assert "x-operator-secret" not in wire.lower()
    openai_auth = {r.headers.get("authorization") for r in fake_openai.requests[marks[fake_openai] :]}
    assert openai_auth == {"Bearer not-needed"}  # the placeholder the SDK insists on, never a key
    assert all("authorization" not in r.headers for r in fake_ollama.requests[marks[fake_ollama] :])


@pytest.mark.usefixtures("operator_env")
def test_vertex_project_mode_would_lend_the_services_cloud_credentials(egress_service: Service) -> None:
    _, token = egress_service.new_user("vertex-adc")
    with egress_service.client(token) as c:
        answer = _config(c, provider="vertex", options={"project": "p", "location": "us-central1"})
    assert answer.status_code == 400, answer.text
    assert "application default credentials" in answer.json()["detail"]


# --------------------------------------------------------------------------- 2. SSRF


@pytest.mark.parametrize("preset", ["vllm", "lmstudio", "llamacpp", "ollama"])
def test_presets_whose_default_is_localhost_are_checked_too(egress_service: Service, preset: str) -> None:
    _, token = egress_service.new_user(f"default-{preset}")
    with egress_service.client(token) as c:
        answer = _config(c, provider=preset)
    assert answer.status_code == 400, answer.text
    assert "loopback" in answer.json()["detail"]


@pytest.mark.parametrize(
    "host",
    [
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
        "[::127.0.0.1]",  # IPv4-compatible
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    ],
)
def test_ipv6_forms_of_internal_addresses_are_refused(egress_service: Service, host: str) -> None:
    _, token = egress_service.new_user(f"v6-{abs(hash(host))}")
    with egress_service.client(token) as c:
        answer = _config(c, provider="openai", api_key=OPENAI_KEY, base_url=f"http://{host}/v1")
        mcp = c.put("/api/user/mcp-servers/v6", json={"url": f"http://{host}/mcp"})
    assert answer.status_code == 400, answer.text
    assert mcp.status_code == 400, mcp.text


def test_a_redirect_to_an_internal_service_is_not_followed(
    tmp_path: Path, fake_openai: FakeOpenAIServer, internal: InternalService
) -> None:
    """The user's endpoint is allowed (here: an allowed host) but answers with a redirect to an internal
    service: neither the key check, the model list nor a run follows it."""
    redirector = Redirector(internal.origin).start()
    svc = Service(tmp_path, _allowing(fake_openai, redirector)).start()
    try:
        _, token = svc.new_user("redirector")
        with svc.client(token) as c:
            created = _config(c, provider="openai", api_key=OPENAI_KEY, base_url=redirector.origin + "/v1")
            assert created.status_code == 201, created.text
            config_id = created.json()["id"]
            check = c.post(f"/api/user/llm-config/{config_id}/test").json()
            models = c.get("/api/providers/openai/models", params={"config_id": config_id})
            events = _run(c, config_id)
    finally:
        svc.stop()
        redirector.stop()
    assert check["ok"] is False
    assert "redirect" in check["detail"]
    assert models.status_code == 502
    assert InternalService.SECRET not in models.text
    assert events[-1][0] == "error"
    assert "redirect" in events[-1][1]["error"]
    assert redirector.hits
    assert internal.hits == []


def test_urls_are_checked_at_use_not_only_when_saved(tmp_path: Path, fake_openai: FakeOpenAIServer) -> None:
    """Saved while the operator allowed the host; after a restart without that permission the config is
    refused at every use, and not one request leaves."""
    first = Service(tmp_path, base_settings(fake_openai)).start()
    try:
        _, token = first.new_user("allowed-once")
        with first.client(token) as c:
            created = _config(c, provider="openai", api_key=OPENAI_KEY, base_url=fake_openai.origin + "/v1")
            assert created.status_code == 201, created.text
            config_id = created.json()["id"]
            session = new_session(c, provider_config_id=config_id)
    finally:
        first.stop()
    before = len(fake_openai.requests)
    second = Service(tmp_path, base_settings(fake_openai, allowed_hosts=frozenset())).start()
    try:
        with second.client(token) as c:
            check = c.post(f"/api/user/llm-config/{config_id}/test")
            models = c.get("/api/providers/openai/models", params={"config_id": config_id})
            run = c.post(f"/api/sessions/{session}/messages", json={"content": "hi"})
    finally:
        second.stop()
    for answer in (check, models, run):
        assert answer.status_code == 400, answer.text
        assert "loopback" in answer.json()["detail"]
    assert len(fake_openai.requests) == before


# --------------------------------------------------------------------------- 3. circuit breakers


@pytest.mark.parametrize("keyed", [True, False], ids=["own-keys", "keyless-endpoint"])
def test_one_tenants_failures_do_not_open_another_tenants_breaker(
    egress_service: Service, fake_openai: FakeOpenAIServer, keyed: bool
) -> None:
    """Tenant A's calls fail (5xx) until A's breaker opens; tenant B, on the same endpoint (with its own key, or
    with no key at all, as on a key-less compatible endpoint), is still served."""
    _, token_a = egress_service.new_user(f"breaker-a-{keyed}")
    _, token_b = egress_service.new_user(f"breaker-b-{keyed}")
    base_url = fake_openai.origin + "/v1"
    provider = "openai" if keyed else "openai-compatible"
    keys = ({"api_key": OPENAI_KEY}, {"api_key": SECOND_KEY}) if keyed else ({}, {})
    with egress_service.client(token_a) as a, egress_service.client(token_b) as b:
        config_a = _config(a, provider=provider, base_url=base_url, **keys[0]).json()["id"]
        config_b = _config(b, provider=provider, base_url=base_url, **keys[1]).json()["id"]
        fake_openai.reset()
        fake_openai.faults.extend(Fault(status=503, message="down") for _ in range(5))
        errors = [_run(a, config_a)[-1] for _ in range(2)]  # 3 attempts each: 5 fail, then the breaker is open
        assert all(kind == "error" for kind, _ in errors)
        assert "circuit breaker open" in errors[-1][1]["error"]
        assert len(fake_openai.requests) == 5
        fake_openai.turns.append(FakeTurn(text="B is served"))
        events = _run(b, config_b)
    assert events[-1][0] == "final"
    assert events[-1][1]["result"]["text"] == "B is served"
    assert len(fake_openai.requests) == 6
    if keyed:
        assert fake_openai.requests[-1].headers["authorization"] == f"Bearer {SECOND_KEY}"


def test_a_header_no_http_library_can_send_is_refused_at_the_door(
    egress_service: Service, fake_openai: FakeOpenAIServer
) -> None:
    """The review's way to trip the breaker without reaching the network: a header value with a line break
    (the client refused to send it, and the failure counted against the endpoint). Now it is never stored."""
    _, token = egress_service.new_user("bad-header")
    with egress_service.client(token) as c:
        for headers in ({"X-A": "v\r\nX-Injected: 1"}, {"Bad Name": "v"}):
            answer = _config(
                c, provider="openai", api_key=OPENAI_KEY, base_url=fake_openai.origin + "/v1", extra_headers=headers
            )
            assert answer.status_code == 400, answer.text
            assert "extra_headers" in answer.json()["detail"]
            assert "X-Injected" not in answer.text
        assert c.get("/api/user/llm-config").json() == []


# --------------------------------------------------------------------------- 4. header secrets


def test_header_secrets_never_come_back(egress_service: Service, fake_openai: FakeOpenAIServer) -> None:
    """The endpoint echoes the user's header value in its errors: /test, /models and the run's error event
    show it redacted, like the key."""
    secret = "tenant-header-secret-4242"
    _, token = egress_service.new_user("header-secret")
    with egress_service.client(token) as c:
        created = _config(
            c,
            provider="openai",
            api_key=OPENAI_KEY,
            base_url=fake_openai.origin + "/v1",
            extra_headers={"X-Tenant-Trace": secret},
        )
        assert created.status_code == 201, created.text
        assert secret not in created.text
        config_id = created.json()["id"]
        echo = f"rejected header X-Tenant-Trace={secret}"
        fake_openai.faults.append(Fault(status=401, message=echo))
        check = c.post(f"/api/user/llm-config/{config_id}/test")
        fake_openai.faults.append(Fault(status=403, message=echo))
        models = c.get("/api/providers/openai/models", params={"config_id": config_id})
        fake_openai.faults.extend(Fault(status=400, message=echo) for _ in range(3))
        events = _run(c, config_id)
        listing = c.get("/api/user/llm-config")
    assert check.json()["ok"] is False
    assert models.status_code in (409, 502)
    assert events[-1][0] == "error"
    for shown in (check.text, models.text, str(events), listing.text):
        assert secret not in shown
    assert "[redacted]" in check.text
