"""``routekit config``: the user's provider keys (stored encrypted; shown masked; tested with ``check()``).

A key is read from a hidden prompt, from stdin (``--key-stdin``) or from an environment variable
(``--key-env VAR``) and never from the command line, where it would land in the shell history and in
``ps`` output of every user on the machine.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from agent.commands._common import (
    EXIT_OK,
    EXIT_PROVIDER,
    EXIT_USAGE,
    SECONDS,
    CommandFailed,
    console,
    error_text,
    fail,
    json_option,
    opened_store,
    pick_user,
    print_json,
    run_async,
    user_option,
)

if TYPE_CHECKING:
    from storage import ProviderConfigRecord, SQLStore

_SHORT_ID = 8


def _refuse_argv_key(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """A trap for ``--key VALUE``: refuse without echoing the value back."""
    if value is not None:
        fail(
            "API keys are never taken from the command line (they would be kept in your shell history and be "
            "visible to other users in `ps`). Use the hidden prompt (no option), --key-stdin or --key-env VAR.",
            EXIT_USAGE,
        )


def record_dict(record: ProviderConfigRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "provider": record.provider,
        "label": record.label,
        "base_url": record.base_url,
        "default_model": record.default_model,
        "is_default": record.is_default,
        "status": record.status,
        "api_key": record.api_key_masked,
        "extra_headers": list(record.extra_header_names),
    }


async def find_config(store: SQLStore, user_id: str, ref: str) -> ProviderConfigRecord:
    """A config by id, unique id prefix (4+ characters) or label."""
    records = await store.provider_configs.list(user_id)
    exact = [r for r in records if r.id == ref]
    if exact:
        return exact[0]
    matches = [r for r in records if r.label == ref] or (
        [r for r in records if r.id.startswith(ref)] if len(ref) >= 4 else []
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandFailed(f"no provider config {ref!r}: `routekit config list` shows the ids and labels")
    raise CommandFailed(f"{ref!r} matches {len(matches)} configs: give more of the id")


@click.group("config")
def config() -> None:
    """Manage provider keys and endpoints (stored encrypted; keys are shown masked).

    \b
    Examples:
      routekit config add --provider anthropic              # asks for the key (hidden)
      routekit config add --provider openai --key-env OPENAI_API_KEY --model gpt-4.1-mini
      pass show openai | routekit config add --provider openai --key-stdin --label work
      routekit config add --provider ollama --base-url http://127.0.0.1:11434
      routekit config list
      routekit config test
    """


@config.command("add")
@click.option("--provider", "-p", required=True, help="Provider or preset (see `routekit providers`).")
@click.option("--label", "-l", help="A name for this config (default: its id).")
@click.option("--base-url", help="Endpoint override (proxies, OpenAI-compatible servers, an Ollama host).")
@click.option("--model", "-m", "default_model", help="Default model for this config.")
@click.option("--key-stdin", is_flag=True, help="Read the key from standard input (first line).")
@click.option("--key-env", metavar="VAR", help="Read the key from this environment variable.")
@click.option("--no-key", is_flag=True, help="Store no key (local servers that need none).")
@click.option(
    "--header-env",
    "header_envs",
    multiple=True,
    metavar="NAME=VAR",
    help="Send header NAME with the value of environment variable VAR (stored encrypted). Repeatable.",
)
@click.option("--default/--no-default", "make_default", default=False, help="Make it the provider's default config.")
@click.option("--test", "run_test", is_flag=True, help="Check the key against the provider right away.")
@click.option("--key", "--api-key", "argv_key", hidden=True, expose_value=False, callback=_refuse_argv_key)
@user_option
@json_option
def add(
    provider: str,
    label: str | None,
    base_url: str | None,
    default_model: str | None,
    key_stdin: bool,
    key_env: str | None,
    no_key: bool,
    header_envs: tuple[str, ...],
    make_default: bool,
    run_test: bool,
    user_name: str | None,
    as_json: bool,
) -> None:
    """Add a provider config. The key comes from a hidden prompt, --key-stdin or --key-env, never argv.

    The first config of a provider becomes its default. Exit code 3 when --test finds the key invalid.

    \b
    Examples:
      routekit config add --provider anthropic
      routekit config add --provider openai --key-env OPENAI_API_KEY --default --test
      echo "$GROQ_KEY" | routekit config add --provider groq --key-stdin
      routekit config add --provider openai-compatible --base-url http://127.0.0.1:8000/v1 --no-key -m my-model
    """
    from providers.errors import ConfigError
    from providers.profiles import get_profile

    try:
        profile = get_profile(provider)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE, as_json=as_json)
    if base_url is not None:
        from pydantic import ValidationError

        from providers.base import ProviderConfig

        try:  # the same checks as every later use of the config
            ProviderConfig(provider=provider, base_url=base_url)
        except ValidationError as exc:
            fail(f"--base-url: {error_text(exc)}", EXIT_USAGE, as_json=as_json)
    key = _read_key(profile.display_name, profile.requires_key, key_stdin, key_env, no_key, as_json)
    headers = _read_headers(header_envs, as_json)
    code = run_async(
        _add,
        provider,
        key,
        label,
        base_url,
        default_model,
        headers,
        make_default,
        run_test,
        user_name,
        as_json,
        as_json=as_json,
    )
    sys.exit(code)


def _read_key(
    display: str, requires_key: bool, key_stdin: bool, key_env: str | None, no_key: bool, as_json: bool
) -> str | None:
    chosen = sum([key_stdin, key_env is not None, no_key])
    if chosen > 1:
        fail("choose one of --key-stdin, --key-env and --no-key", EXIT_USAGE, as_json=as_json)
    if no_key:
        return None
    if key_stdin:
        key = sys.stdin.readline().strip()
        if not key:
            fail("--key-stdin: standard input was empty; pipe the key in", EXIT_USAGE, as_json=as_json)
        return key
    if key_env is not None:
        key = os.environ.get(key_env, "").strip()
        if not key:
            fail(f"--key-env: the environment variable {key_env} is not set or empty", EXIT_USAGE, as_json=as_json)
        return key
    if not requires_key:
        return None
    if not sys.stdin.isatty():
        fail(
            f"{display} needs an API key: pipe it with --key-stdin, name a variable with --key-env VAR, "
            "or run in a terminal to be asked for it",
            EXIT_USAGE,
            as_json=as_json,
        )
    key = str(click.prompt(f"{display} API key (input hidden)", hide_input=True, err=True)).strip()
    if not key:
        fail("no key entered", EXIT_USAGE, as_json=as_json)
    return key


def _read_headers(specs: tuple[str, ...], as_json: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for spec in specs:
        name, sep, var = spec.partition("=")
        if not sep or not name.strip() or not var.strip():
            fail(f"--header-env takes NAME=VAR, got {spec!r}", EXIT_USAGE, as_json=as_json)
        value = os.environ.get(var.strip())
        if not value:
            fail(
                f"--header-env: the environment variable {var.strip()} is not set or empty", EXIT_USAGE, as_json=as_json
            )
        headers[name.strip()] = value
    return headers


async def _add(
    provider: str,
    key: str | None,
    label: str | None,
    base_url: str | None,
    default_model: str | None,
    headers: dict[str, str],
    make_default: bool,
    run_test: bool,
    user_name: str | None,
    as_json: bool,
) -> int:
    async with opened_store() as store:
        user = await pick_user(store, user_name)
        record = await store.provider_configs.create(
            user.id,
            provider,
            api_key=key,
            label=label,
            base_url=base_url,
            default_model=default_model,
            extra_headers=headers or None,
            default=make_default,
        )
        result = await check_config(store, user.id, record) if run_test else None
    code = EXIT_OK if result is None or result["ok"] else result["exit_code"]
    if as_json:
        print_json({**record_dict(record), **({"test": result} if result is not None else {})})
        return int(code)
    out = console()
    default = f" (default for {record.provider})" if record.is_default else ""
    out.print(
        f"added {record.provider} config [bold]{record.id[:_SHORT_ID]}[/]"
        f"{f' {record.label!r}' if record.label else ''} key {record.api_key_masked or '(none)'}{default}"
    )
    if result is not None:
        _print_check(out, record, result)
    return int(code)


async def check_config(
    store: SQLStore, user_id: str, record: ProviderConfigRecord, *, check_timeout: float = 20.0
) -> dict[str, Any]:
    """Run the adapter's ``check()`` for one stored config; never raises for provider or config problems."""
    from providers.base import create_provider
    from providers.errors import ConfigError, ProviderError, scrub

    try:
        resolved = await store.provider_configs.resolve(user_id, record.id, timeout=check_timeout, max_retries=0)
    except ConfigError as exc:
        return {"id": record.id, "ok": False, "detail": str(exc), "exit_code": EXIT_USAGE, "models_visible": None}
    try:
        provider = create_provider(resolved)
        try:
            result = await provider.check()
        finally:
            await provider.aclose()
    except ConfigError as exc:
        detail, ok, code, models = scrub(str(exc), resolved.secrets()), False, EXIT_USAGE, None
    except ProviderError as exc:
        detail, ok, code, models = scrub(str(exc), resolved.secrets()), False, EXIT_PROVIDER, None
    else:
        detail = scrub(result.detail, resolved.secrets())
        ok, models = result.ok, result.models_visible
        code = EXIT_OK if ok else EXIT_PROVIDER
    return {"id": record.id, "ok": ok, "detail": detail, "exit_code": code, "models_visible": models}


