"""The client the MCP conformance harness spawns: ``python conformance_client.py <server URL>``.

Everything it does goes through :class:`mcp_bridge.McpHub`: connect (protocol era negotiated by the hub), list the
tools, call each one once, disconnect. It never looks at ``MCP_CONFORMANCE_SCENARIO``; the only thing it takes from
the harness besides the URL is data: credentials from ``MCP_CONFORMANCE_CONTEXT`` (turned into the server's
``auth`` config, whose fields decide the OAuth flow inside ``mcp_bridge``) and the tool calls the context lists.
Tools the context does not list are called with arguments built from their input schema the way a model reading
the schema would: defaults, else a plain value of the declared type; an object argument whose description asks for
the input schema of another listed tool gets that tool's schema as the hub holds it (which is how the hub's
verbatim preservation of JSON Schema 2020-12 keywords becomes observable to the server).

Exit status: 0 when the server connected (tool errors are results, not failures), 1 when it did not.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from typing import Any

# The client's own published metadata document (SEP-991). The conformance authorization servers that support
# client ID metadata documents expect exactly this URL; it is configuration, offered to every server.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


def auth_from_context(context: dict[str, Any]) -> dict[str, Any]:
    """The ``auth`` config section: only credentials; mcp_bridge picks the flow from what is present."""
    auth: dict[str, Any] = {"client_metadata_url": CLIENT_METADATA_URL}
    for source, target in (("client_id", "client_id"), ("client_secret", "client_secret"), ("issuer", "issuer")):
        if isinstance(context.get(source), str):
            auth[target] = context[source]
    if isinstance(context.get("private_key_pem"), str):
        auth["private_key"] = context["private_key_pem"]
        auth["signing_algorithm"] = context.get("signing_algorithm") or "ES256"
    if isinstance(context.get("valid_jwt"), str):
        auth["assertion"] = context["valid_jwt"]
    if isinstance(context.get("idp_token_endpoint"), str):
        auth["idp"] = {
            "token_endpoint": context["idp_token_endpoint"],
            "client_id": context.get("idp_client_id", ""),
            "id_token": context.get("idp_id_token", ""),
        }
    return auth


_SAMPLE_BY_TYPE: dict[str, Any] = {
    "string": "test",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def _referenced_schema(spec: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    description = str(spec.get("description") or "")
    if spec.get("type") != "object" or "inputschema" not in description.lower():
        return None
    named = [name for name in schemas if name in description]
    return copy.deepcopy(schemas[max(named, key=len)]) if named else None


def arguments_for(schema: dict[str, Any], schemas: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Arguments for a tool nobody told us how to call: defaults, else a value of each required field's type.

    ``schemas`` maps the other listed tools (server's names) to their input schemas."""
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    args: dict[str, Any] = {}
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            continue
        if "default" in spec:
            args[name] = spec["default"]
        elif (referenced := _referenced_schema(spec, schemas or {})) is not None:
            args[name] = referenced
        elif name in required:
            if spec.get("enum"):
                args[name] = spec["enum"][0]
            else:
                kind = spec.get("type")
                args[name] = _SAMPLE_BY_TYPE.get(kind if isinstance(kind, str) else "string", "test")
    return args


async def run(url: str, context: dict[str, Any]) -> int:
    from mcp_bridge import McpHub, SamplingRequest, SamplingResponse, accept_defaults, parse_config
    from providers.types import Message, TextPart

    async def sampling(request: SamplingRequest) -> SamplingResponse:
        return SamplingResponse(message=Message(role="assistant", parts=[TextPart(text="ok")]), model="conformance")

    config = parse_config(
        {"mcpServers": {"server": {"url": url, "auth": auth_from_context(context), "connect_timeout": 25}}}, {}
    )
    async with McpHub(config, sampling=sampling, elicitation=accept_defaults) as hub:
        status = hub.status()["server"]
        if status.state != "ready":
            print(f"connect failed: {status.error}", file=sys.stderr)
            return 1
        print(f"connected: protocol {status.protocol_version}", file=sys.stderr)
        listed = {
            str(call["name"]): call.get("arguments") or {}
            for call in context.get("toolCalls") or []
            if isinstance(call, dict) and "name" in call
        }
        tools = await hub.list_tools()
        schemas = {spec.name.partition(".")[2]: spec.input_schema or {} for spec in tools}
        for spec in tools:
            _, _, tool = spec.name.partition(".")
            others = {name: schema for name, schema in schemas.items() if name != tool}
            calls = [listed[tool]] if tool in listed else [arguments_for(spec.input_schema or {}, others)]
            for arguments in calls:
                result = await hub.call_tool(spec.name, arguments)
                text = " ".join(getattr(p, "text", "") for p in result.content)[:200]
                print(f"{spec.name}: {'error' if result.is_error else 'ok'}: {text}", file=sys.stderr)
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    url = sys.argv[-1]
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}"
    context = json.loads(raw)
    import anyio

    return anyio.run(run, url, context if isinstance(context, dict) else {})


if __name__ == "__main__":
    sys.exit(main())
