"""``routekit users``: service administration (users of the HTTP service and their API tokens).

Tokens are shown once, when issued; only their hashes are stored. Run these on the machine that holds
the service's database (same ``ROUTEKIT_HOME`` / ``ROUTEKIT_DATABASE_URL`` and master key).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

import click

from agent.commands._common import (
    CommandFailed,
    console,
    json_option,
    opened_store,
    print_json,
    run_async,
)

if TYPE_CHECKING:
    from storage import IssuedToken, SQLStore, User


@click.group("users")
def users() -> None:
    """Manage the HTTP service's users and their API tokens (administrators).

    \b
    Examples:
      routekit users add alice
      routekit users list
      routekit users token alice --label laptop --expires 30d
      routekit users token alice --revoke 9c1e0d2a
    """


_RELATIVE = re.compile(r"^(\d+)([dhm])$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60}


def parse_expiry(value: str | None, now: float | None = None) -> float | None:
    """``--expires``: ``Nd``, ``Nh``, ``Nm`` (days, hours, minutes from now) or an ISO date or date-time
    (UTC unless it names an offset) -> unix seconds; None: the token never expires."""
    if value is None:
        return None
    now = time.time() if now is None else now
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative is not None:
        amount = int(relative.group(1))
        if amount == 0 or amount > 36_500 * 86_400:
            raise click.BadParameter(f"{value!r}: give a positive length of at most 100 years", param_hint="--expires")
        return now + amount * _UNIT_SECONDS[relative.group(2)]
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a length or a date: use Nd, Nh or Nm (e.g. 30d, 12h, 45m) or an ISO date "
            "(e.g. 2026-01-31 or 2026-01-31T18:00+02:00)",
            param_hint="--expires",
        ) from None
    moment = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    if moment <= now:
        raise click.BadParameter(f"{value!r} has passed: give a moment in the future", param_hint="--expires")
    return moment


def _expiry_option(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return parse_expiry(value)


expires_option = click.option(
    "--expires",
    "expires_at",
    metavar="WHEN",
    callback=_expiry_option,
    help="The token stops working after Nd, Nh or Nm (e.g. 30d), or at an ISO date. Default: never.",
)


def _when(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _user(store: SQLStore, name: str) -> User:
    user = await store.users.by_name(name)
    if user is None:
        raise CommandFailed(f"no user named {name!r}: `routekit users list` shows them")
    return user


@users.command("add")
@click.argument("name")
@click.option("--no-token", is_flag=True, help="Create the user without issuing an API token.")
@click.option("--label", help="A label for the first token (e.g. the app or machine using it).")
@expires_option
@json_option
def add(name: str, no_token: bool, label: str | None, expires_at: float | None, as_json: bool) -> None:
    """Create a user and issue their first API token (shown once: hand it to the user).

    \b
    Examples:
      routekit users add alice
      routekit users add ci-bot --label github-actions --expires 90d --json
    """
    user, issued = run_async(_add, name, no_token, label, expires_at, as_json=as_json)
    data: dict[str, Any] = {"id": user.id, "name": user.name, "created_at": _when(user.created_at)}
    if issued is not None:
        data.update(_issued(issued))
    if as_json:
        print_json(data)
        return
    out = console()
    out.print(f"created user [bold]{user.name}[/] ({user.id})")
    if issued is not None:
        _show_token(out, issued)


def _issued(issued: IssuedToken) -> dict[str, Any]:
    return {"token_id": issued.id, "token": issued.token.get_secret_value(), "expires_at": _when(issued.expires_at)}


def _show_token(out: Any, issued: IssuedToken) -> None:
    expiry = f"expires {_when(issued.expires_at)}" if issued.expires_at is not None else "does not expire"
    out.print(f"API token (shown only now; store it safely; {expiry}):", style="bold")
    out.print(issued.token.get_secret_value(), markup=False, highlight=False, soft_wrap=True)


async def _add(
    name: str, no_token: bool, label: str | None, expires_at: float | None
) -> tuple[User, IssuedToken | None]:
    async with opened_store() as store:
        if await store.users.by_name(name) is not None:
            raise CommandFailed(f"a user named {name!r} exists already: issue a new token with `routekit users token`")
        user = await store.users.create(name)
        if no_token:
            return user, None
        return user, await store.users.issue_token(user.id, label, expires_at=expires_at)


@users.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List users and their tokens (ids, labels, last use; never the tokens themselves).

    \b
    Examples:
      routekit users list
      routekit users list --json
    """
    rows = run_async(_list, as_json=as_json)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console().print("no users yet: `routekit users add NAME`")
        return
    from rich.table import Column, Table

    table = Table(
        Column("name", no_wrap=True),
        Column("id", no_wrap=True),
        "created",
        "active tokens",
        "next expiry",
        "last used",
    )
    for row in rows:
        active = [t for t in row["tokens"] if not t["revoked"] and not t["expired"]]
        used = [t["last_used_at"] for t in row["tokens"] if t["last_used_at"]]
        expiries = [t["expires_at"] for t in active if t["expires_at"]]
        soonest = min(expiries) if expiries else ("never" if active else "-")
        table.add_row(
            row["name"], row["id"], row["created_at"], str(len(active)), soonest, max(used) if used else "never"
        )
    console().print(table)


