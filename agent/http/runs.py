"""Running prompts: ``POST /api/sessions/{id}/messages`` answers a server-sent-event stream of agent events.

Each event is one SSE message, ``event: <type>`` and ``data: <json>`` (the shapes of
:func:`agent.events.event_to_dict`), opened by ``run_started`` and closed by ``final`` or ``error``.
Tool calls the approval policy asks about arrive as ``approval_requested``; the client answers with
``POST /api/sessions/{id}/approvals/{call_id}`` while the stream stays open. A comment line is sent
every ``_PING_SECONDS`` so that proxies keep a quiet stream (one waiting for approval) open.

The run lives in the request: a client that disconnects cancels it (its partial state is saved by the
runtime). One run per session at a time, across service instances: the run claims the session in the
database before its stream starts (a second post gets 409), renews the claim while it runs and releases it
when it ends (see :mod:`storage.claims`); at most ``max_concurrent_runs`` per user.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from agent.approval import ApprovalDecision, ApprovalPolicy, ApprovalRequest, Approve, Deny
from agent.events import event_to_dict
from agent.http.deps import CurrentUser, ServiceState, State
from agent.http.routes_sessions import owned_session
from agent.http.ssrf import check_provider_config, check_url
from agent.limits import Limits
from mcp_bridge.config import McpConfig, McpConfigError, ServerConfig, parse_server
from providers.egress import EgressPolicy
from providers.errors import ConfigError, RoutekitError, scrub
from storage import SessionRecord, User
from storage.claims import RunClaim, process_owner
from storage.errors import StorageError

router = APIRouter(tags=["sessions"])
_log = logging.getLogger("agent.http")
_PING_SECONDS = 15.0
_OWNER = process_owner()  # this process, as the holder of run claims


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, description="The user's message")
    model: str | None = Field(default=None, max_length=200, description="Use another model for this run")


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str | None = Field(default=None, max_length=2000, description="Told to the model when denying")


@dataclass
class _Pending:
    event: anyio.Event = field(default_factory=anyio.Event)
    decision: ApprovalDecision | None = None


@dataclass
class LiveRun:
    """A run in progress: who owns it and which approvals it is waiting for."""

    user_id: str
    pending: dict[str, _Pending] = field(default_factory=dict)

    def policy(self, timeout: float) -> ApprovalPolicy:
        async def ask(request: ApprovalRequest) -> ApprovalDecision:
            waiting = self.pending[request.call_id] = _Pending()  # registered before the client can answer
            try:
                with anyio.move_on_after(timeout):
                    await waiting.event.wait()
            finally:
                self.pending.pop(request.call_id, None)
            return waiting.decision or Deny(f"no answer from the user within {timeout:g} seconds")

        return ApprovalPolicy(callback=ask)


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class _EventStream(Response):
    """Streams one run as SSE. Written against ASGI directly so the run, the pinger and the disconnect
    watcher share one task group, and the MCP hub the session opens is closed in the task that opened it."""

    media_type = "text/event-stream"

    def __init__(
        self, state: ServiceState, user: User, record: SessionRecord, body: MessageIn, claim: RunClaim
    ) -> None:
        super().__init__(
            status_code=200, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}, media_type=None
        )
        self.state, self.user, self.record, self.message, self.claim = state, user, record, body, claim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, user_id, session_id = self.state, self.user.id, self.record.id
        live = LiveRun(user_id)
        state.live[session_id] = live
        lock = anyio.Lock()

        async def emit(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                async def ping() -> None:
                    while True:
                        await anyio.sleep(_PING_SECONDS)
                        await emit(b": keep-alive\n\n")

                async def keep_claim() -> None:
                    await _keep_claim(state, self.claim)  # returns when the claim is lost
                    text = "this run lost its claim on the session (its lease expired); the run was stopped"
                    await emit(_sse("error", {"type": "error", "error": text, "kind": "Conflict"}))
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                tg.start_soon(ping)
                tg.start_soon(keep_claim)
                await self._run(live, emit)
                tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away while we wrote
            pass
        finally:
            state.live.pop(session_id, None)
            state.runs.release(user_id)
            await _release(state, self.claim)

    async def _run(self, live: LiveRun, emit: Any) -> None:
        from agent.session import Session

        state, record = self.state, self.record
        await emit(_sse("run_started", {"session_id": record.id, "model": self.message.model or record.model}))
        async with contextlib.AsyncExitStack() as stack:
            try:
                mcp, guarded = await _mcp_config(state, self.user.id, record)
                lease = state.hubs.lease(self.user.id, mcp, egress=guarded) if mcp else None
                hub = await stack.enter_async_context(lease) if lease is not None else None
                session = await Session.open(
                    store=state.store,
                    user=self.user.id,
                    session_id=record.id,
                    run_id=self.claim.run_id,
                    mcp=mcp if hub is None else None,
                    hub=hub,
                    approval=live.policy(state.settings.approval_timeout),
                    limits=Limits(),
                    egress=state.egress,
                    mcp_egress=guarded,
                    breakers=state.breakers_for(self.user.id),
                )
            except (RoutekitError, ValueError) as exc:
                await emit(_sse("error", {"type": "error", "error": str(exc), "kind": type(exc).__name__}))
                return
            await self._stream(session, emit)

    async def _stream(self, session: Any, emit: Any) -> None:
        record = self.record
        try:
            async for event in session.stream(self.message.content, model=self.message.model):
                await emit(_sse(event.type, event_to_dict(event)))
        except RoutekitError:
            pass  # already delivered as the stream's "error" event
        except Exception as exc:
            _log.error("run of session %s failed: %s", record.id, type(exc).__name__)
            await emit(
                _sse("error", {"type": "error", "error": "internal error; see the service log", "kind": "Internal"})
            )
        finally:
            # Not inside a new (shielding) cancel scope: the session leaves its MCP hub's task group at the
            # nesting level it entered it, as anyio requires.
            await session.aclose()


async def _keep_claim(state: ServiceState, claim: RunClaim) -> None:
    """Renew the run's claim every third of its lease while the run lives; returns when it is lost."""
    lease = state.settings.run_lease_seconds
    while True:
        await anyio.sleep(lease / 3)
        try:
            if not await state.store.run_claims.renew(claim, lease):
                _log.warning("run %s lost its claim on session %s", claim.run_id, claim.session_id)
                return
        except StorageError as exc:  # the database is unreachable: retry; the lease covers two misses
            _log.warning("renewing the claim of run %s failed: %s", claim.run_id, type(exc).__name__)


