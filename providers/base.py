"""The provider protocol, provider configuration, and the factory that builds adapters.

Adapters are imported lazily: building an Anthropic provider does not import the OpenAI, Gemini or
Ollama SDKs (each costs tens to hundreds of milliseconds to import).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import importlib
import json
import os
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from providers.errors import ConfigError
from providers.profiles import Profile, get_profile
from providers.types import CheckResult, ModelInfo, ModelRequest, ModelResponse, StreamEvent


class ProviderConfig(BaseModel):
    """How to reach one provider with one key.

    ``provider`` is a provider or preset name from :mod:`providers.profiles` (``anthropic``, ``openai``,
    ``groq``, ``azure``, ``gemini``, ``vertex``, ``ollama``, ...). The key is either given (``api_key``)
    or read from ``api_key_env`` (default: the preset's variable, e.g. ``ANTHROPIC_API_KEY``).
    ``extra_headers`` may hold secrets too, so they are hidden from reprs.
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
    extra_headers: dict[str, str] = Field(default_factory=dict, repr=False)
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

    @property
    def profile(self) -> Profile:
        return get_profile(self.provider)

    @property
    def key_env_var(self) -> str | None:
        return self.api_key_env or self.profile.api_key_env

    def resolve_api_key(self) -> str | None:
        """The key to send: the configured one, else the environment variable; ConfigError if required."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        env = self.key_env_var
        if env and os.environ.get(env):
            return os.environ[env]
        if self.profile.requires_key:
            where = f"set the environment variable {env}" if env else "set api_key"
            name = f" {self.label!r}" if self.label else ""
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
        """Every secret this config holds, for scrubbing error messages."""
        found: list[str] = []
        try:
            key = self.resolve_api_key()
        except ConfigError:
            key = None
        if key:
            found.append(key)
        for name, value in self.extra_headers.items():
            if name.lower() in {"authorization", "x-api-key", "api-key", "x-goog-api-key"} or "key" in name.lower():
                found.append(value.removeprefix("Bearer ").strip())
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


def create_provider(config: ProviderConfig, **kwargs: Any) -> Provider:
    """Build the adapter for ``config`` (importing only that provider's SDK)."""
    module_name, _, class_name = _ADAPTERS[config.profile.family].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls(config, **kwargs)
    return provider


# --------------------------------------------------------------------------- shared adapters


# id(config) -> (a weak reference to it, its fields as they were, digest of its resolved key, its adapter key).
# Kept beside the configs, not on them: a private attribute would take part in pydantic's ``==``.
_KEY_MEMO: dict[int, tuple[weakref.ref[ProviderConfig], dict[str, Any], bytes, str]] = {}


def _config_key(config: ProviderConfig) -> str:
    """A digest of everything that shapes an adapter (the key included, so a rotated key gets a new
    client). Only the digest is kept: the secrets never become a dict key that a repr or log could show.

    Remembered per config object with a copy of its fields and a digest of the key it resolves to, and used
    again while both compare equal (a config reused for every session, as the service and the CLI do, costs
    one comparison instead of a JSON dump and a hash; a config changed in place, or a rotated key in the
    environment, gets a new key).
    """
    resolved = config.resolve_api_key()
    key_digest = hashlib.sha256((resolved or "").encode()).digest()
    memo = _KEY_MEMO.get(id(config))
    if memo is not None and memo[0]() is config and memo[2] == key_digest and memo[1] == config.__dict__:
        return memo[3]
    data = config.model_dump(mode="json", exclude={"api_key"})
    data["resolved_api_key"] = resolved
    text = json.dumps(data, sort_keys=True, default=repr)
    digest = hashlib.sha256(text.encode()).hexdigest()
    ident = id(config)
    ref = weakref.ref(config, lambda _ref: _forget_key(ident, _ref))
    _KEY_MEMO[ident] = (ref, copy.deepcopy(config.__dict__), key_digest, digest)
    return digest


def _forget_key(ident: int, ref: weakref.ref[ProviderConfig]) -> None:
    memo = _KEY_MEMO.get(ident)
    if memo is not None and memo[0] is ref:  # not a newer config that reused the id
        del _KEY_MEMO[ident]


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


async def shared_provider(config: ProviderConfig) -> tuple[Provider, bool]:
    """The adapter for ``config``, shared by every caller in this event loop: one SDK client and one
    connection pool instead of a client built (and a TCP connection opened) per session.

    Returns ``(adapter, shared)``. A shared adapter must not be closed by the caller; it is closed when the
    event loop shuts down or by :func:`close_shared_providers`. Outside asyncio the adapter is new and
    ``shared`` is False (the caller closes it).
    """
    loop = _running_loop()
    if loop is None:
        return create_provider(config), False
    key = _config_key(config)
    pool = _SHARED.get(loop)
    if pool is not None and (found := pool.adapters.get(key)) is not None:
        return found, True
    if pool is None:
        pool = _SHARED[loop] = _SharedAdapters()
        await pool.start()
    adapter = pool.adapters.get(key)
    if adapter is None:
        adapter = pool.adapters[key] = create_provider(config)
    return adapter, True


async def close_shared_providers() -> None:
    """Close the adapters shared in this event loop (new ones are built on the next use)."""
    loop = _running_loop()
    pool = _SHARED.get(loop) if loop is not None else None
    if pool is not None:
        await pool.aclose()
