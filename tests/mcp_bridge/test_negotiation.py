"""``protocol: auto`` negotiation (mcp_bridge.negotiation) against scripted peers over real stdio, beside the SDK's
own ``mcp.Client(mode="auto")`` on the same peers: both must reach the expected outcome, so a change of the SDK's
policy (which routekit follows on public session methods) fails here."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mcp_bridge.negotiation import negotiate_auto

from .conftest import HERE

pytestmark = pytest.mark.anyio

PEER = HERE / "era_peer.py"
MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"

# scenario -> (outcome: the negotiated version or the MCPError code, discover probes sent)
EXPECTED: dict[str, tuple[str | int, int]] = {
    "modern": (MODERN, 1),
    "legacy": (HANDSHAKE, 1),
    "reprobe": (MODERN, 2),
    "modern-only-disjoint": (-32022, 1),
    "unsupported-with-handshake": (HANDSHAKE, 1),
    "handshake-only-advertised": (HANDSHAKE, 1),
    "unreadable-discover": (HANDSHAKE, 1),
    "handshake-says-modern": (MODERN, 2),
    "handshake-fails": (-32603, 1),
}


def _params(scenario: str) -> Any:
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=[str(PEER), scenario], env=dict(os.environ))


def _code(exc: BaseException) -> int:
    from mcp.shared.exceptions import MCPError

    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if not isinstance(exc, MCPError):
        raise exc
    return exc.code


async def _ours(scenario: str, errlog: Any) -> str | int:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    try:
        async with stdio_client(_params(scenario), errlog=errlog) as (read, write), ClientSession(read, write) as s:
            await negotiate_auto(s)
            assert s.protocol_version is not None
            return s.protocol_version
    except Exception as exc:
        return _code(exc)


async def _sdk(scenario: str) -> str | int:
    from mcp import Client

    try:
        async with Client(_params(scenario), mode="auto", cache=None) as client:
            return client.protocol_version
    except Exception as exc:
        return _code(exc)


def _probes(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("discover "))


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
async def test_auto_negotiation_matches_the_sdks_policy(scenario: str) -> None:
    outcome, probes = EXPECTED[scenario]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "peer.log"
        with log.open("w") as errlog:
            ours = await _ours(scenario, errlog)
        assert (ours, _probes(log)) == (outcome, probes)
    assert await _sdk(scenario) == outcome, "the SDK's mode='auto' policy changed: follow it"
