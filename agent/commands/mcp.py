"""``routekit mcp``: MCP server configs (secrets in env/headers stored encrypted) and what providers receive.

A server is stored as its ``mcpServers`` entry without ``env``/``headers``; those two go into the
encrypted columns. ``${VAR}`` references are kept as written and expanded when the server is started,
exactly as in an ``mcpServers`` file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.commands._common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    console,
    json_option,
    opened_store,
    pick_user,
    print_json,
    run_async,
    user_option,
)

if TYPE_CHECKING:  # the MCP SDK and the schema compiler are imported only by the commands that use them
    from mcp_bridge import ServerConfig, ServerStatus
    from providers.schema import CompiledToolset
    from providers.types import ToolSpec
    from storage import McpServerRecord, SQLStore

DEFAULT_TARGETS = ("anthropic", "openai", "gemini", "ollama")
_SECRET_FIELDS = ("env", "headers")


# --------------------------------------------------------------------------- shared with doctor/chat


def server_from_stored(name: str, config: dict[str, Any], env: dict[str, str], headers: dict[str, str]) -> ServerConfig:
    """The live ``ServerConfig`` of a stored server (``${VAR}`` expanded from this process's environment)."""
    from mcp_bridge.config import parse_server

    raw = dict(config)
    if env:
        raw["env"] = env
    if headers:
        raw["headers"] = headers
    return parse_server(name, raw, os.environ)


async def load_servers(store: SQLStore, user_id: str) -> tuple[dict[str, ServerConfig], dict[str, str]]:
    """The user's servers (their own over global ones of the same name) and, apart, those that cannot load."""
    from providers.errors import ConfigError

    servers: dict[str, ServerConfig] = {}
    problems: dict[str, str] = {}
    names = sorted({record.name for record in await store.mcp_servers.list(user_id)})
    for name in names:
        try:
            stored = await store.mcp_servers.resolve(user_id, name)
            servers[name] = server_from_stored(name, stored.config, stored.env, stored.headers)
        except ConfigError as exc:
            problems[name] = str(exc)
    return servers, problems


def _record_dict(record: McpServerRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "scope": "global" if record.owner is None else "user",
        "config": record.config,
        "env": record.env_masked,
        "headers": record.headers_masked,
        "status": record.status,
    }


# --------------------------------------------------------------------------- the group


@click.group("mcp")
def mcp() -> None:
    """Manage MCP servers and see what each provider receives of their tools.

    \b
    Examples:
      routekit mcp add files -- npx -y @modelcontextprotocol/server-filesystem /tmp
      routekit mcp add search --url https://search.example/mcp --header-env Authorization=SEARCH_AUTH
      routekit mcp add --from-file ~/.cursor/mcp.json
      routekit mcp list
      routekit mcp tools --provider openai
    """


@mcp.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("name", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--url", help="A remote server's URL (streamable HTTP, or SSE with --transport sse).")
@click.option("--transport", type=click.Choice(["stdio", "http", "sse"]), help="Transport (default: from the entry).")
@click.option(
    "--env",
    "envs",
    multiple=True,
    metavar="KEY[=VALUE]",
    help="Environment for a stdio server: KEY=VALUE, or KEY alone to copy KEY's value from your environment "
    "(keeps secrets out of argv). Stored encrypted. Repeatable.",
)
@click.option(
    "--header-env",
    "header_envs",
    multiple=True,
    metavar="NAME=VAR",
    help="HTTP header NAME for a remote server, valued from environment variable VAR. Stored encrypted.",
)
@click.option("--cwd", help="Working directory of a stdio server.")
@click.option("--trust", type=click.Choice(["ask", "auto"]), help="ask: calls need approval (default); auto: none.")
@click.option("--auto-approve", "auto_approve", multiple=True, metavar="GLOB", help="Tools that run without asking.")
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Import servers from an mcpServers JSON file (Claude Desktop, Cursor, VS Code...).",
)
@click.option("--global", "global_", is_flag=True, help="Make the server available to every user (administrators).")
@user_option
@json_option
def add(
    name: str | None,
    command: tuple[str, ...],
    url: str | None,
    transport: str | None,
    envs: tuple[str, ...],
    header_envs: tuple[str, ...],
    cwd: str | None,
    trust: str | None,
    auto_approve: tuple[str, ...],
    from_file: Path | None,
    global_: bool,
    user_name: str | None,
    as_json: bool,
) -> None:
    """Add (or replace) an MCP server: NAME -- COMMAND [ARGS...] for stdio, NAME --url URL for remote.

    \b
    Examples:
      routekit mcp add time -- uvx mcp-server-time
      routekit mcp add gh --env GITHUB_TOKEN -- npx -y @modelcontextprotocol/server-github
      routekit mcp add docs --url https://docs.example/mcp --header-env Authorization=DOCS_AUTH
      routekit mcp add --from-file claude_desktop_config.json
    """
    if from_file is not None:
        if command or url:
            raise click.UsageError("--from-file imports whole entries; give no command or --url with it")
        entries = _entries_from_file(from_file, name)
    else:
        if not name:
            raise click.UsageError("give the server a NAME (or use --from-file)")
        entries = {name: _entry_from_options(command, url, transport, envs, header_envs, cwd, trust, auto_approve)}
    for server_name, entry in entries.items():
        _validate(server_name, entry)
    records = run_async(_save, entries, global_, user_name, as_json=as_json)
    if as_json:
        print_json([_record_dict(r) for r in records])
        return
    for record in records:
        console().print(f"saved MCP server [bold]{record.name}[/] ({'global' if record.owner is None else 'user'})")


def _entry_from_options(
    command: tuple[str, ...],
    url: str | None,
    transport: str | None,
    envs: tuple[str, ...],
    header_envs: tuple[str, ...],
    cwd: str | None,
    trust: str | None,
    auto_approve: tuple[str, ...],
) -> dict[str, Any]:
    if command and url:
        raise click.UsageError("give either a command (stdio) or --url (remote), not both")
    if not command and not url:
        raise click.UsageError("give a command after `--` (stdio server) or --url URL (remote server)")
    entry: dict[str, Any] = {}
    if command:
        entry.update(command=command[0], args=list(command[1:]))
        if cwd:
            entry["cwd"] = cwd
        if header_envs:
            raise click.UsageError("--header-env is for remote servers (--url)")
        env = _env_values(envs)
        if env:
            entry["env"] = env
    else:
        entry["url"] = url
        if envs:
            raise click.UsageError("--env is for stdio servers; remote servers take --header-env")
        headers = _header_values(header_envs)
        if headers:
            entry["headers"] = headers
    if transport:
        entry["type"] = transport
    if trust:
        entry["trust"] = trust
    if auto_approve:
        entry["auto_approve"] = list(auto_approve)
    return entry


def _env_values(specs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not key:
            raise click.UsageError(f"--env takes KEY=VALUE or KEY, got {spec!r}")
        if not sep:
            if key not in os.environ:
                raise CommandFailed(f"--env {key}: the variable is not set in your environment", EXIT_USAGE)
            value = os.environ[key]
        env[key] = value
    return env


def _header_values(specs: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for spec in specs:
        header, sep, var = spec.partition("=")
        if not sep or not header or not var:
            raise click.UsageError(f"--header-env takes NAME=VAR, got {spec!r}")
        if not os.environ.get(var):
            raise CommandFailed(f"--header-env {header}: the variable {var} is not set or empty", EXIT_USAGE)
        headers[header] = os.environ[var]
    return headers


def _entries_from_file(path: Path, only: str | None) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandFailed(f"cannot read {path}: {exc}") from None
    section: Any = None
    if isinstance(data, dict):
        section = data.get("mcpServers", data.get("servers"))
        if section is None and isinstance(data.get("mcp"), dict):
            section = data["mcp"].get("servers")
    if not isinstance(section, dict):
        raise CommandFailed(f"{path}: expected {{'mcpServers': {{name: {{...}}}}}}")
    if only is not None:
        if only not in section:
            raise CommandFailed(f"{path} has no server named {only!r} (it has: {', '.join(sorted(section))})")
        section = {only: section[only]}
    return {str(k): dict(v) if isinstance(v, dict) else v for k, v in section.items()}


def _validate(name: str, entry: Any) -> None:
    """Refuse an entry the hub could not start; a ``${VAR}`` unset here is only warned about."""
    from mcp_bridge.config import McpConfigError, parse_server

    try:
        parse_server(name, entry, os.environ)
    except McpConfigError as exc:
        if "is not set (referenced as" not in str(exc):
            raise CommandFailed(str(exc), EXIT_USAGE) from None
        click.echo(f"routekit: warning: {exc} (it must be set when the server starts)", err=True)


async def _save(entries: dict[str, dict[str, Any]], global_: bool, user_name: str | None) -> list[McpServerRecord]:
    async with opened_store() as store:
        owner = None if global_ else (await pick_user(store, user_name)).id
        out = []
        for name, entry in entries.items():
            config = {k: v for k, v in entry.items() if k not in _SECRET_FIELDS}
            env = {str(k): str(v) for k, v in (entry.get("env") or {}).items()}
            headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
            out.append(await store.mcp_servers.save(owner, name, config, env=env or None, headers=headers or None))
        return out


@mcp.command("list")
@user_option
@json_option
def list_(user_name: str | None, as_json: bool) -> None:
    """List MCP servers (yours and the global ones) with env and header values masked.

    \b
    Examples:
      routekit mcp list
      routekit mcp list --json
    """
    records = run_async(_list, user_name, as_json=as_json)
    if as_json:
        print_json([_record_dict(r) for r in records])
        return
    if not records:
        console().print("no MCP servers yet: add one with `routekit mcp add NAME -- COMMAND`")
        return
    from rich.table import Column, Table

    table = Table(
        Column("name", no_wrap=True), "scope", "transport", "command / url", "env / headers", "trust", "status"
    )
    for r in records:
        cfg = r.config
        target = cfg.get("url") or cfg.get("serverUrl") or " ".join([cfg.get("command", ""), *cfg.get("args", [])])
        secrets = ", ".join(f"{k}={v}" for k, v in {**r.env_masked, **r.headers_masked}.items())
        kind = cfg.get("type") or cfg.get("transport") or ("stdio" if "command" in cfg else "http")
        status = "[green]ok[/]" if r.status == "ok" else f"[red]{r.status.replace('_', ' ')}[/]"
        scope = "global" if r.owner is None else "user"
        table.add_row(r.name, scope, kind, target, secrets, str(cfg.get("trust", "ask")), status)
    console().print(table)


async def _list(user_name: str | None) -> list[McpServerRecord]:
    async with opened_store() as store:
        user = await pick_user(store, user_name)
        return await store.mcp_servers.list(user.id)


@mcp.command("remove")
@click.argument("name")
@click.option("--global", "global_", is_flag=True, help="Remove a global server (administrators).")
@user_option
@json_option
def remove(name: str, global_: bool, user_name: str | None, as_json: bool) -> None:
    """Remove an MCP server and its stored secrets.

    \b
    Examples:
      routekit mcp remove files
      routekit mcp remove search --global
    """
    run_async(_remove, name, global_, user_name, as_json=as_json)
    if as_json:
        print_json({"removed": name})
    else:
        console().print(f"removed MCP server {name}")


async def _remove(name: str, global_: bool, user_name: str | None) -> None:
    async with opened_store() as store:
        owner = None if global_ else (await pick_user(store, user_name)).id
        existing = [r for r in await store.mcp_servers.list(owner, include_global=False) if r.name == name]
        if not existing:
            where = "global" if global_ else "your"
            raise CommandFailed(f"no {where} MCP server named {name!r}: `routekit mcp list` shows them")
        await store.mcp_servers.delete(owner, name)


# --------------------------------------------------------------------------- tools


@mcp.command("tools")
@click.option(
    "--provider",
    "-p",
    "providers_",
    multiple=True,
    metavar="P",
    help="Show what this provider or preset receives (repeatable; default: anthropic, openai, gemini, ollama).",
)
@click.option("--server", "-s", "servers_", multiple=True, metavar="NAME", help="Only these servers (repeatable).")
@click.option(
    "--mcp-config",
    "mcp_config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Servers from this mcpServers JSON file (as `routekit run --mcp-config`) instead of the stored ones.",
)
@click.option("--schemas/--no-schemas", default=None, help="Print each compiled schema (default: with --provider).")
@user_option
@json_option
def tools(
    providers_: tuple[str, ...],
    servers_: tuple[str, ...],
    mcp_config: Path | None,
    schemas: bool | None,
    user_name: str | None,
    as_json: bool,
) -> None:
    """Start the MCP servers, list every tool, and show exactly what each provider receives.

    The servers are started as a session starts them (the same client capabilities: sampling,
    elicitation and each server's roots), so the list is the one a session gets. For each provider: the
    provider-side tool name, strict mode and why, the compiled parameters schema, and the schema
    compiler's loss report (what was moved into a description, rewritten or dropped). Exit code 2 when a
    server fails to start or a schema cannot be expressed for a provider.

    \b
    Examples:
      routekit mcp tools
      routekit mcp tools --provider openai --provider gemini
      routekit mcp tools --server files --json
      routekit mcp tools --mcp-config mcp.json
    """
    from providers.errors import ConfigError
    from providers.profiles import get_profile

    targets = providers_ or DEFAULT_TARGETS
    for target in targets:
        try:
            get_profile(target)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--provider") from None
    report = run_async(_tools, targets, servers_, user_name, mcp_config, as_json=as_json)
    if as_json:
        print_json(report)
    else:
        _print_tools(report, show_schemas=bool(providers_) if schemas is None else schemas)
    broken = any(s["state"] != "ready" for s in report["servers"].values()) or any(
        p["errors"] for p in report["providers"].values()
    )
    sys.exit(EXIT_USAGE if broken else EXIT_OK)


async def _tools(
    targets: tuple[str, ...], only: tuple[str, ...], user_name: str | None, config_file: Path | None
) -> dict[str, Any]:
    from agent.session import session_hub
    from mcp_bridge import McpConfig

    problems: dict[str, str] = {}
    if config_file is not None:
        servers = _servers_from_file(config_file)
        where = f"{config_file} has them"
    else:
        async with opened_store() as store:
            user = await pick_user(store, user_name)
            servers, problems = await load_servers(store, user.id)
        where = "`routekit mcp list` shows them"
    unknown = [name for name in only if name not in servers and name not in problems]
    if unknown:
        raise CommandFailed(f"no MCP server named {', '.join(unknown)}: {where}")
    if only:
        servers = {k: v for k, v in servers.items() if k in only}
        problems = {k: v for k, v in problems.items() if k in only}
    server_report: dict[str, dict[str, Any]] = {
        name: {"state": "failed", "error": problem, "tools": 0} for name, problem in problems.items()
    }
    async with session_hub(McpConfig(servers=servers)) as hub:
        for name, status in hub.status().items():
            server_report[name] = _status_dict(status)
        specs = await hub.list_tools()
    return {
        "servers": server_report,
        "tools": [_spec_dict(spec) for spec in specs],
        "providers": {target: _compile_report(specs, target) for target in targets},
    }


def _servers_from_file(path: Path) -> dict[str, ServerConfig]:
    from mcp_bridge.config import load_config
    from providers.errors import ConfigError

    try:
        return dict(load_config(path).servers)
    except ConfigError as exc:
        raise CommandFailed(str(exc), EXIT_USAGE) from None


def _status_dict(status: ServerStatus) -> dict[str, Any]:
    return {
        "state": status.state,
        "error": status.error,
        "stderr_tail": status.stderr_tail or None,
        "protocol_version": status.protocol_version,
        "server_name": status.server_name,
        "tools": status.tools,
    }


def _spec_dict(spec: ToolSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "input_schema": spec.input_schema,
        "output_schema": spec.output_schema,
        "annotations": spec.annotations.model_dump(exclude_none=True) if spec.annotations else None,
    }


def _compile_report(specs: list[ToolSpec], target: str) -> dict[str, Any]:
    """Compile all tools for ``target``; a tool that cannot be expressed is reported and left out."""
    from providers.errors import ToolSchemaError
    from providers.profiles import get_profile
    from providers.schema import compile_tools, format_loss_report

    profile = get_profile(target)
    errors: dict[str, str] = {}
    usable = list(specs)
    for spec in specs:
        try:
            compile_tools([spec], profile)
        except ToolSchemaError as exc:
            errors[spec.name] = str(exc)
            usable.remove(spec)
    toolset: CompiledToolset = compile_tools(usable, profile)
    return {
        "target": toolset.target,
        "tools": [
            {
                "name": tool.spec.name,
                "provider_name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                "strict": tool.strict,
                "strict_reason": tool.strict_reason,
                "schema_form": tool.schema_form,
                "losses": [
                    {
                        "path": loss.path,
                        "wire_paths": list(loss.wire_paths),
                        "keyword": loss.keyword,
                        "action": loss.action,
                        "detail": loss.detail,
                    }
                    for loss in tool.losses
                ],
            }
            for tool in toolset.tools
        ],
        "errors": errors,
        "loss_report": format_loss_report(toolset),
    }


def _print_tools(report: dict[str, Any], *, show_schemas: bool) -> None:
    from rich.markup import escape
    from rich.table import Column, Table

    out = console()
    for name, status in report["servers"].items():
        if status["state"] == "ready":
            version = f", protocol {status['protocol_version']}" if status.get("protocol_version") else ""
            out.print(f"[green]✓[/] server [bold]{name}[/]: {status['tools']} tools{version}")
        else:
            out.print(f"[red]✗[/] server [bold]{name}[/]: {status['state']}: {escape(status['error'] or '')}")
            if status.get("stderr_tail"):
                out.print(escape(status["stderr_tail"].rstrip()), style="dim")
    if not report["servers"]:
        out.print("no MCP servers configured: add one with `routekit mcp add NAME -- COMMAND`")
    if report["tools"]:
        table = Table(Column("tool", no_wrap=True), "description", "hints", title="MCP tools")
        for tool in report["tools"]:
            hints = ", ".join(k.removesuffix("Hint") for k, v in (tool["annotations"] or {}).items() if v is True)
            description = (tool["description"] or "").strip().splitlines()
            table.add_row(tool["name"], escape(description[0] if description else ""), hints)
        out.print(table)
    for target, compiled in report["providers"].items():
        out.rule(f"{target} receives")
        out.print(escape(compiled["loss_report"]))
        for tool_name, error in compiled["errors"].items():
            out.print(f"[red]cannot send {tool_name}[/]: {escape(error)}")
        if show_schemas:
            for tool in compiled["tools"]:
                strict = ", strict" if tool["strict"] else ""
                out.print(f"[bold]{tool['provider_name']}[/] ({tool['schema_form']}{strict})")
                out.print_json(json.dumps(tool["parameters"]))
    if report["providers"] and not show_schemas:
        out.print("(add --schemas, or --provider P, to print each compiled schema)", style="dim")
