"""MCP server configuration: the ``mcpServers`` JSON convention plus routekit's extras.

Accepted shapes (the spellings Claude Desktop, Claude Code, Cursor, Windsurf, Cline and VS Code write)::

    {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                           "env": {"DEBUG": "1"}, "cwd": "/tmp"},
                    "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
                    "legacy": {"type": "sse", "url": "https://example.com/sse"}}}

``servers`` (VS Code's ``mcp.json``) and ``{"mcp": {"servers": ...}}`` (VS Code settings) are accepted too. The
transport comes from ``type`` / ``transport`` / ``transportType`` when given (``stdio``, ``http``,
``streamable-http``, ``streamableHttp``, ``sse``), otherwise from the presence of ``command`` or ``url``
(``serverUrl`` is Windsurf's spelling).

``${VAR}``, ``${env:VAR}`` (VS Code) and ``${VAR:-default}`` are expanded from the environment in ``command``,
``args``, ``env``, ``cwd``, ``url`` and ``headers``; a missing variable is an error naming the server and field.

routekit's extras, per server: ``connect_timeout`` and ``call_timeout`` (seconds), ``allow_tools`` /
``deny_tools`` (tool-name globs), ``trust`` (``"ask"`` or ``"auto"``) and ``auto_approve`` (tool-name globs;
Cline's ``autoApprove`` / ``alwaysAllow``), ``roots`` (paths or ``file://`` URIs), ``disabled``,
``inherit_env`` (extra parent variables a stdio server may see), ``max_restarts`` and ``protocol``.

Remote (http/sse) servers may carry an ``auth`` object (OAuth 2.1, see :mod:`mcp_bridge.auth`)::

    "auth": {"client_id": "...", "client_secret": "${SECRET}", "scope": "read", "issuer": "https://as.example"}

Fields (all optional): ``grant`` (``auto``, ``authorization_code``, ``client_credentials``, ``enterprise`` or
``jwt_bearer``), ``client_id``, ``client_secret``, ``private_key`` (PEM, for ``private_key_jwt``) with
``signing_algorithm``,
``assertion`` / ``assertion_file`` (a workload identity JWT for the RFC 7523 jwt-bearer grant; the file is re-read
for every token request, as platforms rotate it),
``token_endpoint_auth_method``, ``scope``, ``issuer`` (pins the authorization server), ``redirect_uri``,
``client_name``, ``client_metadata_url`` (a client ID metadata document URL) and ``idp`` (enterprise-managed
authorization: ``token_endpoint``, ``client_id``, ``client_secret``, ``id_token``). ``${VAR}`` is expanded in
every string. ``"auth": true`` (or ``{}``) means "authorization code with dynamic registration".
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from providers.errors import ConfigError

__all__ = [
    "AuthConfig",
    "IdpConfig",
    "McpConfig",
    "McpConfigError",
    "RootConfig",
    "ServerConfig",
    "load_config",
    "parse_config",
]

TransportKind = Literal["stdio", "http", "sse"]

_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VAR = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# Spelling of the transport field in the wild -> routekit's transport kind.
_TRANSPORT_ALIASES: dict[str, TransportKind] = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamable_http": "http",
    "streamablehttp": "http",
    "streamable": "http",
    "sse": "sse",
}

# Keys some clients write that carry no meaning for routekit; accepted and ignored.
_IGNORED_KEYS = frozenset({"description", "envFile", "gallery", "version", "icon", "note", "$schema"})


class McpConfigError(ConfigError):
    """An MCP server configuration is unusable. Names the server and the field so the user can fix it."""

    def __init__(self, server: str | None, field: str | None, problem: str) -> None:
        self.server = server
        self.field = field
        where = "MCP config"
        if server is not None:
            where += f": server {server!r}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")


class RootConfig(BaseModel):
    """A filesystem root offered to the server (``roots/list``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str
    name: str | None = None


GrantKind = Literal["auto", "authorization_code", "client_credentials", "enterprise", "jwt_bearer"]
TokenAuthMethod = Literal["auto", "none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


class IdpConfig(BaseModel):
    """Enterprise-managed authorization (SEP-990): the identity provider that turns the user's ID token into an
    identity assertion grant (ID-JAG) by RFC 8693 token exchange."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_endpoint: str
    client_id: str
    client_secret: SecretStr | None = None
    id_token: SecretStr | None = None


class AuthConfig(BaseModel):
    """OAuth for one remote server. Which flow runs follows from the fields (see :mod:`mcp_bridge.auth`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grant: GrantKind = "auto"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    private_key: SecretStr | None = None
    signing_algorithm: str = "RS256"
    assertion: SecretStr | None = None
    assertion_file: str | None = None
    token_endpoint_auth_method: TokenAuthMethod = "auto"  # noqa: S105 - a method name, not a secret
    scope: str | None = None
    issuer: str | None = None
    redirect_uri: str = "http://localhost:8765/callback"
    client_name: str = "routekit"
    client_metadata_url: str | None = None
    idp: IdpConfig | None = None

    def resolved_grant(self) -> GrantKind:
        """The grant ``auto`` stands for where the fields decide it: an IdP means enterprise-managed
        authorization, a private key means client credentials with ``private_key_jwt``, a workload identity
        assertion means the RFC 7523 jwt-bearer grant. A bare client ID and
        secret stay ``auto``: the authorization server's metadata decides (see :mod:`mcp_bridge.auth`)."""
        if self.grant != "auto":
            return self.grant
        if self.idp is not None:
            return "enterprise"
        if self.private_key is not None:
            return "client_credentials"
        if self.assertion is not None or self.assertion_file is not None:
            return "jwt_bearer"
        if self.client_secret is None:
            return "authorization_code"
        return "auto"


class ServerConfig(BaseModel):
    """One MCP server. Secrets (``env`` and ``headers`` values) are ``SecretStr``: never in reprs or logs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    transport: TransportKind
    # stdio
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    cwd: str | None = None
    inherit_env: list[str] = Field(default_factory=list)
    # http / sse
    url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    auth: AuthConfig | None = None
    # routekit extras
    connect_timeout: float = Field(default=30.0, gt=0)
    call_timeout: float | None = Field(default=300.0, gt=0)
    allow_tools: list[str] | None = None
    deny_tools: list[str] = Field(default_factory=list)
    trust: Literal["ask", "auto"] = "ask"
    auto_approve: list[str] = Field(default_factory=list)
    roots: list[RootConfig] = Field(default_factory=list)
    disabled: bool = False
    max_restarts: int = Field(default=5, ge=0)
    protocol: Literal["auto", "legacy", "2026-07-28"] = "auto"

    def tool_allowed(self, tool: str) -> bool:
        """Whether the allow/deny lists let ``tool`` (the server's own name for it) through."""
        if any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.deny_tools):
            return False
        return self.allow_tools is None or any(fnmatch.fnmatchcase(tool, p) for p in self.allow_tools)

    def auto_approved(self, tool: str) -> bool:
        """Whether calls to ``tool`` may run without asking (``trust: auto`` or an ``auto_approve`` match)."""
        return self.trust == "auto" or any(fnmatch.fnmatchcase(tool, p) for p in self.auto_approve)

    def env_values(self) -> dict[str, str]:
        return {key: value.get_secret_value() for key, value in self.env.items()}

    def header_values(self) -> dict[str, str]:
        return {key: value.get_secret_value() for key, value in self.headers.items()}

    def secret_values(self) -> list[str]:
        """Every env and header value (each one is a secret), and the token of ``Bearer <token>`` values,
        for scrubbing messages."""
        found: list[str] = []
        for value in [*self.env_values().values(), *self.header_values().values()]:
            found.append(value)
            if " " in value and (bare := value.split(" ", 1)[1].strip()):
                found.append(bare)
        return found


class McpConfig(BaseModel):
    """All configured servers, keyed by name (the prefix of canonical tool names ``server.tool``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: dict[str, ServerConfig] = Field(default_factory=dict)

    @field_validator("servers")
    @classmethod
    def _names_match(cls, servers: dict[str, ServerConfig]) -> dict[str, ServerConfig]:
        for key, server in servers.items():
            if key != server.name:
                raise ValueError(f"server key {key!r} differs from its name {server.name!r}")
        return servers

    @property
    def enabled(self) -> dict[str, ServerConfig]:
        return {name: server for name, server in self.servers.items() if not server.disabled}


# --------------------------------------------------------------------------- parsing


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> McpConfig:
    """Read a JSON config file (any of the accepted shapes)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise McpConfigError(None, None, f"cannot read {path}: {exc}") from exc
    return parse_config(data, environ)


def parse_config(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> McpConfig:
    """Build an :class:`McpConfig` from decoded JSON, expanding ``${VAR}`` from ``environ`` (default: os.environ)."""
    env = os.environ if environ is None else environ
    servers_raw = _servers_section(data)
    servers: dict[str, ServerConfig] = {}
    for name, raw in servers_raw.items():
        servers[name] = parse_server(name, raw, env)
    return McpConfig(servers=servers)


def _servers_section(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise McpConfigError(None, None, "the top level must be a JSON object with an 'mcpServers' object")
    section: Any
    if "mcpServers" in data:
        section = data["mcpServers"]
    elif "servers" in data:
        section = data["servers"]
    elif isinstance(data.get("mcp"), Mapping) and "servers" in data["mcp"]:
        section = data["mcp"]["servers"]
    else:
        raise McpConfigError(None, "mcpServers", "missing: expected {'mcpServers': {name: {...}}}")
    if not isinstance(section, Mapping):
        raise McpConfigError(None, "mcpServers", "must be an object mapping server names to server entries")
    return section


def parse_server(name: str, raw: Any, environ: Mapping[str, str]) -> ServerConfig:
    """Validate and normalize one server entry."""
    if not _SERVER_NAME.match(name):
        raise McpConfigError(
            name, None, "server names may use letters, digits, '_' and '-' (no dots: tools are named 'server.tool')"
        )
    if not isinstance(raw, Mapping):
        raise McpConfigError(name, None, "the entry must be a JSON object")
    entry = {key: value for key, value in raw.items() if key not in _IGNORED_KEYS}
    fields: dict[str, Any] = {"name": name}

    transport = _transport_of(name, entry)
    fields["transport"] = transport
    if transport == "stdio":
        fields.update(_stdio_fields(name, entry, environ))
    else:
        fields.update(_http_fields(name, entry, environ))
    fields.update(_extras(name, entry))
    if entry:
        unknown = ", ".join(sorted(entry))
        raise McpConfigError(name, sorted(entry)[0], f"unknown field(s): {unknown}")
    try:
        return ServerConfig(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise McpConfigError(name, field, first["msg"]) from None


def _transport_of(name: str, entry: dict[str, Any]) -> TransportKind:
    declared = None
    for key in ("type", "transport", "transportType"):
        if key in entry:
            declared_field, declared = key, entry.pop(key)
            if not isinstance(declared, str) or declared.lower() not in _TRANSPORT_ALIASES:
                choices = "stdio, http (streamable-http) or sse"
                raise McpConfigError(name, declared_field, f"unknown transport {declared!r}; use {choices}")
            return _TRANSPORT_ALIASES[declared.lower()]
    if "command" in entry:
        return "stdio"
    if "url" in entry or "serverUrl" in entry:
        return "http"
    raise McpConfigError(name, "command", "set 'command' (stdio server) or 'url' (remote server)")


def _stdio_fields(name: str, entry: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    command = entry.pop("command", None)
    if not isinstance(command, str) or not command.strip():
        raise McpConfigError(name, "command", "a stdio server needs a non-empty 'command' string")
    out["command"] = _expand(command, name, "command", environ)
    args = entry.pop("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        raise McpConfigError(name, "args", "must be a list of strings")
    out["args"] = [_expand(str(a), name, f"args[{i}]", environ) for i, a in enumerate(args)]
    out["env"] = _string_map(entry.pop("env", {}), name, "env", environ)
    if (cwd := entry.pop("cwd", None)) is not None:
        if not isinstance(cwd, str):
            raise McpConfigError(name, "cwd", "must be a string path")
        out["cwd"] = _expand(cwd, name, "cwd", environ)
    inherit = entry.pop("inherit_env", entry.pop("inheritEnv", []))
    if not isinstance(inherit, list) or not all(isinstance(v, str) for v in inherit):
        raise McpConfigError(name, "inherit_env", "must be a list of environment variable names")
    out["inherit_env"] = inherit
    for stray in ("url", "headers", "serverUrl", "auth", "oauth"):
        if stray in entry:
            raise McpConfigError(name, stray, "only remote (http/sse) servers take this field")
    return out


def _http_fields(name: str, entry: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    url = entry.pop("url", None)
    url_field = "url"
    if url is None and "serverUrl" in entry:
        url, url_field = entry.pop("serverUrl"), "serverUrl"
    if not isinstance(url, str) or not url:
        raise McpConfigError(name, "url", "a remote server needs a 'url' string")
    url = _expand(url, name, url_field, environ)
    _check_url(name, url_field, url)
    for stray in ("command", "args", "cwd"):
        if stray in entry:
            raise McpConfigError(name, stray, "only stdio servers take this field")
    out: dict[str, Any] = {"url": url, "headers": _string_map(entry.pop("headers", {}), name, "headers", environ)}
    for key in ("auth", "oauth"):
        if key in entry:
            auth = _auth(name, key, entry.pop(key), environ)
            if auth is not None:
                out["auth"] = auth
    return out


def _camel_to_snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _expand_tree(value: Any, server: str, field: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _expand(value, server, field, environ)
    if isinstance(value, Mapping):
        return {
            _camel_to_snake(str(k)): _expand_tree(v, server, f"{field}.{_camel_to_snake(str(k))}", environ)
            for k, v in value.items()
        }
    return value


def _auth(name: str, key: str, value: Any, environ: Mapping[str, str]) -> AuthConfig | None:
    """The ``auth`` section: ``false``/``null`` (none), ``true`` (authorization code + registration) or an object."""
    if value is None or value is False:
        return None
    if value is True:
        return AuthConfig()
    if not isinstance(value, Mapping):
        raise McpConfigError(name, key, "must be an object (or true for the default OAuth flow)")
    fields = _expand_tree(value, name, key, environ)
    try:
        auth = AuthConfig(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([key, *(str(p) for p in first["loc"])])
        raise McpConfigError(name, where, first["msg"]) from None
    if auth.grant == "client_credentials" and auth.client_id is None:
        raise McpConfigError(name, f"{key}.client_id", "the client_credentials grant needs a client_id")
    if auth.grant == "enterprise" and (auth.idp is None or auth.client_id is None or auth.client_secret is None):
        raise McpConfigError(
            name, f"{key}.idp", "enterprise authorization needs 'idp', 'client_id' and 'client_secret'"
        )
    if auth.grant == "jwt_bearer" and auth.assertion is None and auth.assertion_file is None:
        raise McpConfigError(name, f"{key}.assertion", "the jwt_bearer grant needs 'assertion' or 'assertion_file'")
    if auth.resolved_grant() == "jwt_bearer" and auth.client_id is None:
        raise McpConfigError(name, f"{key}.client_id", "the jwt_bearer grant needs the workload's client_id")
    if (auth.client_secret is not None or auth.private_key is not None) and auth.client_id is None:
        raise McpConfigError(name, f"{key}.client_id", "a client secret or private key needs its client_id")
    for field in ("issuer", "client_metadata_url"):
        if (url := getattr(auth, field)) is not None:
            _check_url(name, f"{key}.{field}", url)
    if auth.idp is not None:
        _check_url(name, f"{key}.idp.token_endpoint", auth.idp.token_endpoint)
    return auth


def _check_url(name: str, field: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise McpConfigError(name, field, f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise McpConfigError(name, field, f"URL scheme must be http or https, not {parts.scheme or 'missing'!r}")
    if not parts.hostname:
        raise McpConfigError(name, field, "URL has no host")
    if parts.username or parts.password:
        raise McpConfigError(name, field, "credentials in the URL are not allowed; put them in 'headers'")


_EXTRA_ALIASES: dict[str, str] = {
    "connect_timeout": "connect_timeout",
    "connectTimeout": "connect_timeout",
    "startup_timeout": "connect_timeout",
    "call_timeout": "call_timeout",
    "callTimeout": "call_timeout",
    "timeout": "call_timeout",  # Cline's per-server timeout (seconds)
    "allow_tools": "allow_tools",
    "allowTools": "allow_tools",
    "includeTools": "allow_tools",
    "deny_tools": "deny_tools",
    "denyTools": "deny_tools",
    "excludeTools": "deny_tools",
    "disabledTools": "deny_tools",
    "trust": "trust",
    "auto_approve": "auto_approve",
    "autoApprove": "auto_approve",
    "alwaysAllow": "auto_approve",
    "roots": "roots",
    "disabled": "disabled",
    "enabled": "enabled",
    "max_restarts": "max_restarts",
    "protocol": "protocol",
}


def _extras(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in [k for k in entry if k in _EXTRA_ALIASES]:
        target, value = _EXTRA_ALIASES[key], entry.pop(key)
        if target == "enabled":
            if not isinstance(value, bool):
                raise McpConfigError(name, key, "must be true or false")
            out["disabled"] = not value
        elif target == "trust":
            out["trust"] = _trust(name, key, value)
        elif target == "roots":
            out["roots"] = _roots(name, key, value)
        elif target in ("allow_tools", "deny_tools", "auto_approve"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise McpConfigError(name, key, "must be a list of tool names (globs allowed)")
            out[target] = value
        else:
            out[target] = value
    return out


def _trust(name: str, key: str, value: Any) -> str:
    if value is True or value in ("auto", "trusted", "always"):
        return "auto"
    if value is False or value in ("ask", "untrusted", "never"):
        return "ask"
    raise McpConfigError(name, key, "must be 'ask' or 'auto' (or true/false)")


def _roots(name: str, key: str, value: Any) -> list[RootConfig]:
    if not isinstance(value, list):
        raise McpConfigError(name, key, "must be a list of paths, file:// URIs or {uri, name} objects")
    roots: list[RootConfig] = []
    for index, item in enumerate(value):
        root_name: str | None = None
        if isinstance(item, Mapping):
            location, root_name = item.get("uri", item.get("path")), item.get("name")
        else:
            location = item
        if not isinstance(location, str) or not location:
            raise McpConfigError(name, f"{key}[{index}]", "a root needs a path or file:// URI")
        if "://" in location:
            if not location.startswith("file://"):
                raise McpConfigError(name, f"{key}[{index}]", "root URIs must use the file:// scheme")
            uri = location
        else:
            uri = Path(location).expanduser().resolve().as_uri()
        roots.append(RootConfig(uri=uri, name=root_name if isinstance(root_name, str) else None))
    return roots


def _string_map(value: Any, name: str, field: str, environ: Mapping[str, str]) -> dict[str, SecretStr]:
    if not isinstance(value, Mapping):
        raise McpConfigError(name, field, "must be an object of string values")
    out: dict[str, SecretStr] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise McpConfigError(name, f"{field}.{key}", "must be a string")
        text = str(item).lower() if isinstance(item, bool) else str(item)
        out[str(key)] = SecretStr(_expand(text, name, f"{field}.{key}", environ))
    return out


def _expand(text: str, server: str, field: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}``, ``${env:VAR}`` and ``${VAR:-default}``; a missing variable without default is an error."""

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        if var in environ:
            return environ[var]
        if default is not None:
            return default
        raise McpConfigError(server, field, f"environment variable {var!r} is not set (referenced as {match[0]})")

    return _VAR.sub(substitute, text)
