"""``routekit serve``: run the HTTP service and its web page with uvicorn on the embedded (or given) database."""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from storage import Store

from agent.http.settings import ADMIN_TOKEN_ENV

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


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every one).")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option(
    "--db", "db_url", envvar="ROUTEKIT_DATABASE_URL", help="sqlite:///path or postgresql://... (default: embedded)."
)
@click.option("--max-body-bytes", default=256 * 1024, show_default=True, type=int, help="Largest request body.")
@click.option("--requests-per-minute", default=120, show_default=True, type=int, help="Per user.")
@click.option("--max-runs", default=2, show_default=True, type=int, help="Concurrent agent runs per user.")
@click.option(
    "--allow-private-networks", is_flag=True, help="Let users point MCP servers and base URLs at private addresses."
)
@click.option("--allow-host", "allow_hosts", multiple=True, help="host or host:port exempt from the SSRF check.")
@click.option("--max-idle-hubs", default=32, show_default=True, type=int, help="Open MCP hubs kept between runs.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning"]))
def serve(
    host: str,
    port: int,
    db_url: str | None,
    max_body_bytes: int,
    requests_per_minute: int,
    max_runs: int,
    allow_private_networks: bool,
    allow_hosts: tuple[str, ...],
    max_idle_hubs: int,
    log_level: str,
) -> None:
    """Run the multi-user HTTP service and the web page.

    The admin token comes from ROUTEKIT_ADMIN_TOKEN, or is created on first start and printed once.
    Create users with the admin API (POST /api/admin/users) or `routekit users add`.

    \b
    Examples:
      routekit serve
      routekit serve --host 0.0.0.0 --port 8080
      routekit serve --db postgresql://routekit@db/routekit --allow-host ollama.internal:11434
    """
    import anyio

    from agent.http.settings import ServiceSettings, resolve_admin_token
    from storage import data_home

    digest, created = resolve_admin_token(data_home())
    settings = ServiceSettings(
        admin_token_sha256=digest,
        max_body_bytes=max_body_bytes,
        requests_per_minute=requests_per_minute,
        max_concurrent_runs=max_runs,
        allow_private_networks=allow_private_networks,
        allowed_hosts=frozenset(h.lower() for h in allow_hosts),
        max_idle_hubs=max_idle_hubs,
    )
    _configure_logging(log_level)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # noqa: S104 - only for display
    click.echo(f"routekit: serving on http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs)")
    if created is not None:
        click.echo(
            "routekit: created the admin token (shown only this once; set "
            f"{ADMIN_TOKEN_ENV} to choose your own):\n  {created.get_secret_value()}"
        )
    anyio.run(_serve, db_url, settings, host, port)


async def _serve(db_url: str | None, settings: object, host: str, port: int) -> None:
    import uvicorn

    from agent.http.app import create_app
    from agent.http.settings import ServiceSettings
    from storage import open_store

    assert isinstance(settings, ServiceSettings)
    store = await open_store(db_url)
    try:
        if db_url is None:
            await _welcome_local_user(store, host, port)
        app = create_app(store, settings)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, proxy_headers=True, lifespan="on")
        await uvicorn.Server(config).serve()
    finally:
        await store.close()


async def _welcome_local_user(store: Store, host: str, port: int) -> None:
    """On the embedded database, make sure someone can sign in to the page right away.

    The first start issues a sign-in token for the local user (the one `routekit run` and `routekit chat`
    use) and prints it once; later starts say how to get another. A shared database (PostgreSQL) is a
    platform: its users come from the admin API or `routekit users add`, never from here.
    """
    from agent.session import LOCAL_USER

    user = await store.users.by_name(LOCAL_USER) or await store.users.create(LOCAL_USER)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # noqa: S104 - only for display
    if any(not token.revoked for token in await store.users.tokens(user.id)):
        hint = f"a new token: `routekit users token {LOCAL_USER}`"
        click.echo(f"routekit: open http://{shown}:{port}/ and sign in ({hint})")
        return
    issued = await store.users.issue_token(user.id, label="web sign-in (first start)")
    click.echo(
        f"routekit: open http://{shown}:{port}/ and sign in with this token (shown only this once):\n"
        f"  {issued.token.get_secret_value()}"
    )
