"""Running prompts: ``POST /api/sessions/{id}/messages`` (a server-sent-event stream) and approvals.

Filled in once the agent runtime (agent/session.py) lands.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from agent.http.deps import CurrentUser, State
from agent.http.routes_sessions import owned_session

router = APIRouter(tags=["sessions"])


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, description="The user's message")


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str | None = Field(default=None, max_length=2000, description="Told to the model when denying")


@router.post("/api/sessions/{session_id}/messages", summary="Send a message; answers a text/event-stream of events")
async def post_message(session_id: str, body: MessageIn, user: CurrentUser, state: State) -> None:
    await owned_session(state, user, session_id)
    raise HTTPException(501, "running prompts over HTTP is not available yet: the agent runtime is not integrated")


@router.post("/api/sessions/{session_id}/approvals/{call_id}", status_code=204, summary="Approve or deny a tool call")
async def answer_approval(session_id: str, call_id: str, body: ApprovalIn, user: CurrentUser, state: State) -> None:
    await owned_session(state, user, session_id)
    raise HTTPException(404, f"no pending approval {call_id!r} in this session")
