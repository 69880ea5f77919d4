"""Service settings: limits, SSRF policy and the admin token, all decided by whoever runs the service."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from storage import ensure_private_dir

ADMIN_TOKEN_ENV = "ROUTEKIT_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a secret
ADMIN_TOKEN_FILE = "admin_token.sha256"  # noqa: S105 - a file name
FORWARDED_ALLOW_IPS_ENV = "ROUTEKIT_FORWARDED_ALLOW_IPS"  # trusted proxies of `routekit serve` (default: none)

# Resolves a host name to IP address strings. The default asks the system resolver (off the event loop);
# tests and special deployments hand in their own.
Resolver = Callable[[str], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """How the HTTP service behaves. Every limit is per user unless it says otherwise."""

    # SHA-256 hex digest of the admin token (the token itself is never kept). None: admin API disabled.
    admin_token_sha256: str | None = None
    max_body_bytes: int = 256 * 1024
    requests_per_minute: int = 120
    # Failed sign-ins (unknown, revoked or expired tokens) per client address and minute; past it, that
    # address gets 429 whatever token it sends, before any lookup.
    failed_auth_per_minute: int = 20
    max_concurrent_runs: int = 2
    # SSRF policy for URLs users submit (remote MCP servers, provider base URLs).
    allow_private_networks: bool = False  # True: loopback/private/link-local targets are allowed (single-user setups)
    allowed_hosts: frozenset[str] = frozenset()  # "host" or "host:port" exempt from the check, e.g. a local Ollama
    resolver: Resolver | None = field(default=None, repr=False)
    # How long a tool call may wait for the user's approval before it is denied.
    approval_timeout: float = 300.0
    # A run's claim on its session (one run per session, across instances) lasts this long unless renewed; the
    # run renews it every third of that. A killed instance's sessions are free again after at most this long.
    run_lease_seconds: float = 30.0
    # Open MCP hubs kept between runs (see agent.http.hubs): how long an idle one stays, and how many.
    hub_idle_seconds: float = 300.0
    max_idle_hubs: int = 32
    static_dir: Path | None = None  # None: the page shipped in agent/http/static

    def admin_token_matches(self, token: str) -> bool:
        if self.admin_token_sha256 is None:
            return False
        digest = hashlib.sha256(token.encode()).hexdigest()
        return hmac.compare_digest(digest, self.admin_token_sha256)


def hash_token(token: str | SecretStr) -> str:
    text = token.get_secret_value() if isinstance(token, SecretStr) else token
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_admin_token(data_dir: Path, environ: dict[str, str] | None = None) -> tuple[str, SecretStr | None]:
    """The admin token's digest, and the token itself when it was created just now (to show it once).

    ``ROUTEKIT_ADMIN_TOKEN`` wins. Otherwise the digest is kept in ``<data_dir>/admin_token.sha256``
    (mode 0600); on first start a new random token is created, its digest stored, and the token returned
    so the caller can print it once. Losing it means deleting that file and restarting.
    """
    env = os.environ if environ is None else environ
    if env.get(ADMIN_TOKEN_ENV):
        return hash_token(env[ADMIN_TOKEN_ENV]), None
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), None
    token = "rka_" + secrets.token_urlsafe(32)
    ensure_private_dir(data_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(hash_token(token) + "\n")
    return hash_token(token), SecretStr(token)
