"""Shared state of one service instance, and the authentication dependencies."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.http.hubs import HubPool
from agent.http.limits import RateLimiter, RunSlots, client_key
from agent.http.settings import ServiceSettings
from providers.egress import EgressPolicy
from providers.resilience import Breakers
from storage import Store, TokenExpired, User


@dataclass
class ServiceState:
    """Everything the routes share: the store, the settings and the per-user counters."""

    store: Store
    settings: ServiceSettings
    limiter: RateLimiter
    runs: RunSlots
    hubs: HubPool
    egress: EgressPolicy  # where users' provider and MCP traffic may go (agent.http.ssrf)
    # Failed sign-ins per client address (see agent.http.limits.client_key), checked before any token lookup.
    auth_failures: RateLimiter = field(init=False)
    # Live runs by session id (whatever the runtime integration keeps there, e.g. pending approvals).
    live: dict[str, Any] = field(default_factory=dict)
    # Circuit breakers per user (and, within a user, per endpoint and credential): no tenant's failures,
    # whatever their cause, fail another tenant's calls. The least recently used users' go first.
    tenant_breakers: OrderedDict[str, Breakers] = field(default_factory=OrderedDict)

    def breakers_for(self, user_id: str, *, keep: int = 10_000) -> Breakers:
        breakers = self.tenant_breakers.pop(user_id, None) or Breakers()
        self.tenant_breakers[user_id] = breakers
        while len(self.tenant_breakers) > keep:
            self.tenant_breakers.popitem(last=False)
        return breakers

    def __post_init__(self) -> None:
        self.auth_failures = RateLimiter(self.settings.failed_auth_per_minute, what="failed sign-ins")


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.routekit
    return state


_bearer = HTTPBearer(auto_error=False, description="A user's API token (`rk_...`), issued by the admin.")
_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="The admin token (ROUTEKIT_ADMIN_TOKEN)."
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _client(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user the bearer token belongs to; counts the request against the user's rate limit.

    A client address with too many failed sign-ins gets 429 before its token is even looked up, so a
    throttled client learns nothing about the tokens it tries, valid or not. Only that address is held
    back: the same user signing in from elsewhere is not.
    """
    state = state_of(request)
    client = _client(request)
    state.auth_failures.check(client)
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <your API token>'")
    try:
        user = await state.store.users.authenticate(credentials.credentials)
    except TokenExpired:
        state.auth_failures.record(client)
        raise _unauthorized("the API token has expired: ask the administrator for a new one") from None
    if user is None:
        state.auth_failures.record(client)
        raise _unauthorized("invalid or revoked API token: ask the administrator for a new one")
    state.limiter.hit(user.id)
    return user


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    state = state_of(request)
    if state.settings.admin_token_sha256 is None:
        raise HTTPException(status_code=403, detail="the admin API is disabled: no admin token is configured")
    client = _client(request)
    state.auth_failures.check(client)
    if credentials is None or not state.settings.admin_token_matches(credentials.credentials):
        if credentials is not None:
            state.auth_failures.record(client)
        raise _unauthorized("admin token required: send 'Authorization: Bearer <admin token>'")
    state.limiter.hit("admin")


CurrentUser = Annotated[User, Depends(current_user)]
State = Annotated[ServiceState, Depends(state_of)]
