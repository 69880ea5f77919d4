"""MCP server configs: each user's remote servers, and the admin's catalogue (the only source of stdio servers).

A user's entry uses the usual ``mcpServers`` shape (``{"url": ..., "headers": {...}}``). Header values are
secrets: stored encrypted, answered masked. ``${VAR}`` references are refused in users' entries, since
they would be expanded from the service's own environment. ``auth`` (OAuth) is refused in every entry (see
:func:`_refuse_oauth`), never dropped. Users see catalogue entries by their names only (see
:meth:`McpServerOut.for_user`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, Field

from agent.http.deps import CurrentUser, State, require_admin
from agent.http.ssrf import check_url
from mcp_bridge.config import McpConfigError, ServerConfig, parse_server
from storage import McpServerRecord

router = APIRouter(tags=["MCP servers"])
admin_router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])

# ServerConfig fields that are stored as plain config (everything else is a secret or derived).
_PLAIN_FIELDS = (
    "connect_timeout",
    "call_timeout",
    "allow_tools",
    "deny_tools",
    "trust",
    "auto_approve",
    "disabled",
    "max_restarts",
    "protocol",
)


class McpServerOut(BaseModel):
    name: str
    scope: str = Field(description="'user' (yours) or 'catalog' (offered by the admin)")
    transport: str | None
    config: dict[str, Any]
    headers_masked: dict[str, str]
    env_masked: dict[str, str]
    status: str
    error: str | None = Field(default=None, description="Why the entry cannot be used (status 'unreadable')")

    @classmethod
    def of(cls, record: McpServerRecord) -> McpServerOut:
        return cls(
            name=record.name,
            scope="catalog" if record.owner is None else "user",
            transport=record.config.get("type"),
            config=record.config,
            headers_masked=record.headers_masked,
            env_masked=record.env_masked,
            status=record.status,
            error=record.error,
        )

    @classmethod
    def for_user(cls, record: McpServerRecord) -> McpServerOut:
        """What a user sees. Their own entries: as stored, secrets masked. A catalogue entry: the names of its
        env variables and headers without a character of their values, and none of where it runs (command,
        arguments, URL, paths), which are the operator's and may carry secrets or internal addresses."""
        if record.owner is not None:
            return cls.of(record)
        return cls(
            name=record.name,
            scope="catalog",
            transport=record.config.get("type"),
            config={k: v for k, v in record.config.items() if k == "type" or k in _PLAIN_FIELDS},
            headers_masked=dict.fromkeys(record.headers_masked, _HIDDEN),
            env_masked=dict.fromkeys(record.env_masked, _HIDDEN),
            status=record.status,
        )


_HIDDEN = "****"  # a value is set; nothing of it is shown


def _parse(name: str, entry: dict[str, Any]) -> ServerConfig:
    if "${" in json.dumps(entry):
        raise HTTPException(400, f"MCP server {name!r}: ${{VAR}} references are not allowed here; give the values")
    try:
        server = parse_server(name, entry, {})
    except McpConfigError as exc:
        raise HTTPException(400, str(exc)) from None
    _refuse_oauth(server)
    return server


def _refuse_oauth(server: ServerConfig) -> None:
    """OAuth is refused in the service's entries rather than stored half (it used to be dropped silently).

    Its discovery, registration and token requests go to addresses the remote server and its metadata name,
    and some go out through clients of their own (the redirect handler, the enterprise IdP exchange), so the
    service cannot yet hold them to its egress checks; the authorization-code flow needs a person's browser,
    and ``assertion_file`` reads a file of the service's machine.
    """
    if server.auth is not None:
        raise HTTPException(
            400,
            f"MCP server {server.name!r}: 'auth' (OAuth) is not supported in the service's MCP server entries: its "
            "flows (authorization code, client credentials, jwt-bearer, enterprise) make requests to addresses the "
            "server names, which the service cannot check yet, or need a browser or a local file. Send a token "
            "in 'headers' instead (stored encrypted).",
        )


def _plain_config(server: ServerConfig) -> dict[str, Any]:
    """The non-secret part of a parsed entry, in the ``mcpServers`` shape the runtime parses again."""
    config: dict[str, Any] = {"type": server.transport}
    if server.transport == "stdio":
        config.update(command=server.command, args=server.args)
        if server.cwd:
            config["cwd"] = server.cwd
        if server.inherit_env:
            config["inherit_env"] = server.inherit_env
    else:
        config["url"] = server.url
    defaults = ServerConfig(name=server.name, transport=server.transport)
    for key in _PLAIN_FIELDS:
        value = getattr(server, key)
        if value != getattr(defaults, key):
            config[key] = value
    if server.roots:
        config["roots"] = [r.model_dump(exclude_none=True) for r in server.roots]
    return config


@router.get("/api/user/mcp-servers", response_model=list[McpServerOut], summary="Your MCP servers and the catalogue")
async def list_servers(user: CurrentUser, state: State) -> list[McpServerOut]:
    return [McpServerOut.for_user(r) for r in await state.store.mcp_servers.list(user.id)]


@router.put(
    "/api/user/mcp-servers/{name}", response_model=McpServerOut, summary="Add or replace one of your remote MCP servers"
)
async def put_server(name: str, entry: dict[str, Any], user: CurrentUser, state: State) -> McpServerOut:
    server = _parse(name, entry)
    if server.transport == "stdio":
        raise HTTPException(
            403,
            f"MCP server {name!r}: users may add only remote (http/sse) servers; stdio servers run on the service's "
            "machine and come from the admin catalogue",
        )
    assert server.url is not None
    try:
        await check_url(server.url, state.settings, what=f"MCP server {name!r}")
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    record = await state.store.mcp_servers.save(
        user.id, name, _plain_config(server), headers=server.header_values() or None
    )
    state.hubs.purge(user.id)
    return McpServerOut.of(record)


@router.delete("/api/user/mcp-servers/{name}", status_code=204, summary="Remove one of your MCP servers")
async def delete_server(name: str, user: CurrentUser, state: State) -> Response:
    mine = await state.store.mcp_servers.list(user.id, include_global=False)
    if not any(r.name == name for r in mine):
        raise HTTPException(404, f"you have no MCP server named {name!r}")
    await state.store.mcp_servers.delete(user.id, name)
    state.hubs.purge(user.id)
    return Response(status_code=204)


@admin_router.get("/api/admin/mcp-servers", response_model=list[McpServerOut], summary="The MCP server catalogue")
async def list_catalog(state: State) -> list[McpServerOut]:
    return [McpServerOut.of(r) for r in await state.store.mcp_servers.list(None)]


@admin_router.put(
    "/api/admin/mcp-servers/{name}", response_model=McpServerOut, summary="Add or replace a catalogue server"
)
async def put_catalog_server(name: str, entry: dict[str, Any], state: State) -> McpServerOut:
    server = _parse(name, entry)
    record = await state.store.mcp_servers.save(
        None, name, _plain_config(server), env=server.env_values() or None, headers=server.header_values() or None
    )
    state.hubs.purge()
    return McpServerOut.of(record)


@admin_router.delete("/api/admin/mcp-servers/{name}", status_code=204, summary="Remove a catalogue server")
async def delete_catalog_server(name: str, state: State) -> Response:
    if not any(r.name == name for r in await state.store.mcp_servers.list(None)):
        raise HTTPException(404, f"no catalogue MCP server named {name!r}")
    await state.store.mcp_servers.delete(None, name)
    state.hubs.purge()
    return Response(status_code=204)
