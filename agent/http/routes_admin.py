"""User administration with the admin token: create users, issue and revoke their API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from agent.http.deps import State, require_admin

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)


class IssuedTokenOut(BaseModel):
    user_id: str
    name: str
    token_id: str
    token: str = Field(description="The API token. Shown this once: only its hash is stored")


class TokenInfoOut(BaseModel):
    id: str
    label: str | None
    created_at: float
    last_used_at: float | None
    revoked: bool


@router.post("/api/admin/users", response_model=IssuedTokenOut, status_code=201, summary="Create a user and a token")
async def create_user(body: UserIn, state: State) -> IssuedTokenOut:
    users = state.store.users
    if await users.by_name(body.name) is not None:
        raise HTTPException(409, f"a user named {body.name!r} exists; issue another token with POST .../tokens")
    user = await users.create(body.name)
    issued = await users.issue_token(user.id, "created with the user")
    return IssuedTokenOut(user_id=user.id, name=user.name, token_id=issued.id, token=issued.token.get_secret_value())


@router.post(
    "/api/admin/users/{user_id}/tokens", response_model=IssuedTokenOut, status_code=201, summary="Issue a token"
)
async def issue_token(user_id: str, body: TokenIn, state: State) -> IssuedTokenOut:
    user = await state.store.users.get(user_id)
    issued = await state.store.users.issue_token(user.id, body.label)
    return IssuedTokenOut(user_id=user.id, name=user.name, token_id=issued.id, token=issued.token.get_secret_value())


@router.get("/api/admin/users/{user_id}/tokens", response_model=list[TokenInfoOut], summary="A user's tokens")
async def list_tokens(user_id: str, state: State) -> list[TokenInfoOut]:
    await state.store.users.get(user_id)
    return [
        TokenInfoOut(id=t.id, label=t.label, created_at=t.created_at, last_used_at=t.last_used_at, revoked=t.revoked)
        for t in await state.store.users.tokens(user_id)
    ]


@router.delete("/api/admin/users/{user_id}/tokens/{token_id}", status_code=204, summary="Revoke a token")
async def revoke_token(user_id: str, token_id: str, state: State) -> Response:
    tokens = await state.store.users.tokens(user_id)
    if not any(t.id == token_id for t in tokens):
        raise HTTPException(404, f"user {user_id!r} has no token {token_id!r}")
    await state.store.users.revoke_token(token_id)
    return Response(status_code=204)
