"""``routekit serve``: run the HTTP service and its web page with uvicorn on the embedded (or given) database."""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from agent.http.settings import ServiceSettings
    from storage import Store

from agent.http.settings import ADMIN_TOKEN_ENV, FORWARDED_ALLOW_IPS_ENV

_TOKENS = re.compile(r"\brka?_[A-Za-z0-9_\-]{8,}")


class RedactingFilter(logging.Filter):
    """Last line of defence: anything shaped like a key or a routekit token is masked in log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        from providers.errors import scrub

        message = record.getMessage()
        cleaned = _TOKENS.sub("[redacted]", scrub(message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def parse_forwarded_allow_ips(value: str | None) -> list[str]:
    """``--forwarded-allow-ips``: comma-separated addresses or networks of trusted proxies, or ``*``.

    Empty: no proxy is trusted, and ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are ignored (the client's
    own address counts). uvicorn would take a malformed entry as a literal that never matches, so it is
    refused here instead.
    """
    entries = [part.strip() for part in (value or "").split(",") if part.strip()]
    if entries == ["*"]:
        return entries
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{entry!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8 or ::1), nor '*'",
                param_hint="--forwarded-allow-ips",
            ) from None
    return entries


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every one).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option(
    "--db", "db_url", envvar="ROUTEKIT_DATABASE_URL", help="sqlite:///path or postgresql://... (default: embedded)."
)
@click.option(
    "--max-body-bytes", default=256 * 1024, show_default=True, type=click.IntRange(min=1), help="Largest request body."
)
@click.option("--requests-per-minute", default=120, show_default=True, type=click.IntRange(min=1), help="Per user.")
@click.option(
    "--failed-auth-per-minute",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Failed sign-ins per client address; past it the address gets 429 whatever token it sends.",
)
@click.option(
    "--forwarded-allow-ips",
    envvar=FORWARDED_ALLOW_IPS_ENV,
    metavar="IPS",
    help="Proxies (addresses or networks, comma-separated) whose X-Forwarded-For is trusted. Default: none.",
)
@click.option(
    "--max-runs", default=2, show_default=True, type=click.IntRange(min=1), help="Concurrent agent runs per user."
)
@click.option(
    "--allow-private-networks", is_flag=True, help="Let users point MCP servers and base URLs at private addresses."
)
@click.option("--allow-host", "allow_hosts", multiple=True, help="host or host:port exempt from the SSRF check.")
@click.option(
    "--max-idle-hubs",
    default=32,
    show_default=True,
    type=click.IntRange(min=0),
    help="Open MCP hubs kept between runs.",
)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning"]))
def serve(
    host: str,
    port: int,
    db_url: str | None,
    max_body_bytes: int,
    requests_per_minute: int,
    failed_auth_per_minute: int,
    forwarded_allow_ips: str | None,
    max_runs: int,
    allow_private_networks: bool,
    allow_hosts: tuple[str, ...],
    max_idle_hubs: int,
    log_level: str,
) -> None:
    """Run the multi-user HTTP service and the web page.

    The admin token comes from ROUTEKIT_ADMIN_TOKEN, or is created on first start and printed once.
    Create users with the admin API (POST /api/admin/users) or `routekit users add`.

    Behind a reverse proxy, name it with --forwarded-allow-ips (or ROUTEKIT_FORWARDED_ALLOW_IPS) so that
    rate limits see the clients' addresses; without it X-Forwarded-For is ignored, so no client can
    choose the address it is counted under.

    \b
    Examples:
      routekit serve
      routekit serve --host 0.0.0.0 --port 8080
      routekit serve --db postgresql://routekit@db/routekit --allow-host ollama.internal:11434
      routekit serve --forwarded-allow-ips 10.0.0.2   # the proxy in front of the service
    """
    import anyio

    from agent.http.settings import ServiceSettings

    proxies = parse_forwarded_allow_ips(forwarded_allow_ips)
    settings = ServiceSettings(
        max_body_bytes=max_body_bytes,
        requests_per_minute=requests_per_minute,
        failed_auth_per_minute=failed_auth_per_minute,
        max_concurrent_runs=max_runs,
        allow_private_networks=allow_private_networks,
        allowed_hosts=frozenset(h.lower() for h in allow_hosts),
        max_idle_hubs=max_idle_hubs,
    )
    _configure_logging(log_level)
    anyio.run(_serve, db_url, settings, _Listen(host, port, proxies))


@dataclass(frozen=True, slots=True)
class _Listen:
    host: str
    port: int
    proxies: list[str]  # trusted proxies (uvicorn's forwarded_allow_ips); empty: proxy headers are ignored

    @property
    def shown(self) -> str:
        return "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::") else self.host  # noqa: S104 - display


async def _serve(db_url: str | None, settings: ServiceSettings, listen: _Listen) -> None:
    """Open the store first: a wrong master key or an unreachable database stops here, before the admin
    token is created or anything is printed."""
    import anyio
    import uvicorn

    from agent.commands._common import CommandFailed
    from agent.http.app import create_app
    from agent.http.settings import resolve_admin_token
    from providers.errors import RoutekitError
    from storage import data_home, open_store

    try:
        store = await open_store(db_url)
    except (RoutekitError, OSError) as exc:
        raise CommandFailed(f"cannot start: {exc}".splitlines()[0]) from None
    try:
        try:
            digest, created = await anyio.to_thread.run_sync(resolve_admin_token, data_home())
        except OSError as exc:
            raise CommandFailed(f"cannot start: cannot keep the admin token's digest ({exc})") from None
        settings = replace(settings, admin_token_sha256=digest)
        origin = f"http://{listen.shown}:{listen.port}"
        click.echo(f"routekit: serving on {origin}/  (API docs: {origin}/docs)")
        if created is not None:
            click.echo(
                "routekit: created the admin token (shown only this once; set "
                f"{ADMIN_TOKEN_ENV} to choose your own):\n  {created.get_secret_value()}"
            )
        if db_url is None:
            await _welcome_local_user(store, listen)
        app = create_app(store, settings)
        config = uvicorn.Config(
            app,
            host=listen.host,
            port=listen.port,
            log_config=None,
            proxy_headers=bool(listen.proxies),
            forwarded_allow_ips=listen.proxies or None,
            lifespan="on",
        )
        await uvicorn.Server(config).serve()
    finally:
        await store.close()


async def _welcome_local_user(store: Store, listen: _Listen) -> None:
    """On the embedded database, make sure someone can sign in to the page right away.

    The first start issues a sign-in token for the local user (the one `routekit run` and `routekit chat`
    use) and prints it once; later starts say how to get another. A shared database (PostgreSQL) is a
    platform: its users come from the admin API or `routekit users add`, never from here.
    """
    from agent.session import LOCAL_USER

    user = await store.users.by_name(LOCAL_USER) or await store.users.create(LOCAL_USER)
    shown, port = listen.shown, listen.port
    if any(token.active() for token in await store.users.tokens(user.id)):
        hint = f"a new token: `routekit users token {LOCAL_USER}`"
        click.echo(f"routekit: open http://{shown}:{port}/ and sign in ({hint})")
        return
    issued = await store.users.issue_token(user.id, label="web sign-in (first start)")
    click.echo(
        f"routekit: open http://{shown}:{port}/ and sign in with this token (shown only this once):\n"
        f"  {issued.token.get_secret_value()}"
    )
