"""A scripted MCP peer on stdio that answers era negotiation one way per scenario (see SCENARIOS).

Run: ``python era_peer.py SCENARIO``. It answers ``server/discover`` and ``initialize`` as the scenario says,
counts the probes on stderr (``discover N``), and answers anything else with -32601. Newline-delimited
JSON-RPC, the stdio transport's framing.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"

CAPS: dict[str, Any] = {"tools": {"listChanged": False}}
DISCOVER_OK = {"supportedVersions": [MODERN], "capabilities": CAPS, "resultType": "complete", "ttlMs": 0}
INITIALIZE_OK = {"protocolVersion": HANDSHAKE, "capabilities": CAPS, "serverInfo": {"name": "era-peer", "version": "1"}}
NOT_FOUND = {"code": -32601, "message": "Method not found"}
INTERNAL = {"code": -32603, "message": "internal error"}


def unsupported(*versions: str) -> dict[str, Any]:
    data = {"supported": list(versions), "requested": MODERN}
    return {"code": -32022, "message": "Unsupported protocol version", "data": data}


# scenario -> (answers to the 1st, 2nd, ... discover; answer to initialize). An answer is ("result", body) or
# ("error", error); the last discover answer repeats.
SCENARIOS: dict[str, tuple[list[tuple[str, Any]], tuple[str, Any]]] = {
    "modern": ([("result", DISCOVER_OK)], ("result", INITIALIZE_OK)),
    "legacy": ([("error", NOT_FOUND)], ("result", INITIALIZE_OK)),
    "reprobe": ([("error", unsupported(MODERN, HANDSHAKE)), ("result", DISCOVER_OK)], ("result", INITIALIZE_OK)),
    "modern-only-disjoint": ([("error", unsupported("2099-01-01"))], ("result", INITIALIZE_OK)),
    "unsupported-with-handshake": ([("error", unsupported(HANDSHAKE))], ("result", INITIALIZE_OK)),
    "handshake-only-advertised": (
        [("result", {**DISCOVER_OK, "supportedVersions": [HANDSHAKE]})],
        ("result", INITIALIZE_OK),
    ),
    "unreadable-discover": ([("result", {"supportedVersions": "no"})], ("result", INITIALIZE_OK)),
    "handshake-says-modern": ([("error", NOT_FOUND), ("result", DISCOVER_OK)], ("error", unsupported(MODERN))),
    "handshake-fails": ([("error", NOT_FOUND)], ("error", INTERNAL)),
}


def main() -> None:
    discovers, initialize = SCENARIOS[sys.argv[1]]
    probes = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "id" not in message:
            continue  # a notification (notifications/initialized)
        method = message.get("method")
        if method == "server/discover":
            kind, body = discovers[min(probes, len(discovers) - 1)]
            probes += 1
            print(f"discover {probes}", file=sys.stderr, flush=True)
        elif method == "initialize":
            kind, body = initialize
        else:
            kind, body = "error", NOT_FOUND
        reply = {"jsonrpc": "2.0", "id": message["id"], kind: body}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
