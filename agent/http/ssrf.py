"""What a tenant may reach: the service's one place for it (see SECURITY.md).

The rules and the connection-time guard live in :mod:`providers.egress` (the provider adapters and the MCP
hub use them below this package); this module turns the operator's settings into that policy and names
the destination each user input leads to:

* a provider config's *effective* URL: its ``base_url``, or its preset's default (vllm, lmstudio, llamacpp
  and ollama default to localhost), checked when the config is saved and again before each use;
* a user's remote MCP server URL, checked when it is saved and before each use.

Between the check and the connection nothing can change: the adapters' and the hub's connections resolve
names through the same policy and connect only to the addresses it checked, follow no redirects and read
nothing (keys, hosts, proxies, cloud credentials) from the service's environment.
"""

from __future__ import annotations

from agent.http.settings import ServiceSettings
from providers.base import ProviderConfig
from providers.egress import EgressPolicy, blocked_reason
from providers.errors import EgressDenied

__all__ = ["UnsafeUrl", "blocked_reason", "check_provider_config", "check_url", "egress_policy"]

UnsafeUrl = EgressDenied  # the name the routes and error handlers use


def egress_policy(settings: ServiceSettings) -> EgressPolicy:
    """The policy every outbound request made on a user's behalf follows."""
    return EgressPolicy(
        allow_private_networks=settings.allow_private_networks,
        allowed_hosts=settings.allowed_hosts,
        resolver=settings.resolver,
    )


async def check_url(url: str, settings: ServiceSettings, *, what: str) -> None:
    """Raise :class:`UnsafeUrl` unless ``url`` is an http(s) URL to a public host (or an allowed one)."""
    await egress_policy(settings).check_url(url, what=what)


async def check_provider_config(config: ProviderConfig, policy: EgressPolicy) -> None:
    """The config's effective URL (explicit, or its preset's default) must pass ``policy``. Presets whose
    default is the SDK's own (Gemini, Vertex) go to their public Google endpoints."""
    url = config.base_url or config.profile.default_base_url
    if url is not None:
        await policy.check_url(url, what=f"{config.profile.display_name} base_url")
