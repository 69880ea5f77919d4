"""OAuth for remote servers: the ``auth`` config section, the token-store protocol, the headless redirect handler,
and the hub authorizing against a protected server on 127.0.0.1 (the full flows are the conformance auth/* tests)."""

from __future__ import annotations

import base64
import inspect
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mcp_bridge import (
    AuthorizationResponse,
    HeadlessRedirectHandler,
    InMemoryTokenStore,
    McpAuthError,
    McpConfigError,
    McpHub,
    TokenStore,
    parse_config,
)

# --------------------------------------------------------------------------- config


def _server(entry: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    return parse_config({"mcpServers": {"r": entry}}, environ or {}).servers["r"]


def test_auth_section_fields_expansion_and_secrecy() -> None:
    entry = {
        "url": "https://api.example/mcp",
        "auth": {
            "clientId": "app-1",
            "clientSecret": "${SECRET}",
            "scope": "read write",
            "issuer": "https://as.example",
            "tokenEndpointAuthMethod": "client_secret_post",
        },
    }
    server = _server(entry, {"SECRET": "hunter2-secret"})
    auth = server.auth
    assert auth is not None
    assert (auth.client_id, auth.scope, auth.issuer) == ("app-1", "read write", "https://as.example")
    assert auth.token_endpoint_auth_method == "client_secret_post"
    assert auth.client_secret is not None
    assert auth.client_secret.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(server)
    assert "hunter2" not in str(server.model_dump())


@pytest.mark.parametrize(
    ("auth", "grant"),
    [
        (True, "authorization_code"),
        ({}, "authorization_code"),
        ({"client_id": "c"}, "authorization_code"),  # pre-registered public client
        ({"client_id": "c", "client_secret": "s"}, "auto"),  # the authorization server's metadata decides
        ({"client_id": "c", "private_key": "-----BEGIN PRIVATE KEY-----"}, "client_credentials"),
        (
            {
                "client_id": "c",
                "client_secret": "s",
                "idp": {"token_endpoint": "https://idp.example/token", "client_id": "i", "id_token": "t"},
            },
            "enterprise",
        ),
        ({"grant": "client_credentials", "client_id": "c", "client_secret": "s"}, "client_credentials"),
        ({"client_id": "workload", "assertion": "eyJ..."}, "jwt_bearer"),
        ({"client_id": "workload", "assertion_file": "/var/run/token"}, "jwt_bearer"),
    ],
)
def test_grant_follows_from_the_fields(auth: Any, grant: str) -> None:
    server = _server({"url": "https://api.example/mcp", "auth": auth})
    assert server.auth is not None
    assert server.auth.resolved_grant() == grant


def test_auth_false_means_none() -> None:
    assert _server({"url": "https://api.example/mcp", "auth": False}).auth is None
    assert _server({"url": "https://api.example/mcp"}).auth is None


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        ({"url": "https://a.example/mcp", "auth": {"client_secret": "s"}}, "auth.client_id", "client_id"),
        ({"url": "https://a.example/mcp", "auth": {"issuer": "ftp://as"}}, "auth.issuer", "scheme"),
        ({"url": "https://a.example/mcp", "auth": {"grant": "password"}}, "auth.grant", "auto"),
        ({"url": "https://a.example/mcp", "auth": {"colour": "red"}}, "auth.colour", "Extra"),
        ({"url": "https://a.example/mcp", "auth": "yes"}, "auth", "object"),
        ({"url": "https://a.example/mcp", "auth": {"grant": "enterprise", "client_id": "c"}}, "auth.idp", "idp"),
        ({"command": "srv", "auth": {}}, "auth", "remote"),
        (
            {"url": "https://a.example/mcp", "auth": {"grant": "jwt_bearer", "client_id": "c"}},
            "auth.assertion",
            "asser",
        ),
        ({"url": "https://a.example/mcp", "auth": {"assertion": "eyJ..."}}, "auth.client_id", "client_id"),
        ({"url": "https://a.example/mcp", "auth": {"client_secret": "${NOPE}"}}, "auth.client_secret", "NOPE"),
    ],
)
def test_auth_errors_name_server_and_field(entry: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(McpConfigError) as info:
        _server(entry)
    assert info.value.server == "r"
    assert info.value.field == field
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- token storage


@pytest.mark.anyio
async def test_in_memory_store_round_trip() -> None:
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

    store = InMemoryTokenStore()
    assert isinstance(store, TokenStore)
    assert await store.get_tokens() is None
    assert await store.get_client_info() is None
    await store.set_tokens(OAuthToken(access_token="tok-secret", token_type="Bearer", expires_in=60))
    await store.set_client_info(OAuthClientInformationFull(client_id="cid", redirect_uris=None))
    tokens = await store.get_tokens()
    info = await store.get_client_info()
    assert tokens is not None
    assert tokens.access_token == "tok-secret"
    assert info is not None
    assert info.client_id == "cid"
    assert "tok-secret" not in repr(store)


def test_token_store_protocol_is_the_sdks_and_storage_implements_it() -> None:
    from mcp.client.auth import TokenStorage

    from storage.oauth import StoredTokenStorage

    methods = ("get_tokens", "set_tokens", "get_client_info", "set_client_info")
    for name in methods:
        ours = inspect.signature(getattr(TokenStore, name))
        sdk = inspect.signature(getattr(TokenStorage, name))
        stored = inspect.signature(getattr(StoredTokenStorage, name))
        assert list(ours.parameters) == list(sdk.parameters) == list(stored.parameters), name
        assert inspect.iscoroutinefunction(getattr(StoredTokenStorage, name)), name
    assert isinstance(StoredTokenStorage(None, None, None, "srv"), TokenStore)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- a tiny authorization + MCP server


class _State:
    def __init__(self) -> None:
        self.base = ""
        self.token_requests: list[dict[str, Any]] = []
        self.mcp_auth: list[str | None] = []
        self.redirect_to: str | None = None


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/.well-known/oauth-protected-resource/mcp":
                self._json(200, {"resource": f"{state.base}/mcp", "authorization_servers": [state.base]})
            elif path == "/.well-known/oauth-authorization-server":
                self._json(
                    200,
                    {
                        "issuer": state.base,
                        "authorization_endpoint": f"{state.base}/authorize",
                        "token_endpoint": f"{state.base}/token",
                        "response_types_supported": ["code"],
                        "grant_types_supported": ["client_credentials"],
                        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                    },
                )
            elif path == "/authorize" and state.redirect_to is not None:
                self.send_response(302)
                self.send_header("Location", state.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/authorize":
                self._json(200, {"page": "log in here"})
            else:
                self._json(404, {"error": "not found"})

        def do_DELETE(self) -> None:
            self._json(200, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            path = urlsplit(self.path).path
            if path == "/token":
                form = {k: v[0] for k, v in parse_qs(body).items()}
                state.token_requests.append({"form": form, "authorization": self.headers.get("Authorization")})
                self._json(200, {"access_token": "granted-token", "token_type": "Bearer", "expires_in": 3600})
                return
            authorization = self.headers.get("Authorization")
            state.mcp_auth.append(authorization)
            if authorization != "Bearer granted-token":
                meta = f'Bearer resource_metadata="{state.base}/.well-known/oauth-protected-resource/mcp"'
                self._json(401, {"error": "unauthorized"}, {"WWW-Authenticate": meta})
                return
            message = json.loads(body)
            if "id" not in message:
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            method = message.get("method")
            if method == "initialize":
                result: Any = {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "protected", "version": "1"},
                }
            elif method == "tools/list":
                result = {"tools": [{"name": "ping", "inputSchema": {"type": "object"}}]}
            else:
                self._json(200, {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}})
                return
            self._json(200, {"jsonrpc": "2.0", "id": message["id"], "result": result})

    return Handler


@pytest.fixture
def protected() -> Iterator[_State]:
    state = _State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.anyio
async def test_hub_authorizes_with_client_credentials_and_uses_the_store(protected: _State) -> None:
    stores: dict[str, InMemoryTokenStore] = {}

    def factory(server: str) -> InMemoryTokenStore:
        stores[server] = InMemoryTokenStore()
        return stores[server]

    config = parse_config(
        {
            "mcpServers": {
                "remote": {
                    "url": f"{protected.base}/mcp",
                    "protocol": "legacy",
                    "connect_timeout": 20,
                    "auth": {"client_id": "app", "client_secret": "s3cret"},
                }
            }
        },
        {},
    )
    async with McpHub(config, token_store=factory) as hub:
        status = hub.status()["remote"]
        assert status.state == "ready", status.error
        assert [t.name for t in hub.tools()] == ["remote.ping"]
    # The AS offers only client_credentials and lists client_secret_basic: both chosen from its metadata.
    assert len(protected.token_requests) == 1
    request = protected.token_requests[0]
    assert request["form"]["grant_type"] == "client_credentials"
    assert request["form"]["resource"] == f"{protected.base}/mcp"
    assert request["authorization"] == "Basic " + base64.b64encode(b"app:s3cret").decode()
    assert "client_secret" not in request["form"]
    assert protected.mcp_auth[0] is None
    assert all(value == "Bearer granted-token" for value in protected.mcp_auth[1:])
    assert list(stores) == ["remote"]
    tokens = await stores["remote"].get_tokens()
    assert tokens is not None
    assert tokens.access_token == "granted-token"


@pytest.mark.anyio
async def test_hub_presents_a_workload_assertion_read_from_its_file(protected: _State, tmp_path: Path) -> None:
    token_file = tmp_path / "workload.jwt"
    token_file.write_text("eyJ.workload.jwt\n")
    config = parse_config(
        {
            "mcpServers": {
                "remote": {
                    "url": f"{protected.base}/mcp",
                    "protocol": "legacy",
                    "auth": {"client_id": "workload", "assertion_file": str(token_file)},
                }
            }
        },
        {},
    )
    async with McpHub(config) as hub:
        assert hub.status()["remote"].state == "ready", hub.status()["remote"].error
    form = protected.token_requests[0]["form"]
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert form["assertion"] == "eyJ.workload.jwt"
    assert form["client_id"] == "workload"


@pytest.mark.anyio
async def test_hub_reports_an_authorization_failure_without_secrets(protected: _State) -> None:
    # The authorization page needs a person: the headless handler cannot log in, the server is reported failed.
    config = parse_config(
        {
            "mcpServers": {
                "remote": {
                    "url": f"{protected.base}/mcp",
                    "protocol": "legacy",
                    "connect_timeout": 20,
                    "auth": {"grant": "authorization_code", "client_id": "app", "client_secret": "s3cret-value"},
                }
            }
        },
        {},
    )
    async with McpHub(config) as hub:
        status = hub.status()["remote"]
    assert status.state == "failed"
    assert status.error is not None
    assert "s3cret-value" not in status.error
    assert protected.token_requests == []


# --------------------------------------------------------------------------- headless redirect handler


@pytest.mark.anyio
async def test_headless_handler_reads_the_redirect(protected: _State) -> None:
    protected.redirect_to = "http://localhost:8765/callback?" + urlencode({"code": "c0de", "state": "st", "iss": "x"})
    result = await HeadlessRedirectHandler()(f"{protected.base}/authorize?client_id=a")
    assert result == AuthorizationResponse(code="c0de", state="st", iss="x")


@pytest.mark.anyio
async def test_headless_handler_reports_refusal_and_pages(protected: _State) -> None:
    protected.redirect_to = "http://localhost:8765/callback?error=access_denied&state=st"
    with pytest.raises(McpAuthError, match="access_denied"):
        await HeadlessRedirectHandler()(f"{protected.base}/authorize")
    protected.redirect_to = None
    with pytest.raises(McpAuthError, match="needs a person"):
        await HeadlessRedirectHandler()(f"{protected.base}/authorize")
