"""Protocol-era negotiation on a ``ClientSession`` (``protocol: auto``), on the ``mcp`` SDK's public session API.

The SDK's own ``auto`` policy runs only inside ``mcp.Client.__aenter__`` (its function lives in the private
``mcp.client._probe``); the hub builds its ``ClientSession`` itself (its transports, callbacks and reconnects are
its own), so it applies the same policy here with the public pieces: ``send_discover``, ``initialize`` and
``adopt``. ``ClientSession.discover()`` documents the legacy fallback as "the caller's policy". No upstream issue
asks for the policy to be exposed on the session yet; the one to file: "mcp python-sdk: expose the
``mode='auto'`` negotiation for ``ClientSession`` users (a public ``negotiate_auto`` or
``ClientSession.negotiate(mode)``)". ``tests/mcp_bridge/test_negotiation.py`` runs ``mcp.Client(mode="auto")`` beside
this on the same servers, so a change of the SDK's policy shows up there.

The policy (the SDK's, the TypeScript and Go clients'): probe ``server/discover`` at the newest modern version;
anything that is not positive evidence of a modern server falls back to the ``initialize`` handshake. Only a
``-32022`` naming modern versions that share none with this client is an incompatibility; a ``-32022`` naming a
mutual modern version is probed again at that version, once. A discover result that advertises no modern version
(what some stateful servers answer) is a legacy advertisement. A ``-32022`` from the fallback handshake is modern
evidence too (a slow server settled modern on a probe that timed out here): one more probe at a version it names.
Errors that are not JSON-RPC errors (transport, cancellation) propagate: an outage is never an era verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

__all__ = ["negotiate_auto"]


def _supported(data: Any) -> list[str] | None:
    """``data.supported`` of a -32022 error, or None when it has none."""
    import mcp_types as types
    from pydantic import ValidationError

    try:
        return types.UnsupportedProtocolVersionErrorData.model_validate(data).supported
    except ValidationError:
        return None


def _mutual_modern(supported: list[str] | None) -> list[str]:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    return [v for v in MODERN_PROTOCOL_VERSIONS if v in (supported or ())]


async def negotiate_auto(session: ClientSession) -> None:
    """Settle ``session`` on the modern era (``adopt`` of the discover result) or the handshake era
    (``initialize``). Raises ``MCPError`` for a modern-only server with no mutual version, or when the fallback
    handshake fails (after its one corrective probe)."""
    import mcp_types as types
    from mcp.shared.exceptions import MCPError
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_MODERN_VERSION
    from pydantic import ValidationError

    version = LATEST_MODERN_VERSION
    for attempt in range(2):
        try:
            raw = await session.send_discover(version)
        except MCPError as exc:
            if exc.code == types.UNSUPPORTED_PROTOCOL_VERSION:
                supported = _supported(exc.error.data)
                mutual = _mutual_modern(supported)
                if mutual and attempt == 0:
                    version = mutual[-1]
                    continue
                if supported is not None and not any(v in HANDSHAKE_PROTOCOL_VERSIONS for v in supported):
                    raise  # modern-only, no version in common
            try:
                await session.initialize()
            except MCPError as handshake:
                if handshake.code != types.UNSUPPORTED_PROTOCOL_VERSION or attempt != 0:
                    raise
                mutual = _mutual_modern(_supported(handshake.error.data))
                if not mutual:
                    raise
                version = mutual[-1]
                continue
            return
        try:
            result = types.DiscoverResult.model_validate(raw)
        except ValidationError:
            await session.initialize()  # an unreadable discover result is no modern evidence
            return
        if not _mutual_modern(result.supported_versions):
            await session.initialize()  # discover answered, but only handshake-era versions advertised
            return
        session.adopt(result)
        return
    raise AssertionError("unreachable: every attempt returns, raises or probes once more")