def _print_check(out: Any, record: ProviderConfigRecord, result: dict[str, Any]) -> None:
    name = record.label or record.id[:_SHORT_ID]
    if result["ok"]:
        out.print(f"[green]✓[/] {record.provider} {name}: {result['detail']}")
    else:
        out.print(f"[red]✗[/] {record.provider} {name}: {result['detail']}")


@config.command("list")
@user_option
@json_option
def list_(user_name: str | None, as_json: bool) -> None:
    """List provider configs with masked keys.

    \b
    Examples:
      routekit config list
      routekit config list --json
    """
    records = run_async(_list, user_name, as_json=as_json)
    if as_json:
        print_json([record_dict(r) for r in records])
        return
    if not records:
        console().print("no provider configs yet: add one with `routekit config add --provider NAME`")
        return
    from rich.table import Table

    table = Table("id", "provider", "label", "default model", "base url", "key", "default", "status")
    for r in records:
        status = "[green]ok[/]" if r.status == "ok" else f"[red]{r.status.replace('_', ' ')}[/]"
        table.add_row(
            r.id[:_SHORT_ID],
            r.provider,
            r.label or "",
            r.default_model or "",
            r.base_url or "",
            r.api_key_masked or "(none)",
            "✓" if r.is_default else "",
            status,
        )
    console().print(table)