async def settle_open_attempts(state: ServiceState) -> None:
    """While the service runs: record the model calls of runs whose instance died (their claim lapsed) as
    interrupted usage rows, also when their sessions are never used again (see storage.attempts)."""
    every = max(2 * state.settings.run_lease_seconds, 1.0)
    while True:
        await anyio.sleep(every)
        try:
            settled = await state.store.open_attempts.settle()
        except StorageError as exc:
            _log.warning("settling open model calls failed: %s", type(exc).__name__)
            continue
        if settled:
            _log.info("recorded %d model call(s) of stopped runs as interrupted", settled)


async def _release(state: ServiceState, claim: RunClaim) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await state.store.run_claims.release(claim)
        except StorageError as exc:  # the lease expires on its own
            _log.warning("releasing the claim of run %s failed: %s", claim.run_id, type(exc).__name__)


async def _mcp_config(
    state: ServiceState, user_id: str, record: SessionRecord
) -> tuple[McpConfig | None, dict[str, EgressPolicy]]:
    """The session's MCP servers with their secrets, and the egress policy of each of the user's own servers
    (their URLs are checked again here, and their connections are held to the policy; the admin's catalogue
    servers are the operator's and are not)."""
    names: list[str] = list(record.metadata.get("mcp_servers", []))
    if not names:
        return None, {}
    guarded: dict[str, EgressPolicy] = {}
    servers: dict[str, ServerConfig] = {}
    mine = {s.name for s in await state.store.mcp_servers.list(user_id, include_global=False)}
    for name in names:
        secrets = await state.store.mcp_servers.resolve(user_id, name)
        entry = dict(secrets.config)
        if secrets.env:
            entry["env"] = secrets.env
        if secrets.headers:
            entry["headers"] = secrets.headers
        try:
            server = parse_server(name, entry, {})  # no ${VAR} expansion from the service's environment
        except McpConfigError as exc:
            raise ConfigError(scrub(str(exc), [*secrets.env.values(), *secrets.headers.values()])) from None
        if name in mine:
            if server.transport == "stdio":
                raise ConfigError(f"MCP server {name!r}: users may not run stdio servers")
            assert server.url is not None
            await check_url(server.url, state.settings, what=f"MCP server {name!r}")
            guarded[name] = state.egress
        servers[name] = server
    return McpConfig(servers=servers), guarded


@router.post(
    "/api/sessions/{session_id}/messages",
    summary="Send a message; answers a text/event-stream of agent events",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE: one agent event per message"}},
)
async def post_message(session_id: str, body: MessageIn, user: CurrentUser, state: State) -> Response:
    record = await owned_session(state, user, session_id)
    if record.provider_config_id is None:
        raise HTTPException(409, "this session has no provider config; create a new session")
    try:  # a broken or missing key is a clean 409 here rather than an error event later
        config = await state.store.provider_configs.resolve(user.id, record.provider_config_id)
        config.resolve_api_key(environment=False)
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    await check_provider_config(config, state.egress)  # 400: the operator's policy is checked at every use
    # Check and claim in one statement in the database: a second post (on any instance) finds it taken.
    claim = await state.store.run_claims.claim(session_id, _OWNER, state.settings.run_lease_seconds)
    if claim is None:
        raise HTTPException(
            409, "this session is already running (a run is in progress on it); wait for its stream to end"
        )
    try:
        state.runs.acquire(user.id)  # 429 when the user already runs the maximum
    except BaseException:
        await _release(state, claim)
        raise
    return _EventStream(state, user, record, body, claim)


@router.post("/api/sessions/{session_id}/approvals/{call_id}", status_code=204, summary="Approve or deny a tool call")
async def answer_approval(session_id: str, call_id: str, body: ApprovalIn, user: CurrentUser, state: State) -> Response:
    await owned_session(state, user, session_id)
    live = state.live.get(session_id)
    waiting = live.pending.get(call_id) if isinstance(live, LiveRun) and live.user_id == user.id else None
    if waiting is None:
        raise HTTPException(404, f"no pending approval {call_id!r} in this session")
    waiting.decision = Approve() if body.approve else Deny(body.reason or "the user denied this call")
    waiting.event.set()
    return Response(status_code=204)
