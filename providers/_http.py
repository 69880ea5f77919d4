"""HTTP clients for the SDKs: the Stainless-generated ones (anthropic, openai) and ollama's httpx client.

Under an egress policy (the HTTP service) every client is the SDK's client on an aiohttp transport whose
session is :func:`providers.egress.guarded_session`: checked and pinned addresses, no redirects, nothing from
the environment. Without one, the SDK's own client on the transport ``options["http_transport"]`` picks.
"""

from __future__ import annotations

import functools
import ssl
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import httpx2

from providers.errors import ConfigError

if TYPE_CHECKING:
    import aiohttp

    from providers.base import ProviderConfig
    from providers.egress import EgressPolicy


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the CA bundle (~30 ms of CPU), which every
    session opening an adapter would otherwise pay. Same settings as the SDKs' own default."""
    return httpx2.create_ssl_context()


def http_transport_choice(config: ProviderConfig, egress: EgressPolicy | None = None) -> str:
    """``options["http_transport"]``: ``"aiohttp"`` (the default: markedly less CPU per request) or
    ``"httpx"`` (the SDK's own default transport). Under an egress policy only aiohttp is offered: its
    connections are the ones the policy can pin to checked addresses."""
    transport = config.options.get("http_transport", "aiohttp")
    if transport not in ("aiohttp", "httpx"):
        raise ConfigError(
            f"options.http_transport for {config.provider} must be 'aiohttp' or 'httpx', not {transport!r}"
        )
    if egress is not None and transport != "aiohttp":
        raise ConfigError(
            f"options.http_transport {transport!r} is not available in the service: its connections cannot be "
            "held to the service's network policy; leave the option out"
        )
    return str(transport)


def egress_session_factory(config: ProviderConfig, egress: EgressPolicy) -> Any:
    """A callable that makes the guarded aiohttp session for ``config`` (called by the transport in its
    event loop, on the first request)."""
    from providers.egress import guarded_session

    what = f"{config.profile.display_name} endpoint"

    def make() -> aiohttp.ClientSession:
        return guarded_session(egress, what=what, ssl=shared_ssl_context())

    return make


def sdk_http_client(config: ProviderConfig, sdk: ModuleType, egress: EgressPolicy | None = None) -> httpx2.AsyncClient:
    """The SDK's HTTP client: its ``DefaultAioHttpClient`` or its ``DefaultAsyncHttpxClient``
    (``options["http_transport"]``), or under ``egress`` its aiohttp client on the guarded session."""
    transport = http_transport_choice(config, egress)
    if egress is not None:
        from httpx_aiohttp.httpx2 import AiohttpTransport

        guarded = AiohttpTransport(client=egress_session_factory(config, egress))
        return cast("httpx2.AsyncClient", sdk.DefaultAioHttpClient(transport=guarded, follow_redirects=False))
    factory = sdk.DefaultAioHttpClient if transport == "aiohttp" else sdk.DefaultAsyncHttpxClient
    return cast("httpx2.AsyncClient", factory(verify=shared_ssl_context()))


def omit_environment_headers(headers: dict[str, Any], variable: str, omit: object) -> None:
    """Mark with ``omit`` (the SDK's ``Omit()``) every header the SDK would add from a ``NAME: value`` lines
    variable of the environment (``ANTHROPIC_CUSTOM_HEADERS``, ``OPENAI_CUSTOM_HEADERS``) and ``headers`` does
    not set itself: a client made under an egress policy sends the user's headers only. Only the names are
    read; the values stay in the environment."""
    import os

    mine = {name.lower() for name in headers}
    for line in os.environ.get(variable, "").split("\n"):
        name, colon, _ = line.partition(":")
        if colon and name.strip() and name.strip().lower() not in mine:
            headers[name.strip()] = omit
