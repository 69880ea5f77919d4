"""Plumbing shared by the subcommands: exit codes, the store, the CLI's local user, errors, output.

Exit codes (the same for every command): 0 ok, 2 usage or configuration error, 3 provider error,
4 a limit or budget was reached.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import click

from agent.session import LOCAL_USER as LOCAL_USER_NAME  # the runtime's local user: the CLI acts as it too

if TYPE_CHECKING:
    from storage import SQLStore, User

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_LIMIT = 4

DATABASE_URL_ENV = "ROUTEKIT_DATABASE_URL"

T = TypeVar("T")


class CommandFailed(click.ClickException):
    """Raised inside a command to stop with a message and an exit code (as JSON under ``--json``
    when raised inside :func:`run_async`)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = code  # type: ignore[misc]  # click reads it per instance

    def show(self, file: Any = None) -> None:
        click.echo(f"routekit: {self.message}", err=True)


def fail(message: str, code: int = EXIT_USAGE, *, as_json: bool = False) -> NoReturn:
    """Print the error (plain on stderr, or as a JSON object on stdout with ``--json``) and exit."""
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}))
    else:
        click.echo(f"routekit: {message}", err=True)
    sys.exit(code)


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for one of routekit's errors, or None for anything unexpected."""
    from providers.errors import ConfigError, ProviderError, RoutekitError
    from storage import BudgetExceeded

    if isinstance(exc, CommandFailed):
        return exc.code
    if isinstance(exc, BudgetExceeded):
        return EXIT_LIMIT
    if isinstance(exc, ProviderError):
        return EXIT_PROVIDER
    if isinstance(exc, ConfigError | RoutekitError | LookupError):
        return EXIT_USAGE
    return None


def error_text(exc: BaseException) -> str:
    """An error as one line. A pydantic ValidationError lists where and what, never the input (a key?)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ())) or "value"
            parts.append(f"{where}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}")
        return "; ".join(parts)
    return " ".join(str(exc).split()) or type(exc).__name__


def first_undecodable(args: Sequence[str]) -> int | None:
    """The 1-based position of the first argument that is not valid UTF-8 (Python keeps such bytes as lone
    surrogates, which every later encode fails on), or None."""
    for position, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return position
    return None


class FiniteFloat(click.FloatRange):
    """A float range that also refuses ``nan`` (which passes every range comparison) and infinities."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


SECONDS = FiniteFloat(min=0, min_open=True)  # a timeout or a wait, in seconds


JSON_META = "routekit.as_json"  # set in the (shared) click context meta when --json was given


def remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``--json`` callback: lets the root command answer an escaped error as JSON too."""
    if value:
        ctx.meta[JSON_META] = True
    return value


class RoutekitGroup(click.Group):
    """The root ``routekit`` command: the one place where errors escaping any subcommand are turned into one
    line and their exit code (2 usage or configuration, 3 provider, 4 limit), never a traceback.

    routekit's own errors and ValueErrors (UnicodeError, pydantic's ValidationError, bad values) are caught;
    anything else is a bug and keeps its traceback. Arguments that are not valid UTF-8 are refused before
    any command runs.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        position = first_undecodable(args)
        if position is not None:
            fail(f"argument {position} is not valid UTF-8 text; pass it in UTF-8", EXIT_USAGE)
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except Exception as exc:
            code = exit_code_for(exc)
            if code is None and isinstance(exc, ValueError):
                code = EXIT_USAGE
            if code is None:
                raise
            fail(error_text(exc), code, as_json=bool(ctx.meta.get(JSON_META)))


def run_async(fn: Callable[..., Awaitable[T]], *args: Any, as_json: bool = False) -> T:
    """Run ``fn(*args)`` on an event loop; routekit's errors become a message and their exit code."""
    try:
        return anyio.run(fn, *args)
    except KeyboardInterrupt:
        click.echo("\nroutekit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        fail(exc.message if isinstance(exc, CommandFailed) else error_text(exc), code, as_json=as_json)


def store_url() -> str | None:
    """The database URL: ``$ROUTEKIT_DATABASE_URL``, else None (the embedded SQLite under ``$ROUTEKIT_HOME``)."""
    return os.environ.get(DATABASE_URL_ENV) or None


@asynccontextmanager
async def opened_store() -> AsyncIterator[SQLStore]:
    from storage import open_store

    store = await open_store(store_url())
    try:
        yield store
    finally:
        await store.close()


async def local_user(store: SQLStore) -> User:
    """The CLI's own user on this store (created on first use), the one ``routekit run``/``chat`` act as."""
    user = await store.users.by_name(LOCAL_USER_NAME)
    if user is not None:
        return user
    try:
        return await store.users.create(LOCAL_USER_NAME)
    except Exception:  # another process created it first (unique name): use theirs
        again = await store.users.by_name(LOCAL_USER_NAME)
        if again is None:
            raise
        return again


async def pick_user(store: SQLStore, name: str | None) -> User:
    """The named service user, or the local user when ``name`` is None."""
    if name is None:
        return await local_user(store)
    user = await store.users.by_name(name)
    if user is None:
        raise CommandFailed(f"no user named {name!r}: see `routekit users list`, or add one with `routekit users add`")
    return user


user_option = click.option(
    "--user",
    "user_name",
    metavar="NAME",
    help="Act on this service user's data (default: the local user the CLI runs as).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, callback=remember_json, help="Print JSON instead of a table."
)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def console(*, stderr: bool = False) -> Any:
    """A rich console (imported lazily: rich costs a little start-up time)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output is not cut at 80 columns (rich's default without a terminal) unless COLUMNS says so.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)
