"""SSRF checks for URLs that users hand to the service (remote MCP servers, provider base URLs).

A URL passes when its host, and every address its name resolves to, is a public unicast address.
Loopback, private (RFC 1918, ULA), link-local (cloud metadata at 169.254.169.254 included), CGNAT,
multicast, reserved and unspecified addresses are refused, as are IPv4-mapped IPv6 forms of them and
the legacy numeric spellings ``2130706433`` or ``0x7f.1`` that resolvers accept. The admin can allow
private targets wholesale (``allow_private_networks``) or by host (``allowed_hosts``).

This is a check at submission time; the connection itself resolves again, so a DNS name that changes
its answer afterwards (rebinding) is the connecting code's concern.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import anyio

from agent.http.settings import ServiceSettings

_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeUrl(ValueError):
    """The URL points somewhere the service must not connect to on a user's behalf."""


async def system_resolver(host: str) -> list[str]:
    infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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


def blocked_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is off limits, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return blocked_reason(address.ipv4_mapped)
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


async def check_url(url: str, settings: ServiceSettings, *, what: str) -> None:
    """Raise :class:`UnsafeUrl` unless ``url`` is an http(s) URL to a public host (or an allowed one)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"{what}: malformed URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(f"{what}: the URL must start with http:// or https://")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl(f"{what}: the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl(f"{what}: credentials in the URL are not allowed; send them as headers")
    effective_port = port or (443 if parts.scheme == "https" else 80)
    if settings.allow_private_networks or host in settings.allowed_hosts:
        return
    if f"{host}:{effective_port}" in settings.allowed_hosts:
        return
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        resolver = settings.resolver or system_resolver
        try:
            found = await resolver(host)
        except OSError:
            raise UnsafeUrl(f"{what}: the host name {host!r} does not resolve") from None
        if not found:
            raise UnsafeUrl(f"{what}: the host name {host!r} does not resolve")
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    for address in addresses:
        why = blocked_reason(address)
        if why is not None:
            shown = host if literal is not None else f"{host} (resolves to {address})"
            raise UnsafeUrl(
                f"{what}: {shown} is {why}; the service does not connect there on a user's behalf. "
                "Use a public URL, or ask the administrator to allow this host."
            )
