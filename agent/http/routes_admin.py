"""User administration with the admin token: create users, issue and revoke their API tokens."""

from __future__ import annotations

import datetime as dt
import time

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from agent.http.deps import State, require_admin
from storage import IssuedToken, TokenInfo, User

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


class ExpiryIn(BaseModel):
    """When a new token stops working: after ``expires_in_days``, or at ``expires_at``; neither: never."""

    model_config = ConfigDict(extra="forbid")

    expires_in_days: float | None = Field(default=None, gt=0, le=36_500, description="Valid for this many days")
    expires_at: dt.datetime | None = Field(
        default=None, description="Valid until then: ISO 8601 (UTC unless an offset is given) or unix seconds"
    )

    def expiry(self) -> float | None:
        """The expiry as unix seconds; 400 when both are given or the moment has passed."""
        if self.expires_in_days is not None and self.expires_at is not None:
            raise HTTPException(400, "give either expires_in_days or expires_at, not both")
        if self.expires_in_days is not None:
            return time.time() + self.expires_in_days * 86_400
        if self.expires_at is None:
            return None
        when = self.expires_at if self.expires_at.tzinfo else self.expires_at.replace(tzinfo=dt.UTC)
        if when.timestamp() <= time.time():
            raise HTTPException(400, f"expires_at {when.isoformat()} has passed: give a moment in the future")
        return when.timestamp()


class UserIn(ExpiryIn):
    name: str = Field(min_length=1, max_length=200)


class TokenIn(ExpiryIn):
    label: str | None = Field(default=None, max_length=200)


class IssuedTokenOut(BaseModel):
    user_id: str
    name: str
    token_id: str
    token: str = Field(description="The API token. Shown this once: only its hash is stored")
    expires_at: float | None = Field(description="Unix seconds after which the token is refused; null: never")

    @classmethod
    def of(cls, user: User, issued: IssuedToken) -> IssuedTokenOut:
        return cls(
            user_id=user.id,
            name=user.name,
            token_id=issued.id,
            token=issued.token.get_secret_value(),
            expires_at=issued.expires_at,
        )


class TokenInfoOut(BaseModel):
    id: str
    label: str | None
    created_at: float
    last_used_at: float | None
    revoked: bool
    expires_at: float | None = Field(description="Unix seconds after which the token is refused; null: never")
    expired: bool

    @classmethod
    def of(cls, token: TokenInfo) -> TokenInfoOut:
        return cls(
            id=token.id,
            label=token.label,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked=token.revoked,
            expires_at=token.expires_at,
            expired=token.expired(),
        )


@router.post("/api/admin/users", response_model=IssuedTokenOut, status_code=201, summary="Create a user and a token")
async def create_user(body: UserIn, state: State) -> IssuedTokenOut:
    users = state.store.users
    if await users.by_name(body.name) is not None:
        raise HTTPException(409, f"a user named {body.name!r} exists; issue another token with POST .../tokens")
    expires_at = body.expiry()
    user = await users.create(body.name)
    issued = await users.issue_token(user.id, "created with the user", expires_at=expires_at)
    return IssuedTokenOut.of(user, issued)


@router.post(
    "/api/admin/users/{user_id}/tokens", response_model=IssuedTokenOut, status_code=201, summary="Issue a token"
)
async def issue_token(user_id: str, body: TokenIn, state: State) -> IssuedTokenOut:
    user = await state.store.users.get(user_id)
    issued = await state.store.users.issue_token(user.id, body.label, expires_at=body.expiry())
    return IssuedTokenOut.of(user, issued)


@router.get("/api/admin/users/{user_id}/tokens", response_model=list[TokenInfoOut], summary="A user's tokens")
async def list_tokens(user_id: str, state: State) -> list[TokenInfoOut]:
    await state.store.users.get(user_id)
    return [TokenInfoOut.of(t) for t in await state.store.users.tokens(user_id)]


@router.delete("/api/admin/users/{user_id}/tokens/{token_id}", status_code=204, summary="Revoke a token")
async def revoke_token(user_id: str, token_id: str, state: State) -> Response:
    tokens = await state.store.users.tokens(user_id)
    if not any(t.id == token_id for t in tokens):
        raise HTTPException(404, f"user {user_id!r} has no token {token_id!r}")
    await state.store.users.revoke_token(token_id)
    return Response(status_code=204)
