"""Where a tenant's traffic may go: the egress policy, and the guard that holds it at connection time.

The HTTP service hands an :class:`EgressPolicy` to everything that connects somewhere on a user's behalf
(provider adapters, the MCP hub for users' remote servers). Under a policy:

* a URL's host, and every address its name resolves to, must be a public unicast address (or be allowed by
  the operator). Loopback, private, link-local (cloud metadata), CGNAT, multicast, reserved and unspecified
  addresses are refused, as are IPv6 forms that embed one of them (IPv4-mapped and -compatible, 6to4,
  NAT64, Teredo) and the legacy numeric IPv4 spellings resolvers accept (``2130706433``, ``0x7f.1``);
* the check runs where the connection is made (:func:`guarded_session`): the aiohttp connector resolves
  names through the policy and connects only to the addresses it checked, so a DNS answer cannot change
  between check and use, and every request (whatever URL an SDK builds) is checked again;
* redirects are refused (a public URL redirecting to an internal one is the classic way around a check);
* the process environment is not consulted: adapters read no keys, hosts, cloud credentials or proxies
  from it (``trust_env=False`` on the sessions built here).

Without a policy (the CLI and the Python API, where the user owns the machine) nothing here is used. The
error types (:class:`~providers.errors.EgressDenied`, :class:`~providers.errors.RequestNotSent`) live in
:mod:`providers.errors`; this module imports aiohttp.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from providers.errors import EgressDenied

__all__ = [
    "EgressDenied",
    "EgressPolicy",
    "Resolver",
    "blocked_reason",
    "egress_middleware",
    "guarded_session",
]

# Resolves a host name to IP address strings. The default asks the system resolver (off the event loop).
Resolver = Callable[[str], Awaitable[list[str]]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# NAT64 prefixes whose last 32 bits are an IPv4 address: the well-known one (RFC 6052) and the local-use
# one (RFC 8215), which a local NAT64 gateway translates to any IPv4 address, internal ones included.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (RFC 4291 2.5.5.1)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def system_resolver(host: str) -> list[str]:
    import anyio

    infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def literal_address(host: str) -> Address | None:
    """``host`` as an IP address when it is one, in any spelling a resolver would accept; else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[ipaddress.IPv4Address, str]]:
    """The IPv4 addresses an IPv6 address stands for, with the form's name."""
    found: list[tuple[ipaddress.IPv4Address, str]] = []
    if address.ipv4_mapped is not None:
        found.append((address.ipv4_mapped, "IPv4-mapped"))
    if address.sixtofour is not None:
        found.append((address.sixtofour, "6to4"))
    if address.teredo is not None:
        server, client = address.teredo
        found += [(server, "Teredo server"), (client, "Teredo client")]
    if any(address in net for net in _NAT64):
        found.append((ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"))
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        found.append((ipaddress.IPv4Address(int(address)), "IPv4-compatible"))
    return found


def blocked_reason(address: Address) -> str | None:
    """Why an address is off limits, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner, form in _embedded_ipv4(address):
            why = blocked_reason(inner)
            if why is not None:
                return f"{why} ({form} form of {inner})"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "a carrier-grade NAT address"),
        (address.is_private, "a private-network address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    for hit, why in checks:
        if hit:
            return why
    return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What a tenant's connections may reach. ``allowed_hosts`` holds ``host`` or ``host:port`` entries (as
    written in URLs) exempt from the address check, e.g. the operator's own Ollama."""

    allow_private_networks: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    resolver: Resolver | None = field(default=None, repr=False, compare=False)

    def _allowed(self, host: str, port: int) -> bool:
        return self.allow_private_networks or host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts

    def _refuse(self, what: str, shown: str, why: str) -> EgressDenied:
        return EgressDenied(
            f"{what}: {shown} is {why}; the service does not connect there on a user's behalf. "
            "Use a public URL, or ask the administrator to allow this host."
        )

    def split_url(self, url: str, *, what: str) -> tuple[str, int]:
        """The URL's host (lowercase, no trailing dot) and port; EgressDenied for anything but plain http(s)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EgressDenied(f"{what}: malformed URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise EgressDenied(f"{what}: the URL must start with http:// or https://")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise EgressDenied(f"{what}: the URL has no host")
        if parts.username or parts.password:
            raise EgressDenied(f"{what}: credentials in the URL are not allowed; send them as headers")
        return host, port or (443 if parts.scheme == "https" else 80)

    def check_literal(self, host: str, port: int, *, what: str) -> bool:
        """Check a host that is an IP literal; True when it was one (a name is for :meth:`addresses`)."""
        address = literal_address(host)
        if address is None:
            return False
        if not self._allowed(host, port):
            why = blocked_reason(address)
            if why is not None:
                raise self._refuse(what, host, why)
        return True

    async def addresses(self, host: str, port: int, *, what: str) -> list[str]:
        """Resolve ``host`` and check every address; the connection uses exactly these."""
        resolver = self.resolver or system_resolver
        try:
            found = await resolver(host)
        except OSError:
            raise EgressDenied(f"{what}: the host name {host!r} does not resolve") from None
        if not found:
            raise EgressDenied(f"{what}: the host name {host!r} does not resolve")
        if not self._allowed(host, port):
            for text in found:
                why = blocked_reason(ipaddress.ip_address(text.split("%", 1)[0]))
                if why is not None:
                    raise self._refuse(what, f"{host} (resolves to {text})", why)
        return found

    async def check_url(self, url: str, *, what: str) -> None:
        """The whole check for a URL a user submits (at save time, and before each use)."""
        host, port = self.split_url(url, what=what)
        if not self.check_literal(host, port, what=what) and not self._allowed(host, port):
            await self.addresses(host, port, what=what)


# --------------------------------------------------------------------------- the guard at connection time


def egress_middleware(policy: EgressPolicy, *, what: str) -> Any:
    """An aiohttp client middleware that checks every request's host (IP literals skip resolution in
    aiohttp, so the resolver alone would not see them) and refuses redirects."""

    async def guard(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        url = request.url
        host = (url.host or "").rstrip(".").lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.scheme not in ("http", "https") or not host:
            raise EgressDenied(f"{what}: only http(s) URLs are allowed")
        policy.check_literal(host, port, what=what)
        response = await handler(request)
        if response.status in _REDIRECTS:
            location = response.headers.get("Location", "")
            response.release()
            raise EgressDenied(
                f"{what}: the endpoint answered with a redirect (HTTP {response.status} to {location[:200]!r}); "
                "the service does not follow redirects on a user's behalf. Use the final URL."
            )
        return response

    return guard


def guarded_session(
    policy: EgressPolicy, *, what: str, ssl: Any = True, limit: int = 100, keepalive_timeout: float = 5.0
) -> aiohttp.ClientSession:
    """An aiohttp session that connects only where ``policy`` allows: names resolve through the policy (the
    connector connects to the checked addresses only, so DNS cannot change between check and use), every
    request is checked by :func:`egress_middleware` (no redirects), and no proxy or other setting comes from
    the environment. Must be made inside the event loop that uses it.

    A caller that passes ``middlewares=`` per request replaces the session's: it must include
    :func:`egress_middleware` itself (google-genai does pass them, see providers/gemini.py)."""
    connector = aiohttp.TCPConnector(
        resolver=_GuardedResolver(policy, what), ssl=ssl, limit=limit, keepalive_timeout=keepalive_timeout
    )
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, middlewares=(egress_middleware(policy, what=what),)
    )


class _GuardedResolver(AbstractResolver):
    """aiohttp's resolver interface over :meth:`EgressPolicy.addresses`."""

    def __init__(self, policy: EgressPolicy, what: str) -> None:
        self._policy = policy
        self._what = what

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        found = await self._policy.addresses(host.rstrip(".").lower(), port, what=self._what)
        results: list[ResolveResult] = []
        for text in found:
            kind = socket.AF_INET6 if ":" in text else socket.AF_INET
            if family not in (socket.AF_UNSPEC, kind):
                continue
            results.append(
                {
                    "hostname": host,
                    "host": text,
                    "port": port,
                    "family": kind,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        if not results:
            raise EgressDenied(f"{self._what}: the host name {host!r} has no address of the requested family")
        return results

    async def close(self) -> None:
        return None
