"""``routekit doctor``: check the data directory, master key, database, MCP servers and provider keys.

Every line says what was checked, what was found and, when something is wrong, how to fix it. The exit
code is 0 when nothing is broken (warnings allowed), 3 when only provider checks failed, 2 otherwise.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, Literal

import click

from agent.commands._common import (
    EXIT_OK,
    EXIT_PROVIDER,
    EXIT_USAGE,
    SECONDS,
    console,
    json_option,
    pick_user,
    print_json,
    run_async,
    store_url,
    user_option,
)

Status = Literal["ok", "warn", "fail", "skipped"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None
    kind: Literal["local", "provider"] = "local"


@click.command("doctor")
@click.option("--timeout", "check_timeout", type=SECONDS, default=20.0, show_default=True, help="Seconds per provider.")
@user_option
@json_option
def doctor(check_timeout: float, user_name: str | None, as_json: bool) -> None:
    """Check that routekit can run here, with a fix for everything that is broken.

    Checks the data directory, the master key, the database, that every MCP server starts, and that every
    provider key is accepted (without spending tokens).

    \b
    Examples:
      routekit doctor
      routekit doctor --json
    """
    checks = run_async(_doctor, check_timeout, user_name, as_json=as_json)
    if as_json:
        print_json([asdict(c) for c in checks])
    else:
        _print(checks)
    failed = [c for c in checks if c.status == "fail"]
    if not failed:
        sys.exit(EXIT_OK)
    sys.exit(EXIT_PROVIDER if all(c.kind == "provider" for c in failed) else EXIT_USAGE)


def _print(checks: list[Check]) -> None:
    from rich.markup import escape

    marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "skipped": "[dim]-[/]"}
    out = console()
    for check in checks:
        out.print(f"{marks[check.status]} [bold]{escape(check.name)}[/]: {escape(check.detail)}")
        if check.fix:
            out.print(f"    fix: {escape(check.fix)}", style="cyan")
    failed = sum(c.status == "fail" for c in checks)
    out.print(f"\n{failed} problem(s) found" if failed else "\nall good")


async def _doctor(check_timeout: float, user_name: str | None) -> list[Check]:
    checks = [_data_dir(), _permissions(), _master_key()]
    store, database = await _database()
    checks.append(database)
    if store is None:
        checks.append(Check("MCP servers", "skipped", "the database is not usable"))
        checks.append(Check("provider keys", "skipped", "the database is not usable"))
        return checks
    try:
        user = await pick_user(store, user_name)
        checks.extend(await _mcp_servers(store, user.id))
        checks.extend(await _providers(store, user.id, check_timeout))
    finally:
        await store.close()
    return checks


def _data_dir() -> Check:
    from storage import data_home

    home = data_home()
    where = "ROUTEKIT_HOME" if os.environ.get("ROUTEKIT_HOME") else "the default location"
    if not home.exists():
        return Check("data directory", "ok", f"{home} ({where}) does not exist yet; it is created on first use")
    if not home.is_dir():
        return Check("data directory", "fail", f"{home} is not a directory", "remove it or set ROUTEKIT_HOME elsewhere")
    if not os.access(home, os.W_OK | os.X_OK):
        return Check(
            "data directory",
            "fail",
            f"{home} is not writable by this user",
            f"chmod u+rwx {home}, or set ROUTEKIT_HOME to a writable directory",
        )
    return Check("data directory", "ok", f"{home} ({where})")


def _permissions() -> Check:
    """The data directory 0700 and the SQLite database with its -wal/-shm files 0600 (chat history is plain
    text there); looser modes are a warning with the chmod that fixes them."""
    import shlex

    from storage import data_home, default_url
    from storage.files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, sqlite_files, too_open
    from storage.sqlite import sqlite_path_from_url

    url = store_url() or default_url()
    database = sqlite_path_from_url(url) if url.startswith("sqlite://") or "://" not in url else None
    directories = list(dict.fromkeys([data_home(), *([database.parent] if database is not None else [])]))
    files = sqlite_files(database) if database is not None else []
    loose_dirs = [(d, m) for d in directories if (m := too_open(d, PRIVATE_DIR_MODE)) is not None]
    loose_files = [(f, m) for f in files if (m := too_open(f, PRIVATE_FILE_MODE)) is not None]
    if not loose_dirs and not loose_files:
        shown = ", ".join(str(p) for p in [*directories, *files] if p.exists()) or "nothing created yet"
        return Check("data permissions", "ok", f"private to this user: {shown}")
    found = ", ".join(f"{p} is {m:o}" for p, m in [*loose_dirs, *loose_files])
    fixes = []
    if loose_dirs:
        fixes.append("chmod 700 " + " ".join(shlex.quote(str(p)) for p, _ in loose_dirs))
    if loose_files:
        fixes.append("chmod 600 " + " ".join(shlex.quote(str(p)) for p, _ in loose_files))
    return Check(
        "data permissions",
        "warn",
        f"readable by other users ({found}); the database holds chat history in plain text",
        " && ".join(fixes),
    )


def _master_key() -> Check:
    from storage import MASTER_KEY_ENV, MasterKeyError, data_home, load_keyring, parse_master_keys
    from storage.crypto import KEY_FILE_NAME

    generate = 'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
    if os.environ.get(MASTER_KEY_ENV) is not None:
        try:
            ring = parse_master_keys(os.environ[MASTER_KEY_ENV])
        except MasterKeyError as exc:
            return Check("master key", "fail", str(exc), f"set {MASTER_KEY_ENV} to a key made with: {generate}")
        return Check("master key", "ok", f"from {MASTER_KEY_ENV}: versions {', '.join(ring.versions)}")
    path = data_home() / KEY_FILE_NAME
    if not path.exists():
        return Check(
            "master key",
            "warn",
            f"no {MASTER_KEY_ENV} and no {path} yet: a key file (0600) is created on first use",
            f"back up {path} once it exists: without it, stored keys cannot be decrypted",
        )
    try:
        ring = load_keyring(path.parent, create=False)
    except MasterKeyError as exc:
        fix = f"chmod 600 {path}" if "readable by other users" in str(exc) else f"restore {path} from a backup"
        return Check("master key", "fail", str(exc), fix)
    return Check("master key", "ok", f"key file {path} (mode 0600): versions {', '.join(ring.versions)}")


async def _database() -> tuple[Any, Check]:
    from storage import DatabaseUnavailable, MasterKeyError, SchemaTooNew, StorageError, default_url, open_store

    url = store_url() or default_url()
    shown = url if url.startswith("sqlite") else url.split("@")[-1]  # never print a password in a URL
    try:
        store = await open_store(store_url())
    except MasterKeyError as exc:
        return None, Check("database", "fail", str(exc), "configure the master key this database was created with")
    except SchemaTooNew as exc:
        return None, Check("database", "fail", str(exc), "upgrade routekit to the version that migrated it")
    except DatabaseUnavailable as exc:
        return None, Check("database", "fail", str(exc), "check ROUTEKIT_DATABASE_URL and that the server is up")
    except (StorageError, OSError) as exc:
        return None, Check("database", "fail", f"{type(exc).__name__}: {exc}", "check the path and its permissions")
    version = await store.schema_version()
    return store, Check("database", "ok", f"{shown} ({store.dialect}, schema version {version})")


async def _mcp_servers(store: Any, user_id: str) -> list[Check]:
    from agent.commands.mcp import load_servers
    from mcp_bridge import McpConfig, McpHub

    servers, problems = await load_servers(store, user_id)
    checks = [
        Check(f"MCP server {name}", "fail", problem, f"re-add it: routekit mcp add {name} ...")
        for name, problem in problems.items()
    ]
    if not servers and not problems:
        return [Check("MCP servers", "ok", "none configured (add one with `routekit mcp add`)")]
    if servers:
        async with McpHub(McpConfig(servers=servers)) as hub:
            statuses = hub.status()
        for name, status in sorted(statuses.items()):
            if status.state == "ready":
                checks.append(Check(f"MCP server {name}", "ok", f"started; {status.tools} tools"))
                continue
            detail = status.error or status.state
            if status.stderr_tail:
                detail += f" (stderr: {status.stderr_tail.strip().splitlines()[-1]})"
            fix = (
                f"check that `{servers[name].command}` is installed and runs on its own"
                if servers[name].transport == "stdio"
                else f"check that {servers[name].url} is reachable and the headers are right"
            )
            checks.append(Check(f"MCP server {name}", "fail", detail, fix))
    return checks


async def _providers(store: Any, user_id: str, check_timeout: float) -> list[Check]:
    import anyio

    from agent.commands.config import check_config

    records = await store.provider_configs.list(user_id)
    if not records:
        return [
            Check(
                "provider keys",
                "warn",
                "no provider configs stored",
                "add one: routekit config add --provider anthropic (or openai, gemini, ollama, ...)",
                kind="provider",
            )
        ]
    results: dict[str, dict[str, Any]] = {}

    async def one(record: Any) -> None:
        results[record.id] = await check_config(store, user_id, record, check_timeout=check_timeout)

    async with anyio.create_task_group() as tg:
        for record in records:
            tg.start_soon(one, record)
    checks = []
    for record in records:
        result = results[record.id]
        name = f"provider {record.provider} {record.label or record.id[:8]}"
        if result["ok"]:
            checks.append(Check(name, "ok", result["detail"], kind="provider"))
        elif result["exit_code"] == EXIT_USAGE:
            fix = (
                f"re-enter the key: routekit config remove {record.id[:8]} && routekit config add -p {record.provider}"
            )
            checks.append(Check(name, "fail", result["detail"], fix, kind="local"))
        else:
            fix = (
                "the provider rejected the key: replace it (routekit config remove / add)"
                if "auth" in result["detail"].lower() or "key" in result["detail"].lower()
                else "check the network and the config's base URL (routekit config list)"
            )
            checks.append(Check(name, "fail", result["detail"], fix, kind="provider"))
    return checks
