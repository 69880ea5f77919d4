"""``routekit providers``: the providers and presets, and with ``--models`` the per-model profiles.

``--models`` lists, for each provider, the model families routekit has a profile for (what translation
assumes: tools, vision, thinking control and its request field, prompt caching, limits; ``?`` is unknown),
and, where a key is at hand, the models the key can use, each annotated with the profile that applies to it.
A key is at hand when the local user has a stored default config for the provider (``routekit config add``),
else when the provider's key variable is set; ``--offline`` skips the live listing. A listing that fails is
reported in place; the exit code is then 3 (a provider error) or 2 (a configuration error).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from agent.commands._common import (
    EXIT_OK,
    EXIT_PROVIDER,
    EXIT_USAGE,
    console,
    fail,
    opened_store,
    print_json,
    run_async,
)
from agent.session import LOCAL_USER

if TYPE_CHECKING:
    from providers.base import ProviderConfig
    from providers.profiles import Profile

# A live listing gives up after this many seconds (and is tried once: no retries).
LISTING_TIMEOUT = 20.0
_SHORT_ID = 8


@dataclass
class _Live:
    """One provider's live model listing: where the key came from, and the models or the error."""

    source: str
    config: ProviderConfig | None = None
    models: list[dict[str, Any]] | None = None
    error: str | None = None
    exit_code: int = EXIT_OK
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "models": self.models}
        if self.error is not None:
            out["error"] = self.error
            out["exit_code"] = self.exit_code
        return out


def show(*, models: bool, names: tuple[str, ...], offline: bool, as_json: bool) -> None:
    """The ``providers`` command (options as in :mod:`agent.cli`)."""
    from providers.errors import ConfigError
    from providers.profiles import PROFILES, get_profile

    try:
        chosen = [get_profile(name) for name in dict.fromkeys(names)] if names else list(PROFILES.values())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE, as_json=as_json)
    if not models:
        _print_presets(chosen, as_json)
        return
    live: dict[str, _Live] = {} if offline else run_async(_listings, chosen, as_json=as_json)
    if as_json:
        print_json([_provider_json(profile, live.get(profile.name)) for profile in chosen])
    else:
        _print_models(chosen, live)
    codes = [entry.exit_code for entry in live.values()]
    raise SystemExit(EXIT_PROVIDER if EXIT_PROVIDER in codes else max(codes, default=EXIT_OK))


# --------------------------------------------------------------------------- live listings


async def _listings(profiles: list[Profile]) -> dict[str, _Live]:
    found = await _keys_at_hand(profiles)
    async with anyio.create_task_group() as tg:
        for entry in found.values():
            if entry.config is not None:
                tg.start_soon(_list, entry)
    return found


async def _keys_at_hand(profiles: list[Profile]) -> dict[str, _Live]:
    """A stored default config of the local user, else the key variable, for each provider that has one."""
    from providers.base import ProviderConfig
    from providers.errors import ConfigError

    found: dict[str, _Live] = {}
    async with opened_store() as store:
        user = await store.users.by_name(LOCAL_USER)  # not created here: no user, no stored configs
        for profile in profiles:
            record = await store.provider_configs.default_for(user.id, profile.name) if user is not None else None
            if user is not None and record is not None:
                entry = found[profile.name] = _Live(f"stored config {record.label or record.id[:_SHORT_ID]!r}")
                try:
                    entry.config = await store.provider_configs.resolve(
                        user.id, record.id, timeout=LISTING_TIMEOUT, max_retries=0
                    )
                except ConfigError as exc:
                    entry.error, entry.exit_code = str(exc), EXIT_USAGE
            elif profile.api_key_env and os.environ.get(profile.api_key_env):
                found[profile.name] = _Live(
                    f"${profile.api_key_env}",
                    config=ProviderConfig(provider=profile.name, timeout=LISTING_TIMEOUT, max_retries=0),
                )
    return found


