"""Pins for mcp_bridge._compat_mcp, the one use of a private mcp SDK name (``OAuthClientProvider``'s
``_perform_authorization``): what the shim relies on, against a small authorization and resource server over
HTTP on 127.0.0.1, through the SDK's real provider. When one of these fails after an mcp upgrade, read the shim's
docstring."""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata

from mcp_bridge._compat_mcp import token_request_provider
from mcp_bridge.auth import InMemoryTokenStore

pytestmark = pytest.mark.anyio


class _Server:
    def __init__(self) -> None:
        self.base = ""
        self.token_forms: list[dict[str, str]] = []
        self.resource_auth: list[str | None] = []


def _handler(server: _Server) -> type[BaseHTTPRequestHandler]:
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
                self._json(200, {"resource": f"{server.base}/mcp", "authorization_servers": [server.base]})
            elif path == "/.well-known/oauth-authorization-server":
                self._json(
                    200,
                    {
                        "issuer": server.base,
                        "authorization_endpoint": f"{server.base}/authorize",
                        "token_endpoint": f"{server.base}/token",
                        "response_types_supported": ["code"],
                    },
                )
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if urlsplit(self.path).path == "/token":
                server.token_forms.append({k: v[0] for k, v in parse_qs(body).items()})
                self._json(200, {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600})
                return
            server.resource_auth.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != "Bearer tok":
                meta = f'Bearer resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"'
                self._json(401, {"error": "unauthorized"}, {"WWW-Authenticate": meta})
                return
            self._json(200, {"ok": True})

    return Handler


@pytest.fixture
def server() -> Iterator[_Server]:
    state = _Server()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{http.server_address[1]}"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        http.shutdown()
        http.server_close()


async def _registered_store(base: str) -> InMemoryTokenStore:
    store = InMemoryTokenStore()
    await store.set_client_info(
        OAuthClientInformationFull(client_id="app", redirect_uris=None, token_endpoint_auth_method="none")
    )
    return store


def test_the_hook_is_still_the_providers_token_request_step() -> None:
    method = OAuthClientProvider._perform_authorization
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self"]


async def test_the_flow_sends_the_hooks_token_request_and_retries_with_the_token(server: _Server) -> None:
    seen: list[tuple[Any, Any]] = []

    class Marked(token_request_provider()):  # type: ignore[misc]
        async def token_request(self) -> httpx2.Request | None:
            # Called once metadata is known: the hook can choose from it.
            seen.append((self.context.oauth_metadata, self.context.client_info))
            return httpx2.Request("POST", f"{server.base}/token", data={"grant_type": "urn:test:marked"})

    store = await _registered_store(server.base)
    provider = Marked(f"{server.base}/mcp", OAuthClientMetadata(redirect_uris=None), store)
    async with httpx2.AsyncClient(auth=provider) as client:
        response = await client.post(f"{server.base}/mcp", json={})
    assert response.status_code == 200
    [(metadata, client_info)] = seen
    assert str(metadata.token_endpoint) == f"{server.base}/token"
    assert client_info.client_id == "app"
    assert server.token_forms == [{"grant_type": "urn:test:marked"}]
    assert server.resource_auth == [None, "Bearer tok"]
    tokens = await store.get_tokens()
    assert tokens is not None
    assert tokens.access_token == "tok"


async def test_no_token_request_from_the_hook_means_the_sdks_authorization_code_grant(server: _Server) -> None:
    class Asked(RuntimeError):
        pass

    urls: list[str] = []

    async def redirect(url: str) -> None:
        urls.append(url)
        raise Asked

    async def callback() -> Any:
        raise AssertionError("not reached")

    store = await _registered_store(server.base)
    metadata = OAuthClientMetadata(redirect_uris=["http://localhost:8765/callback"])
    provider = token_request_provider()(f"{server.base}/mcp", metadata, store, redirect, callback)
    async with httpx2.AsyncClient(auth=provider) as client:
        with pytest.raises(Asked):
            await client.post(f"{server.base}/mcp", json={})
    [url] = urls
    assert url.startswith(f"{server.base}/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == ["app"]
    assert query["code_challenge_method"] == ["S256"]
    assert server.token_forms == []
