"""``routekit users``: service administration (users of the HTTP service and their API tokens).

Tokens are shown once, when issued; only their hashes are stored. Run these on the machine that holds
the service's database (same ``ROUTEKIT_HOME`` / ``ROUTEKIT_DATABASE_URL`` and master key).
"""

from __future__ import annotations

import datetime as dt
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
    from storage import SQLStore, User


@click.group("users")
def users() -> None:
    """Manage the HTTP service's users and their API tokens (administrators).

    \b
    Examples:
      routekit users add alice
      routekit users list
      routekit users token alice --label laptop
      routekit users token alice --revoke 9c1e0d2a
    """


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
@json_option
def add(name: str, no_token: bool, label: str | None, as_json: bool) -> None:
    """Create a user and issue their first API token (shown once: hand it to the user).

    \b
    Examples:
      routekit users add alice
      routekit users add ci-bot --label github-actions --json
    """
    user, token = run_async(_add, name, no_token, label, as_json=as_json)
    data: dict[str, Any] = {"id": user.id, "name": user.name, "created_at": _when(user.created_at)}
    if token is not None:
        data["token_id"], data["token"] = token
    if as_json:
        print_json(data)
        return
    out = console()
    out.print(f"created user [bold]{user.name}[/] ({user.id})")
    if token is not None:
        _show_token(out, token[1])


def _show_token(out: Any, token: str) -> None:
    out.print("API token (shown only now; store it safely):", style="bold")
    out.print(token, markup=False, highlight=False, soft_wrap=True)


async def _add(name: str, no_token: bool, label: str | None) -> tuple[User, tuple[str, str] | None]:
    async with opened_store() as store:
        if await store.users.by_name(name) is not None:
            raise CommandFailed(f"a user named {name!r} exists already: issue a new token with `routekit users token`")
        user = await store.users.create(name)
        if no_token:
            return user, None
        issued = await store.users.issue_token(user.id, label)
        return user, (issued.id, issued.token.get_secret_value())


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

    table = Table(Column("name", no_wrap=True), Column("id", no_wrap=True), "created", "active tokens", "last used")
    for row in rows:
        active = [t for t in row["tokens"] if not t["revoked"]]
        used = [t["last_used_at"] for t in row["tokens"] if t["last_used_at"]]
        table.add_row(row["name"], row["id"], row["created_at"], str(len(active)), max(used) if used else "never")
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
@json_option
def token(name: str, label: str | None, revoke_id: str | None, as_json: bool) -> None:
    """Issue a new API token for a user (shown once), or revoke one with --revoke.

    \b
    Examples:
      routekit users token alice
      routekit users token alice --label phone
      routekit users token alice --revoke 9c1e0d2a
    """
    result = run_async(_token, name, label, revoke_id, as_json=as_json)
    if as_json:
        print_json(result)
        return
    out = console()
    if revoke_id is not None:
        out.print(f"revoked token {result['revoked']} of {name}")
    else:
        out.print(f"new token {result['token_id']} for {name}")
        _show_token(out, result["token"])


async def _token(name: str, label: str | None, revoke_id: str | None) -> dict[str, Any]:
    async with opened_store() as store:
        user = await _user(store, name)
        if revoke_id is None:
            issued = await store.users.issue_token(user.id, label)
            return {"user": name, "token_id": issued.id, "token": issued.token.get_secret_value()}
        matches = [t for t in await store.users.tokens(user.id) if t.id.startswith(revoke_id)]
        if len(matches) != 1:
            problem = "no token" if not matches else f"{len(matches)} tokens"
            raise CommandFailed(f"{problem} of {name!r} with id {revoke_id!r}: `routekit users list --json` shows them")
        await store.users.revoke_token(matches[0].id)
        return {"user": name, "revoked": matches[0].id}
