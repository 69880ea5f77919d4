"""``routekit usage``: the usage ledger as a table with totals and cost.

Unknown stays unknown: a sum that some call of the group did not report is null in ``--json`` (with the
known part beside it) and shows as "unknown", or as the known lower bound "≥ n" when some calls did report it;
the same for the cost ("≥ $x (n unknown)").
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import click

from agent.commands._common import console, json_option, opened_store, pick_user, print_json, run_async, user_option

if TYPE_CHECKING:
    from storage import UsageTotals

_GROUPS = ("provider", "model", "day", "session")
_RELATIVE = re.compile(r"^(\d+)d$")


def parse_since(value: str | None) -> str | None:
    """``YYYY-MM-DD`` or ``Nd`` (N days ago, UTC) -> ``YYYY-MM-DD``."""
    if value is None:
        return None
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=int(relative.group(1)))
        return day.isoformat()
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date: use YYYY-MM-DD (e.g. 2026-01-31) or Nd (e.g. 7d)", param_hint="--since"
        ) from None


def totals_dict(totals: UsageTotals) -> dict[str, Any]:
    """The ``--json`` shape: a sum or cost is null when any call of the group left it unknown; ``known`` has
    the sums over the calls that reported each field (lower bounds)."""
    known = totals.known
    return {
        "group": totals.group,
        "calls": totals.calls,
        "failed_calls": totals.failed_calls,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cache_read_tokens": totals.cache_read_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "tokens_unknown_calls": totals.tokens_unknown,
        "cost_usd": None if totals.cost_usd is None else str(totals.cost_usd),
        "cost_unknown_calls": totals.cost_unknown,
        "known": {
            "input_tokens": known.input_tokens,
            "output_tokens": known.output_tokens,
            "cache_read_tokens": known.cache_read_tokens,
            "cache_write_tokens": known.cache_write_tokens,
            "reasoning_tokens": known.reasoning_tokens,
            "cost_usd": str(totals.known_cost_usd),
        },
    }


@click.command("usage")
@click.option(
    "--by",
    type=click.Choice(_GROUPS),
    default="provider",
    show_default=True,
    help="Group rows by provider, model, day (UTC) or session.",
)
@click.option("--since", "since", metavar="DATE", help="Only usage from this day on: YYYY-MM-DD, or Nd for N days ago.")
@user_option
@click.option("--all-users", is_flag=True, help="Every user's usage (service administrators).")
@json_option
def usage(by: str, since: str | None, user_name: str | None, all_users: bool, as_json: bool) -> None:
    """Show token usage and cost, grouped, with totals. Unknown counts and costs show as "unknown", never 0.

    \b
    Examples:
      routekit usage
      routekit usage --by day --since 7d
      routekit usage --by model --since 2026-01-01 --json
      routekit usage --all-users --by provider
    """
    since_day = parse_since(since)
    if all_users and user_name:
        raise click.UsageError("give --user or --all-users, not both")
    rows, total = run_async(_report, by, since_day, user_name, all_users, as_json=as_json)
    if as_json:
        print_json(
            {
                "by": by,
                "since": since_day,
                "rows": [totals_dict(r) for r in rows],
                "total": totals_dict(total) if total else None,
            }
        )
        return
    _print_table(by, since_day, rows, total)


async def _report(
    by: str, since_day: str | None, user_name: str | None, all_users: bool
) -> tuple[list[UsageTotals], UsageTotals | None]:
    async with opened_store() as store:
        user_id = None if all_users else (await pick_user(store, user_name)).id
        rows = await store.usage.report([by], user_id=user_id, since_day=since_day)  # type: ignore[list-item]
        totals = await store.usage.report([], user_id=user_id, since_day=since_day)
        return rows, (totals[0] if totals else None)


def _count(value: int | None, known: int, unknown_calls: int, all_unknown: bool) -> str:
    """A sum, or (some call did not report it) "unknown" or the known lower bound "≥ n"."""
    if value is not None:
        return f"{value:,}"
    if all_unknown or not known:
        return "unknown"
    return f"≥ {known:,}" + (f" ({unknown_calls} unknown)" if unknown_calls else "")


def _cost(data: dict[str, Any]) -> str:
    if data["cost_usd"] is not None:
        return f"${float(data['cost_usd']):,.4f}"
    if data["cost_unknown_calls"] >= data["calls"]:
        return "unknown"
    return f"≥ ${float(data['known']['cost_usd']):,.4f} ({data['cost_unknown_calls']} unknown)"


def _print_table(by: str, since_day: str | None, rows: list[UsageTotals], total: UsageTotals | None) -> None:
    from rich.table import Column, Table

    out = console()
    if total is None:
        out.print(f"no usage recorded{f' since {since_day}' if since_day else ''}")
        return
    title = f"usage by {by}{f' since {since_day}' if since_day else ''}"
    table = Table(
        Column(by, no_wrap=True),
        Column("calls", justify="right"),
        Column("failed", justify="right"),
        Column("input", justify="right"),
        Column("output", justify="right"),
        Column("cached", justify="right"),
        Column("reasoning", justify="right"),
        Column("cost", justify="right", no_wrap=True),
        title=title,
        show_footer=False,
    )
    for totals in [*rows, None, total]:
        if totals is None:
            table.add_section()
            continue
        data = totals_dict(totals)
        label = "total" if totals is total else str(totals.group.get(by) or "(none)")
        unknown, known = data["tokens_unknown_calls"], data["known"]
        none_known = unknown >= totals.calls
        table.add_row(
            f"[bold]{label}[/]" if totals is total else label,
            str(data["calls"]),
            str(data["failed_calls"]),
            _count(data["input_tokens"], known["input_tokens"], unknown, none_known),
            _count(data["output_tokens"], known["output_tokens"], unknown, none_known),
            _count(data["cache_read_tokens"], known["cache_read_tokens"], 0, False),
            _count(data["reasoning_tokens"], known["reasoning_tokens"], 0, False),
            _cost(data),
        )
    out.print(table)