async def _list(user_name: str | None) -> list[ProviderConfigRecord]:
    async with opened_store() as store:
        user = await pick_user(store, user_name)
        return await store.provider_configs.list(user.id)


@config.command("remove")
@click.argument("ref", metavar="ID")
@user_option
@json_option
def remove(ref: str, user_name: str | None, as_json: bool) -> None:
    """Remove a provider config (by id, id prefix or label) and its stored key.

    \b
    Examples:
      routekit config remove 3f2a91c0
      routekit config remove work
    """
    record = run_async(_remove, ref, user_name, as_json=as_json)
    if as_json:
        print_json({"removed": record.id})
    else:
        console().print(f"removed {record.provider} config {record.id[:_SHORT_ID]}")


async def _remove(ref: str, user_name: str | None) -> ProviderConfigRecord:
    async with opened_store() as store:
        user = await pick_user(store, user_name)
        record = await find_config(store, user.id, ref)
        await store.provider_configs.delete(user.id, record.id)
        return record


@config.command("default")
@click.argument("ref", metavar="ID")
@user_option
@json_option
def default(ref: str, user_name: str | None, as_json: bool) -> None:
    """Make a config the default for its provider.

    \b
    Examples:
      routekit config default work
      routekit config default 3f2a91c0
    """
    record = run_async(_default, ref, user_name, as_json=as_json)
    if as_json:
        print_json(record_dict(record))
    else:
        console().print(f"{record.id[:_SHORT_ID]} is now the default {record.provider} config")


async def _default(ref: str, user_name: str | None) -> ProviderConfigRecord:
    async with opened_store() as store:
        user = await pick_user(store, user_name)
        record = await find_config(store, user.id, ref)
        await store.provider_configs.set_default(user.id, record.id)
        return await store.provider_configs.get(user.id, record.id)


@config.command("test")
@click.argument("ref", metavar="[ID]", required=False)
@click.option("--timeout", type=SECONDS, default=20.0, show_default=True, help="Seconds per check.")
@user_option
@json_option
def test(ref: str | None, timeout: float, user_name: str | None, as_json: bool) -> None:
    """Check keys against their providers without spending tokens (all configs, or one).

    Exit code 3 when a provider rejects a key or cannot be reached, 2 when a config needs reconfiguration.

    \b
    Examples:
      routekit config test
      routekit config test work --json
    """
    pairs = run_async(_test, ref, timeout, user_name, as_json=as_json)
    if as_json:
        print_json([{**record_dict(r), "test": result} for r, result in pairs])
    else:
        out = console()
        if not pairs:
            out.print("no provider configs to test: add one with `routekit config add --provider NAME`")
        for record, result in pairs:
            _print_check(out, record, result)
    codes = [result["exit_code"] for _, result in pairs if not result["ok"]]
    sys.exit(max(codes) if codes else EXIT_OK)


async def _test(
    ref: str | None, check_timeout: float, user_name: str | None
) -> list[tuple[ProviderConfigRecord, dict[str, Any]]]:
    import anyio

    async with opened_store() as store:
        user = await pick_user(store, user_name)
        records = [await find_config(store, user.id, ref)] if ref else await store.provider_configs.list(user.id)
        results: dict[str, dict[str, Any]] = {}

        async def one(record: ProviderConfigRecord) -> None:
            results[record.id] = await check_config(store, user.id, record, check_timeout=check_timeout)

        async with anyio.create_task_group() as tg:
            for record in records:
                tg.start_soon(one, record)
        return [(r, results[r.id]) for r in records]
