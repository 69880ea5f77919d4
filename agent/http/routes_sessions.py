"""Sessions: create, list, read the history, delete. Running prompts lives in :mod:`agent.http.runs`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from agent.http.deps import CurrentUser, State
from storage import SessionRecord, User
from storage.errors import NotFound

router = APIRouter(tags=["sessions"])


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_config_id: str | None = Field(
        default=None, description="One of your provider configs; default: your default config of `provider`"
    )
    provider: str | None = Field(default=None, description="Used when provider_config_id is not given")
    model: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=500)
    mcp_servers: list[str] = Field(default_factory=list, description="Names of your (or catalogue) MCP servers")


class SessionOut(BaseModel):
    id: str
    provider_config_id: str | None
    model: str | None
    title: str | None
    mcp_servers: list[str]
    message_count: int
    created_at: float
    running: bool = Field(default=False, description="a run holds the session now (on any service instance)")

    @classmethod
    def of(cls, record: SessionRecord) -> SessionOut:
        return cls(
            id=record.id,
            provider_config_id=record.provider_config_id,
            model=record.model,
            title=record.title,
            mcp_servers=list(record.metadata.get("mcp_servers", [])),
            message_count=record.message_count,
            created_at=record.created_at,
            running=record.running,
        )


class MessageOut(BaseModel):
    seq: int
    role: str
    parts: list[dict[str, Any]]
    created_at: float


class ToolCallOut(BaseModel):
    call_id: str
    name: str
    arguments: dict[str, Any]
    status: str
    is_error: bool | None
    started_at: float
    finished_at: float | None


class HistoryOut(BaseModel):
    session: SessionOut
    messages: list[MessageOut]
    tool_calls: list[ToolCallOut]


async def owned_session(state: State, user: User, session_id: str) -> SessionRecord:
    """The session if it belongs to ``user``; 404 otherwise (another user's id is indistinguishable)."""
    try:
        record = await state.store.sessions.get(session_id)
    except NotFound:
        record = None
    if record is None or record.user_id != user.id:
        raise HTTPException(404, f"no session with id {session_id!r}")
    return record


@router.post("/api/sessions", response_model=SessionOut, status_code=201, summary="Start a session")
async def create_session(body: SessionIn, user: CurrentUser, state: State) -> SessionOut:
    configs = state.store.provider_configs
    if body.provider_config_id is not None:
        config = await configs.get(user.id, body.provider_config_id)  # 404 for another user's config
    elif body.provider is not None:
        found = await configs.default_for(user.id, body.provider)
        if found is None:
            raise HTTPException(400, f"no stored {body.provider} config: add a key with POST /api/user/llm-config")
        config = found
    else:
        mine = await configs.list(user.id)
        defaults = [c for c in mine if c.is_default] or mine
        if not defaults:
            raise HTTPException(400, "you have no provider config yet: add a key with POST /api/user/llm-config")
        config = defaults[0]
    available = {s.name for s in await state.store.mcp_servers.list(user.id)}
    unknown = sorted(set(body.mcp_servers) - available)
    if unknown:
        raise HTTPException(400, f"unknown MCP server(s): {', '.join(unknown)}; GET /api/user/mcp-servers lists yours")
    record = await state.store.sessions.create(
        user.id,
        provider_config_id=config.id,
        model=body.model or config.default_model,
        title=body.title,
        metadata={"mcp_servers": list(dict.fromkeys(body.mcp_servers))},
    )
    return SessionOut.of(record)


@router.get("/api/sessions", response_model=list[SessionOut], summary="Your sessions")
async def list_sessions(user: CurrentUser, state: State) -> list[SessionOut]:
    return [SessionOut.of(r) for r in await state.store.sessions.list(user.id)]


@router.get("/api/sessions/{session_id}", response_model=HistoryOut, summary="A session with its history")
async def get_session(session_id: str, user: CurrentUser, state: State) -> HistoryOut:
    record = await owned_session(state, user, session_id)
    messages = await state.store.messages.list(session_id)
    calls = await state.store.tool_calls.list(session_id)
    return HistoryOut(
        session=SessionOut.of(record),
        messages=[
            MessageOut(
                seq=m.seq,
                role=m.message.role,
                parts=[p.model_dump(mode="json") for p in m.message.parts],
                created_at=m.created_at,
            )
            for m in messages
        ],
        tool_calls=[
            ToolCallOut(
                call_id=c.call_id,
                name=c.name,
                arguments=c.arguments,
                status=c.status,
                is_error=c.result.is_error if c.result is not None else None,
                started_at=c.started_at,
                finished_at=c.finished_at,
            )
            for c in calls
        ],
    )


@router.delete("/api/sessions/{session_id}", status_code=204, summary="Delete a session")
async def delete_session(session_id: str, user: CurrentUser, state: State) -> Response:
    await owned_session(state, user, session_id)
    if not await state.store.sessions.delete(session_id, unless_running=True):  # the run claim, in one statement
        await owned_session(state, user, session_id)  # (404 if it was deleted meanwhile)
        raise HTTPException(409, "the session is running; wait for the run to finish")
    return Response(status_code=204)
