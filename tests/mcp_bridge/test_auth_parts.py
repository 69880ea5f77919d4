"""Parts of mcp_bridge.auth written on public APIs in place of SDK internals: the pre-registered client offered
through the token store, the token endpoint's fallback, and which redirects a discovery request follows."""

from __future__ import annotations

import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull

from mcp_bridge.auth import InMemoryTokenStore, _PreRegistered, _redirect_within_origin

pytestmark = pytest.mark.anyio


def _client(client_id: str) -> OAuthClientInformationFull:
    return OAuthClientInformationFull(client_id=client_id, redirect_uris=None)


async def test_the_configured_client_is_offered_unless_the_store_holds_its_own_registration() -> None:
    inner = InMemoryTokenStore()
    fixed = _client("configured")
    store = _PreRegistered(inner, fixed)
    assert await store.get_client_info() is fixed  # nothing stored
    await inner.set_client_info(_client("registered-elsewhere"))
    assert await store.get_client_info() is fixed  # another client's registration is not used
    updated = fixed.model_copy(update={"client_secret": "rotated"})
    await store.set_client_info(updated)
    assert await store.get_client_info() is updated  # the store's record for this client wins
    assert await inner.get_client_info() is updated
    assert "rotated" not in repr(store)


def _redirect(sent: str, location: str, method: str = "GET", follow_method: str | None = None) -> httpx2.Response:
    request = httpx2.Request(method, sent)
    response = httpx2.Response(307, headers={"Location": location}, request=request)
    response.next_request = httpx2.Request(follow_method or method, location)
    return response


@pytest.mark.parametrize(
    ("sent", "location", "followed"),
    [
        ("https://rs.example/.well-known/a", "https://rs.example/.well-known/b", True),
        ("http://rs.example/.well-known/a", "https://rs.example/.well-known/a", True),  # https upgrade
        ("http://rs.example:8080/a", "https://rs.example:8443/a", False),
        ("https://rs.example/a", "https://elsewhere.example/a", False),
        ("https://rs.example/a", "http://rs.example/a", False),  # downgrade
        ("https://rs.example/a", "https://user:pw@rs.example/a", False),  # userinfo of its own
    ],
)
def test_a_discovery_redirect_is_followed_only_within_its_origin(sent: str, location: str, followed: bool) -> None:
    response = _redirect(sent, location)
    assert (_redirect_within_origin(response) is not None) is followed


def test_a_redirect_that_changes_the_method_or_no_redirect_is_not_followed() -> None:
    assert _redirect_within_origin(_redirect("https://rs.example/a", "https://rs.example/b", "POST", "GET")) is None
    plain = httpx2.Response(200, request=httpx2.Request("GET", "https://rs.example/a"))
    assert _redirect_within_origin(plain) is None
