"""HTTP clients for the SDKs: the Stainless-generated ones (anthropic, openai) and ollama's httpx client."""

from __future__ import annotations

import functools
import ssl
from types import ModuleType
from typing import TYPE_CHECKING, cast

import httpx2

from providers.errors import ConfigError

if TYPE_CHECKING:
    from providers.base import ProviderConfig


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the CA bundle (~30 ms of CPU), which every
    session opening an adapter would otherwise pay. Same settings as the SDKs' own default."""
    return httpx2.create_ssl_context()


def http_transport_choice(config: ProviderConfig) -> str:
    """``options["http_transport"]``: ``"aiohttp"`` (the default: markedly less CPU per request) or
    ``"httpx"`` (the SDK's own default transport)."""
    transport = config.options.get("http_transport", "aiohttp")
    if transport not in ("aiohttp", "httpx"):
        raise ConfigError(
            f"options.http_transport for {config.provider} must be 'aiohttp' or 'httpx', not {transport!r}"
        )
    return str(transport)


def sdk_http_client(config: ProviderConfig, sdk: ModuleType) -> httpx2.AsyncClient:
    """The SDK's HTTP client for ``options["http_transport"]``: the SDK's ``DefaultAioHttpClient`` or its
    ``DefaultAsyncHttpxClient``."""
    transport = http_transport_choice(config)
    factory = sdk.DefaultAioHttpClient if transport == "aiohttp" else sdk.DefaultAsyncHttpxClient
    return cast("httpx2.AsyncClient", factory(verify=shared_ssl_context()))
