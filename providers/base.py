"""The provider protocol, provider configuration, and the factory that builds adapters.

Adapters are imported lazily: building an Anthropic provider does not import the OpenAI, Gemini or
Ollama SDKs (each costs tens to hundreds of milliseconds to import).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from providers.errors import ConfigError
from providers.profiles import Profile, get_profile
from providers.types import CheckResult, ModelInfo, ModelRequest, ModelResponse, StreamEvent

if TYPE_CHECKING:
    from providers.egress import EgressPolicy

# RFC 9110 field names (tokens), and values without control characters: anything else is refused when the
# config is made, not by the HTTP library in the middle of a request.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class ProviderConfig(BaseModel):
    """How to reach one provider with one key.

    ``provider`` is a provider or preset name from :mod:`providers.profiles` (``anthropic``, ``openai``,
    ``groq``, ``azure``, ``gemini``, ``vertex``, ``ollama``, ...). The key is either given (``api_key``)
    or read from ``api_key_env`` (default: the preset's variable, e.g. ``ANTHROPIC_API_KEY``).
    Every ``extra_headers`` value is a secret like the key (``SecretStr``: hidden from reprs and dumps);
    :meth:`header_values` gives them to the code that sends them.
    """

    model_config = ConfigDict(extra="forbid")

    provider: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    default_model: str | None = None
    timeout: float = Field(default=120.0, gt=0, description="seconds per attempt")
    connect_timeout: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10, description="routekit's retries; SDK retries are off")
    extra_headers: dict[str, SecretStr] = Field(default_factory=dict, repr=False)
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None  # the stored config's id or name, for fallbacks, metering and messages

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        get_profile(value)  # raises ConfigError listing the valid names
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        if value is not None:
            try:  # a malformed host or port would otherwise fail deep inside an SDK's HTTP client
                parts = urlsplit(value)
                host, _ = parts.hostname, parts.port
            except ValueError as exc:
                raise ValueError(f"base_url is not a valid URL ({exc})") from None
            if not host:
                raise ValueError("base_url has no host name")
        return value.rstrip("/") if value else value

    @field_validator("extra_headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"extra_headers: {name[:80]!r} is not a valid HTTP header name")
            if not _HEADER_VALUE.fullmatch(secret.get_secret_value()):
                raise ValueError(f"extra_headers: the value of {name!r} has characters HTTP headers cannot carry")
        return value

    def header_values(self) -> dict[str, str]:
        """The extra headers in clear, for the code that sends them (and nothing else)."""
        return {name: secret.get_secret_value() for name, secret in self.extra_headers.items()}

    @property
    def profile(self) -> Profile:
        return get_profile(self.provider)

    @property
    def key_env_var(self) -> str | None:
        return self.api_key_env or self.profile.api_key_env

    def resolve_api_key(self, *, environment: bool = True) -> str | None:
        """The key to send: the configured one, else (when ``environment``) the environment variable;
        ConfigError if the provider requires one. The service passes ``environment=False``: a user's config
        never reads the service's own environment."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        env = self.key_env_var
        if environment and env and os.environ.get(env):
            return os.environ[env]
        if self.profile.requires_key:
            name = f" {self.label!r}" if self.label else ""
            if not environment:
                raise ConfigError(
                    f"{self.profile.display_name} config{name} has no API key: {self.profile.display_name} needs "
                    "one, and the service never uses its own; give the config an api_key."
                )
            where = f"set the environment variable {env}" if env else "set api_key"
            raise ConfigError(
                f"no API key for {self.profile.display_name} config{name}: {where} or give the config an api_key."
            )
        return None

    def resolve_model(self, model: str | None) -> str:
        chosen = model or self.default_model or self.profile.suggested_model
        if not chosen:
            raise ConfigError(
                f"no model given for {self.profile.display_name}: pass a model or set default_model on the config"
            )
        return chosen

    def secrets(self) -> list[str]:
        """Every secret this config holds (the key and every header value), for scrubbing messages."""
        found: list[str] = []
        try:
            key = self.resolve_api_key()
        except ConfigError:
            key = None
        if key:
            found.append(key)
        for value in self.header_values().values():
            found.append(value)
            bare = value.split(" ", 1)[1].strip() if " " in value else ""
            if bare:  # "Bearer <token>": the token alone may be echoed back too
                found.append(bare)
        return found


@runtime_checkable
class Provider(Protocol):
    """What every adapter offers. All methods raise :mod:`providers.errors` types only."""

    name: str
    config: ProviderConfig

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Events as they arrive; the last one is ``ResponseDone``. A stream that ends without its
        terminal event raises ``StreamInterrupted`` carrying the partial response and usage."""
        ...

    async def list_models(self) -> list[ModelInfo]: ...

    async def check(self) -> CheckResult:
        """Validate the key and endpoint without spending tokens where the API allows."""
        ...

    async def aclose(self) -> None: ...


async def check_by_listing_models(provider: Provider) -> CheckResult:
    """``check()`` for providers whose model listing proves the key and endpoint work (no tokens spent)."""
    from providers.errors import ProviderError

    try:
        models = await provider.list_models()
    except ProviderError as exc:
        return CheckResult(ok=False, provider=provider.name, detail=str(exc))
    return CheckResult(
        ok=True,
        provider=provider.name,
        detail=f"key accepted by {provider.config.profile.display_name}; {len(models)} models visible",
        models_visible=len(models),
    )


_ADAPTERS: dict[str, str] = {
    "anthropic": "providers.anthropic:AnthropicProvider",
    "openai": "providers.openai:OpenAIProvider",
    "gemini": "providers.gemini:GeminiProvider",
    "ollama": "providers.ollama:OllamaProvider",
}


def create_provider(config: ProviderConfig, *, egress: EgressPolicy | None = None) -> Provider:
    """Build the adapter for ``config`` (importing only that provider's SDK).

    With ``egress`` (the HTTP service) the adapter connects only where the policy allows, follows no
    redirects and reads nothing from the process environment (keys, hosts, cloud credentials, proxies).
    """
    module_name, _, class_name = _ADAPTERS[config.profile.family].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls(config, egress=egress)
    return provider


# --------------------------------------------------------------------------- shared adapters


def adapter_key(config: ProviderConfig, egress: EgressPolicy | None = None) -> str:
    """A digest of everything that shapes an adapter: the config's fields, the key it resolves to (so a
    rotated key gets a new client) and the egress policy. Only the digest is kept, so the secrets never
    become a dict key that a repr or log could show."""
    data = config.model_dump(mode="json", exclude={"api_key", "extra_headers"})
    data["resolved_api_key"] = config.resolve_api_key(environment=egress is None)
    data["extra_headers"] = config.header_values()
    if egress is not None:
        data["egress"] = [egress.allow_private_networks, sorted(egress.allowed_hosts)]
    text = json.dumps(data, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class _SharedAdapters:
    """The adapters shared in one event loop, closed when the loop shuts down (or by an explicit close).

    The closing hook is an async generator parked at its ``yield``: the event loop's runner finalizes the
    async generators still alive when it shuts down (asyncio's ``shutdown_asyncgens``, called by
    ``asyncio.run`` / ``anyio.run`` and the pytest plugin), which runs its ``finally`` inside the loop, so
    the SDK clients (aiohttp sessions included) close cleanly instead of warning from ``__del__``.
    """

    def __init__(self) -> None:
        self.adapters: dict[str, Provider] = {}
        self._hook: AsyncGenerator[None, None] | None = None

    async def start(self) -> None:
        self._hook = self._close_at_shutdown()
        await self._hook.asend(None)

    async def _close_at_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        adapters, self.adapters = list(self.adapters.values()), {}
        for adapter in adapters:
            with contextlib.suppress(Exception):  # closing is best effort
                await adapter.aclose()


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedAdapters] = weakref.WeakKeyDictionary()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # another async library (trio): adapters are not shared there
        return None


async def shared_provider(config: ProviderConfig, *, egress: EgressPolicy | None = None) -> tuple[Provider, bool]:
    """The adapter for ``config`` (and ``egress``, see :func:`create_provider`), shared by every caller in
    this event loop: one SDK client and one connection pool instead of a client built (and a TCP connection
    opened) per session.

    Returns ``(adapter, shared)``. A shared adapter must not be closed by the caller; it is closed when the
    event loop shuts down or by :func:`close_shared_providers`. Outside asyncio the adapter is new and
    ``shared`` is False (the caller closes it).
    """
    loop = _running_loop()
    if loop is None:
        return create_provider(config, egress=egress), False
    key = adapter_key(config, egress)
    pool = _SHARED.get(loop)
    if pool is not None and (found := pool.adapters.get(key)) is not None:
        return found, True
    if pool is None:
        pool = _SHARED[loop] = _SharedAdapters()
        await pool.start()
    adapter = pool.adapters.get(key)
    if adapter is None:
        adapter = pool.adapters[key] = create_provider(config, egress=egress)
    return adapter, True


async def close_shared_providers() -> None:
    """Close the adapters shared in this event loop (new ones are built on the next use)."""
    loop = _running_loop()
    pool = _SHARED.get(loop) if loop is not None else None
    if pool is not None:
        await pool.aclose()
