"""MCP server entries in the service: ``auth`` (OAuth) refused with a 400, never silently dropped; users see
the admin catalogue's entries by their names only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.conftest import Service


@pytest.fixture(scope="module")
def carol(service: Service) -> str:
    return service.new_user("carol-mcp")[1]


@pytest.mark.parametrize(
    "auth",
    [
        {"auth": {"client_id": "app", "client_secret": "oauth-client-secret-31337", "grant": "client_credentials"}},
        {"auth": True},  # authorization code with dynamic registration: needs a browser
        {"oauth": {"client_id": "app", "assertion_file": "/etc/hostname"}},  # a file of the service's machine
        {"auth": {"client_id": "app", "idp": {"token_endpoint": "https://idp.example/token", "client_id": "x"}}},
    ],
)
def test_oauth_in_a_users_entry_is_refused_not_dropped(service: Service, carol: str, auth: dict[str, Any]) -> None:
    with service.client(carol) as c:
        answer = c.put("/api/user/mcp-servers/oauthy", json={"url": "https://public.example/mcp", **auth})
        names = [s["name"] for s in c.get("/api/user/mcp-servers").json()]
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert "'auth' (OAuth) is not supported" in detail
    assert "headers" in detail  # says what to do instead
    assert "oauth-client-secret-31337" not in answer.text
    assert "oauthy" not in names


def test_entries_without_oauth_keep_working(service: Service, carol: str) -> None:
    with service.client(carol) as c:
        off = c.put("/api/user/mcp-servers/plain", json={"url": "https://public.example/mcp", "auth": False})
        with_header = c.put(
            "/api/user/mcp-servers/bearer",
            json={"url": "https://public.example/mcp", "headers": {"Authorization": "Bearer static-token-4242"}},
        )
    assert off.status_code == 200, off.text  # "auth": false asks for nothing, so nothing is lost
    assert with_header.status_code == 200, with_header.text
    assert with_header.json()["headers_masked"] == {"Authorization": "****4242"}  # their own: the masked form


def test_the_catalogue_refuses_oauth_too(service: Service) -> None:
    with service.admin() as admin:
        answer = admin.put(
            "/api/admin/mcp-servers/cat-oauth", json={"url": "https://public.example/mcp", "auth": {"client_id": "a"}}
        )
        names = [s["name"] for s in admin.get("/api/admin/mcp-servers").json()]
    assert answer.status_code == 400, answer.text
    assert "cat-oauth" not in names


def test_users_see_catalogue_entries_by_name_only(service: Service, carol: str) -> None:
    stdio = {
        "command": "/opt/internal/bin/srv",
        "args": ["--api-key", "argv-secret-777"],
        "env": {"CATALOG_TOKEN": "operator-env-secret-9876", "SHORT": "abc"},
        "allowTools": ["search*"],
    }
    remote = {
        "url": "https://public.example/mcp?key=url-secret-5555",
        "headers": {"X-Api-Key": "operator-header-secret-1234"},
    }
    with service.admin() as admin:
        assert admin.put("/api/admin/mcp-servers/cat-files", json=stdio).status_code == 200
        assert admin.put("/api/admin/mcp-servers/cat-web", json=remote).status_code == 200
        for_admin = {s["name"]: s for s in admin.get("/api/admin/mcp-servers").json()}
    try:
        with service.client(carol) as c:
            answer = c.get("/api/user/mcp-servers")
        catalog = {s["name"]: s for s in answer.json() if s["scope"] == "catalog"}
        assert catalog["cat-files"]["env_masked"] == {"CATALOG_TOKEN": "****", "SHORT": "****"}
        assert catalog["cat-web"]["headers_masked"] == {"X-Api-Key": "****"}
        assert catalog["cat-files"]["config"] == {"type": "stdio", "allow_tools": ["search*"]}
        assert catalog["cat-web"]["config"] == {"type": "http"}
        assert catalog["cat-files"]["transport"] == "stdio"
        for leaked in ("9876", "1234", "argv-secret", "url-secret", "/opt/internal"):
            assert leaked not in answer.text, leaked
        assert "public.example" not in json.dumps(catalog)  # where the catalogue's server runs
        # The admin still sees the catalogue as it is, values masked.
        assert for_admin["cat-files"]["env_masked"]["CATALOG_TOKEN"] == "****9876"
        assert for_admin["cat-web"]["config"]["url"] == remote["url"]
    finally:
        with service.admin() as admin:
            for name in ("cat-files", "cat-web"):
                assert admin.delete(f"/api/admin/mcp-servers/{name}").status_code == 204
