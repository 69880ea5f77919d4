"""Users' remote MCP servers under the service's egress policy: server-everything over streamable HTTP and SSE.

The hub's HTTP client for a guarded server resolves names through the policy and connects only to the
addresses it checked (here ``mcp.example`` exists only in the policy's resolver), refuses loopback answers
(DNS rebinding) and redirects; a server without a policy is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mcp_bridge import McpHub, parse_config
from providers.egress import EgressPolicy
from tests.fakes.redirect import InternalService, Redirector, table_resolver

from .conftest import everything_http, free_port

pytestmark = pytest.mark.anyio

KINDS = {"http": ("streamableHttp", "mcp"), "sse": ("sse", "sse")}


@pytest.fixture(scope="module", params=sorted(KINDS))
def everything(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, str]]:
    kind, path = KINDS[request.param]
    port = free_port()
    with everything_http(kind, port):
        yield request.param, port, path


async def _status(transport: str, url: str, policy: EgressPolicy | None) -> Any:
    config = parse_config({"mcpServers": {"u": {"type": transport, "url": url, "connect_timeout": 10}}})
    async with McpHub(config, egress={"u": policy} if policy is not None else None) as hub:
        return hub.status()["u"]


async def test_a_guarded_server_is_reached_at_the_address_the_policy_checked(everything: tuple[str, int, str]) -> None:
    transport, port, path = everything
    policy = EgressPolicy(
        allowed_hosts=frozenset({f"mcp.example:{port}"}), resolver=table_resolver({"mcp.example": ["127.0.0.1"]})
    )
    status = await _status(transport, f"http://mcp.example:{port}/{path}", policy)
    assert status.state == "ready", status.error
    assert status.tools > 0


async def test_a_name_that_now_resolves_to_loopback_is_not_connected(everything: tuple[str, int, str]) -> None:
    transport, port, path = everything
    policy = EgressPolicy(resolver=table_resolver({"mcp.example": ["127.0.0.1"]}))
    status = await _status(transport, f"http://mcp.example:{port}/{path}", policy)
    assert status.state != "ready"
    assert "loopback" in (status.error or "")
    unguarded = await _status(transport, f"http://127.0.0.1:{port}/{path}", None)
    assert unguarded.state == "ready", unguarded.error  # the admin's own servers are not held to the policy


@pytest.mark.parametrize("transport", sorted(KINDS))
async def test_a_redirect_to_an_internal_service_is_not_followed(transport: str) -> None:
    internal = InternalService().start()
    redirector = Redirector(internal.origin).start()
    try:
        policy = EgressPolicy(allowed_hosts=frozenset({f"127.0.0.1:{redirector.port}"}), resolver=table_resolver({}))
        status = await _status(transport, f"{redirector.origin}/{KINDS[transport][1]}", policy)
    finally:
        redirector.stop()
        internal.stop()
    assert status.state != "ready"
    assert "redirect" in (status.error or "")
    assert redirector.hits
    assert internal.hits == []