async def _list(entry: _Live) -> None:
    from providers.base import create_provider
    from providers.errors import ConfigError, ProviderError, scrub
    from providers.profiles import listed_model

    config = entry.config
    assert config is not None
    try:
        adapter = create_provider(config)
        try:
            with anyio.fail_after(LISTING_TIMEOUT):
                infos = await adapter.list_models()
        finally:
            await adapter.aclose()
    except ConfigError as exc:
        entry.error, entry.exit_code = scrub(str(exc), config.secrets()), EXIT_USAGE
    except (ProviderError, TimeoutError) as exc:
        text = str(exc) if isinstance(exc, ProviderError) else f"no answer within {LISTING_TIMEOUT:g} s"
        entry.error, entry.exit_code = scrub(text, config.secrets()), EXIT_PROVIDER
    else:
        entry.models = [listed_model(info) for info in infos]


# --------------------------------------------------------------------------- output


def _provider_json(profile: Profile, live: _Live | None) -> dict[str, Any]:
    from providers.profiles import model_families

    return {
        "provider": profile.name,
        "display_name": profile.display_name,
        "families": [{"model": p.model, **p.capabilities()} for p in model_families(profile.name)],
        "live": live.as_json() if live is not None else None,
    }


def _print_presets(profiles: list[Profile], as_json: bool) -> None:
    if as_json:
        print_json(
            [
                {
                    "provider": p.name,
                    "display_name": p.display_name,
                    "family": p.family,
                    "key_variable": p.api_key_env,
                    "default_base_url": p.default_base_url,
                    "suggested_model": p.suggested_model,
                    "local": p.local,
                }
                for p in profiles
            ]
        )
        return
    from rich.table import Table

    table = Table("name", "provider", "key variable", "default endpoint", "suggested model")
    for profile in profiles:
        table.add_row(
            profile.name,
            profile.display_name,
            profile.api_key_env or "-",
            profile.default_base_url or "(SDK default)",
            profile.suggested_model or "(pass --model)",
        )
    console().print(table)


_COLUMNS = ("tools", "parallel", "vision", "strict", "output", "thinking", "caching", "max out", "context", "notes")


def _cells(entry: dict[str, Any]) -> list[str]:
    thinking = entry["thinking"]
    if thinking not in (None, "none") and entry["thinking_field"]:
        thinking = f"{thinking} ({entry['thinking_field']})"
    return [
        _flag(entry["tools"]),
        _flag(entry["parallel_tools"]),
        _flag(entry["vision"]),
        _flag(entry["strict_schemas"]),
        entry["output_mode"] or "?",
        thinking or "?",
        entry["prompt_caching"] or "?",
        _count(entry["max_output_tokens"]),
        _count(entry["context_window"]),
        _notes(entry),
    ]


def _notes(entry: dict[str, Any]) -> str:
    cap = entry["nonstreaming_max_tokens"]
    return f"streamed above {cap:,} output tokens" if cap is not None else ""


def _flag(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "no"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _print_models(profiles: list[Profile], live: dict[str, _Live]) -> None:
    from rich.table import Table

    from providers.profiles import model_families

    out = console()
    for profile in profiles:
        families = model_families(profile.name)
        tool_names = families[-1].tool_names
        out.print(
            f"[bold]{profile.name}[/] ({profile.display_name}): tool names up to {tool_names.max_length} characters, "
            f"output limit in {families[-1].max_tokens_field!r}"
        )
        table = Table("model family", *_COLUMNS, title=None, box=None, pad_edge=False)
        for entry in families:
            shown = "(other models)" if entry.model == "*" else entry.model
            table.add_row(shown, *_cells(entry.capabilities()))
        out.print(table)
        found = live.get(profile.name)
        if found is None:
            out.print("  no live listing (no stored config or key variable for this provider)\n")
            continue
        if found.error is not None:
            out.print(f"  [red]live listing via {found.source} failed:[/] {found.error}\n")
            continue
        listed = found.models or []
        out.print(f"  {len(listed)} models visible via {found.source}:")
        rows = Table("model", "family", *_COLUMNS, box=None, pad_edge=False)
        for model in listed:
            rows.add_row(model["id"], model["family"], *_cells(model))
        out.print(rows)
        out.print()