async def _list() -> list[dict[str, Any]]:
    async with opened_store() as store:
        rows = await store.db.read(lambda c: c.fetch("SELECT id FROM users ORDER BY created_at, id"))
        out = []
        for row in rows:
            user = await store.users.get(row["id"])
            tokens = await store.users.tokens(user.id)
            out.append(
                {
                    "id": user.id,
                    "name": user.name,
                    "created_at": _when(user.created_at),
                    "tokens": [
                        {
                            "id": t.id,
                            "label": t.label,
                            "created_at": _when(t.created_at),
                            "last_used_at": _when(t.last_used_at),
                            "revoked": t.revoked,
                            "expires_at": _when(t.expires_at),
                            "expired": t.expired(),
                        }
                        for t in tokens
                    ],
                }
            )
        return out


@users.command("token")
@click.argument("name")
@click.option("--label", help="A label for the new token.")
@click.option("--revoke", "revoke_id", metavar="TOKEN_ID", help="Revoke this token (id or id prefix) instead.")
@expires_option
@json_option
def token(name: str, label: str | None, revoke_id: str | None, expires_at: float | None, as_json: bool) -> None:
    """Issue a new API token for a user (shown once), or revoke one with --revoke.

    \b
    Examples:
      routekit users token alice
      routekit users token alice --label phone --expires 30d
      routekit users token alice --expires 2026-12-31
      routekit users token alice --revoke 9c1e0d2a
    """
    if revoke_id is not None and expires_at is not None:
        raise CommandFailed("--expires applies to a new token; it cannot be combined with --revoke")
    result = run_async(_token, name, label, revoke_id, expires_at, as_json=as_json)
    if as_json:
        print_json(result if isinstance(result, dict) else {"user": name, **_issued(result)})
        return
    out = console()
    if isinstance(result, dict):
        out.print(f"revoked token {result['revoked']} of {name}")
    else:
        out.print(f"new token {result.id} for {name}")
        _show_token(out, result)


async def _token(
    name: str, label: str | None, revoke_id: str | None, expires_at: float | None
) -> IssuedToken | dict[str, Any]:
    async with opened_store() as store:
        user = await _user(store, name)
        if revoke_id is None:
            return await store.users.issue_token(user.id, label, expires_at=expires_at)
        matches = [t for t in await store.users.tokens(user.id) if t.id.startswith(revoke_id)]
        if len(matches) != 1:
            problem = "no token" if not matches else f"{len(matches)} tokens"
            raise CommandFailed(f"{problem} of {name!r} with id {revoke_id!r}: `routekit users list --json` shows them")
        await store.users.revoke_token(matches[0].id)
        return {"user": name, "revoked": matches[0].id}
