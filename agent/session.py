"""The session handler: a conversation of one user with one model (and its fallbacks) and MCP tools.

::

    async with await Session.open(provider="anthropic", mcp="mcp.json", system="Be brief.") as session:
        result = await session.run("What files are in /tmp?")
        print(result.text, result.usage, result.cost_usd)
        async for event in session.stream("And which is the largest?"):
            ...

A session is stored: its messages, tool calls and every model-call attempt's usage go to the
:class:`~storage.Store` (by default the embedded SQLite database under ``$ROUTEKIT_HOME``, for a local
default user). ``Session.resume(session_id, ...)`` reopens it after a crash or in another process;
``session.resume_run()`` finishes an interrupted run (see :mod:`agent.loop` for what is re-run).

What a session holds open: the store (when it opened it) and, when it was given an MCP config, an
:class:`~mcp_bridge.McpHub` whose sampling requests go to this session's provider (with the user's key,
metered to the user, under the approval policy and the run's limits). Provider adapters (SDK clients and
their connection pools) are shared by the sessions of one event loop with the same resolved config
(:func:`providers.base.shared_provider`) and closed when the loop shuts down, or by
``providers.base.close_shared_providers()``.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from agent.approval import ApprovalPolicy, ApprovalRequest, Approve, Deny, EditArguments
from agent.events import AgentEvent, EventCallback, RunError, RunFinished
from agent.limits import LIMIT_REASONS, Limits, LimitTracker, describe
from agent.loop import Run
from agent.tracing import get_tracer
from providers.base import ProviderConfig, shared_provider
from providers.errors import ConfigError, ProviderError, RoutekitError
from providers.resilience import Attempt, Breakers, FallbackTarget, ResilienceEvent, ResilientModel, RetryPolicy
from providers.types import Message, ModelRequest, ToolCallPart, ToolResultPart, ToolSpec, Usage

if TYPE_CHECKING:
    from mcp_bridge.callbacks import (
        ElicitationHandler,
        ProgressCallback,
        SamplingRequest,
        SamplingResponse,
    )
    from mcp_bridge.config import McpConfig
    from mcp_bridge.hub import McpHub
    from providers.egress import EgressPolicy
    from storage.attempts import OpenAttempt
    from storage.repositories import SessionRecord, User
    from storage.store import Store

__all__ = ["LOCAL_USER", "RunResult", "SamplingRouter", "Session", "ToolCallSummary"]

LOCAL_USER = "local"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ToolCallSummary:
    """One tool call of a run. ``executed`` is False for calls refused before running."""

    name: str
    arguments: dict[str, Any]
    is_error: bool
    duration: float
    executed: bool = True


@dataclass(frozen=True)
class RunResult:
    """What a run produced. ``usage`` sums every attempt (a field is None when any call left it unknown);
    ``cost_usd`` is None when a call's price is unknown. ``detail`` explains a stop other than ``end_turn``."""

    text: str
    session_id: str
    stop_reason: str
    usage: Usage
    cost_usd: float | None
    tool_calls: list[ToolCallSummary] = field(default_factory=list)
    provider: str | None = None
    model: str | None = None
    detail: str | None = None

    @property
    def limit_reached(self) -> bool:
        return self.stop_reason in LIMIT_REASONS

    def to_dict(self) -> dict[str, Any]:
        """The ``routekit run --json`` shape."""
        return {
            "text": self.text,
            "session_id": self.session_id,
            "stop_reason": self.stop_reason,
            "detail": self.detail,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage.model_dump(),
            "cost_usd": self.cost_usd,
            "tool_calls": [
                {
                    "name": c.name,
                    "arguments": c.arguments,
                    "is_error": c.is_error,
                    "duration": round(c.duration, 6),
                    "executed": c.executed,
                }
                for c in self.tool_calls
            ],
        }


# --------------------------------------------------------------------------- tools


class _Tool:
    """A tool offered to the model, with its argument validator compiled once (lazily)."""

    __slots__ = ("_validator", "retry_safe", "server_auto", "spec")

    def __init__(self, spec: ToolSpec, server_auto: bool) -> None:
        self.spec = spec
        self.server_auto = server_auto
        hints = spec.annotations
        self.retry_safe = bool(hints is not None and (hints.read_only or hints.idempotent))
        self._validator: Any = None

    def validate(self, arguments: dict[str, Any]) -> str | None:
        """The first schema violation of ``arguments`` (``at path: message``), or None."""
        schema = self.spec.input_schema
        if not schema:
            return None
        if self._validator is None:
            self._validator = _compile_validator(schema)
        if self._validator is False:
            return None
        if self._validator.is_valid(arguments):  # the usual case; ranking errors is for the rare other one
            return None
        from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

        error = best_match(self._validator.iter_errors(arguments))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"at {where}: {error.message}"


def _compile_validator(schema: dict[str, Any]) -> Any:
    from jsonschema import validators  # type: ignore[import-untyped]
    from jsonschema.exceptions import SchemaError

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return False  # a tool with a broken schema is validated by its server, not here
    return cls(schema)


# Sessions sharing a hub (the HTTP service, a benchmark) share its tools: the same ToolSpec objects (so an
# adapter's compiled-toolset cache hits across sessions) and each tool's validator, compiled once (checking a
# schema against its metaschema costs milliseconds). Keyed weakly: a closed hub takes its entry with it.
_HUB_TOOLS: weakref.WeakKeyDictionary[McpHub, tuple[int, dict[str, _Tool], list[ToolSpec]]] = (
    weakref.WeakKeyDictionary()
)


# The local user's id per open store: looked up (or created) by the first session, not by every one.
# One circuit breaker per endpoint for the whole process unless a caller brings its own: a provider that keeps
# failing should fail fast for every session (the HTTP service runs many), not only within one session.
_PROCESS_BREAKERS = Breakers()

_LOCAL_USER_IDS: weakref.WeakKeyDictionary[Store, str] = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- sampling routing


class SamplingRouter:
    """Sampling and elicitation handlers for an :class:`McpHub` shared by sessions (last bound wins).

    A session that opens its own hub wires itself; give a shared hub ``sampling=router`` and
    ``elicitation=router.elicit`` and the session given that hub binds itself while it is open.
    """

    def __init__(self) -> None:
        self.session: Session | None = None

    async def __call__(self, request: SamplingRequest) -> SamplingResponse:
        if self.session is None:
            raise RuntimeError("no routekit session is bound to handle this sampling request")
        return await self.session.sample(request)

    async def elicit(self, request: Any) -> Any:
        from mcp_bridge.callbacks import ElicitationResponse

        session = self.session
        if session is None or session.elicitation is None:
            return ElicitationResponse(action="decline")
        return await session.elicitation(request)


def session_hub(
    config: McpConfig, router: SamplingRouter | None = None, *, egress: Mapping[str, EgressPolicy] | None = None
) -> McpHub:
    """A hub (not yet entered) that advertises what every session's hub advertises to its servers.

    Sampling and elicitation go through ``router`` to the session bound to it; with none bound, a sampling
    request is refused and an elicitation declined, so a hub that only lists tools (``routekit mcp
    tools``) offers the servers the same capabilities, and gets the same tools, as a session. Roots are
    per server, from its config; ``egress`` as for :class:`~mcp_bridge.hub.McpHub`.
    """
    from mcp_bridge.hub import McpHub

    router = router if router is not None else SamplingRouter()
    return McpHub(config, sampling=router, elicitation=router.elicit, egress=egress)


# --------------------------------------------------------------------------- the session


class Session:
    """See the module docstring. Build with :meth:`open` or :meth:`resume` (both async)."""

    def __init__(self) -> None:  # use Session.open / Session.resume
        self.store: Store
        self.user_id: str
        self.session_id: str
        self.history: list[Message] = []
        self.system: str | None = None
        self.model_name: str = ""
        self.provider_name: str = ""
        self.temperature: float | None = None
        self.max_tokens: int | None = None
        self.limits = Limits()
        self.approval = ApprovalPolicy()
        self.elicitation: ElicitationHandler | None = None
        self.config_ids: dict[str, str] = {}
        self.model: ResilientModel
        self._sampling_model: ResilientModel
        self.hub: McpHub | None = None
        self.tracer = get_tracer()
        self._owns_store = False
        self._owns_hub = False
        self._router: SamplingRouter | None = None
        self._providers: list[Any] = []
        self._tools: dict[str, _Tool] = {}
        self._specs: list[ToolSpec] = []
        self._tools_version = -1
        self._call_ids: set[str] = set()
        self._run: Run | None = None
        self._cancel_scope: anyio.CancelScope | None = None
        self._cancel_requested = False
        self._lock = anyio.Lock()
        self.unsaved_record: SessionRecord | None = None  # a new session not written yet (see _open)
        self._egress: EgressPolicy | None = None
        self.run_id: str | None = None  # the run claim held on the session by the caller (see open)
        self.config_id: str | None = None  # the main provider config's stored id

    # ----------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls,
        *,
        provider: ProviderConfig | str | None = None,
        config_id: str | None = None,
        fallbacks: Sequence[ProviderConfig | str] = (),
        model: str | None = None,
        mcp: McpConfig | Mapping[str, Any] | str | Path | None = None,
        hub: McpHub | None = None,
        system: str | None = None,
        limits: Limits | None = None,
        approval: ApprovalPolicy | None = None,
        elicitation: ElicitationHandler | None = None,
        store: Store | str | None = None,
        user: User | str | None = None,
        session_id: str | None = None,
        title: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        retry: RetryPolicy | None = None,
        breakers: Breakers | None = None,
        egress: EgressPolicy | None = None,
        mcp_egress: Mapping[str, EgressPolicy] | None = None,
        run_id: str | None = None,
    ) -> Session:
        """Open a new session (or, with ``session_id``, an existing one; see :meth:`resume`).

        ``provider``: a :class:`ProviderConfig` (key given or read from the environment), a stored config
        id, or a provider name (the user's stored default config for it, else its key from the
        environment). ``config_id`` picks a stored config explicitly. ``fallbacks`` are tried in order when
        the main provider fails (each needs a default model). ``mcp``: a config object, the decoded
        ``mcpServers`` JSON or a path to it; the session opens a hub for it. ``hub``: an already open hub
        (not closed by the session). ``store``: a Store or database URL (default: the embedded SQLite
        store). ``user``: a User or user id (default: the local user, created on first use).
        ``egress`` (the HTTP service): provider adapters connect only where the policy allows and never use
        the process environment's keys or hosts; ``mcp_egress`` does the same per MCP server name for the
        hub the session opens (see :mod:`providers.egress`). ``run_id``: the
        run claim (:mod:`storage.claims`) the caller holds on the session, if any: model calls in flight are
        recorded under it, so that they are settled when it lapses (:mod:`storage.attempts`).
        """
        self = cls()
        try:
            await self._open(
                provider=provider,
                config_id=config_id,
                fallbacks=fallbacks,
                model=model,
                mcp=mcp,
                hub=hub,
                system=system,
                limits=limits,
                approval=approval,
                elicitation=elicitation,
                store=store,
                user=user,
                session_id=session_id,
                title=title,
                temperature=temperature,
                max_tokens=max_tokens,
                retry=retry,
                breakers=breakers,
                egress=egress,
                mcp_egress=mcp_egress,
                run_id=run_id,
            )
        except BaseException:
            await self.aclose()
            raise
        return self

    @classmethod
    async def resume(cls, session_id: str, **options: Any) -> Session:
        """Reopen a stored session (same options as :meth:`open`; the stored config and model are the defaults)."""
        return await cls.open(session_id=session_id, **options)

    async def _open(
        self,
        *,
        provider: ProviderConfig | str | None,
        config_id: str | None,
        fallbacks: Sequence[ProviderConfig | str],
        model: str | None,
        mcp: McpConfig | Mapping[str, Any] | str | Path | None,
        hub: McpHub | None,
        system: str | None,
        limits: Limits | None,
        approval: ApprovalPolicy | None,
        elicitation: ElicitationHandler | None,
        store: Store | str | None,
        user: User | str | None,
        session_id: str | None,
        title: str | None,
        temperature: float | None,
        max_tokens: int | None,
        retry: RetryPolicy | None,
        breakers: Breakers | None,
        egress: EgressPolicy | None,
        mcp_egress: Mapping[str, EgressPolicy] | None,
        run_id: str | None,
    ) -> None:
        from storage.store import open_store

        self.run_id = run_id

        if store is None or isinstance(store, str):
            self.store = await open_store(store)
            self._owns_store = True
        else:
            self.store = store
        self.user_id = await self._user_id(user)
        record = await self.store.sessions.get(session_id) if session_id is not None else None
        if record is not None and record.user_id != self.user_id:
            raise ConfigError(f"session {session_id!r} belongs to another user")
        if provider is None and config_id is None and record is not None and record.provider_config_id:
            config_id = record.provider_config_id
        self._egress = egress
        main, main_id = await self._config(provider, config_id)
        self.config_id = main_id
        self.model_name = main.resolve_model(model or (record.model if record else None))
        self.provider_name = main.provider
        configs = [(main, main_id)]
        for extra in fallbacks:
            configs.append(await self._config(extra, None))
        targets = []
        for cfg, cid in configs:
            # One adapter (SDK client, connection pool) per config and event loop, shared by sessions.
            adapter, is_shared = await shared_provider(cfg, egress=egress)
            if not is_shared:
                self._providers.append(adapter)
            if cid is not None:
                self.config_ids[cfg.label or cid] = cid
            targets.append(FallbackTarget(adapter))
        shared = breakers or _PROCESS_BREAKERS
        self.model = ResilientModel(
            targets, retry, shared, on_attempt=self._on_attempt, on_event=self._on_resilience_event
        )
        self._sampling_model = ResilientModel(targets, retry, shared, on_attempt=self._on_sampling_attempt)
        self._sampling_attempts: list[Attempt] = []
        self.system = system
        self.temperature, self.max_tokens = temperature, max_tokens
        self.limits = limits or Limits()
        self.approval = approval or ApprovalPolicy()
        self.elicitation = elicitation
        if record is None:
            from storage.repositories import new_session_record

            # Stored with the session's first write (the prompt's transaction) or when it closes: one
            # commit less per new session. Nothing else refers to the row before then.
            record = self.unsaved_record = new_session_record(
                self.user_id,
                provider_config_id=main_id,
                model=self.model_name,
                title=title,
                metadata={"system": system} if system else None,
            )
        else:
            # A model call that a killed process left open becomes an "interrupted" usage row now.
            await self.store.open_attempts.settle(record.id)
            stored = await self.store.messages.list(record.id)
            self.history = [m.message for m in stored]
            if system is None:
                self.system = record.metadata.get("system")
            for message in self.history:
                self._call_ids.update(call.id for call in message.tool_calls)
        self.session_id = record.id
        await self._open_hub(mcp, hub, mcp_egress)

    async def _user_id(self, user: User | str | None) -> str:
        if user is None:
            cached = _LOCAL_USER_IDS.get(self.store)
            if cached is not None:
                return cached
            _LOCAL_USER_IDS[self.store] = found_id = await self._local_user_id()
            return found_id
        if isinstance(user, str):
            return (await self.store.users.get(user)).id
        return user.id

    async def _local_user_id(self) -> str:
        found = await self.store.users.by_name(LOCAL_USER)
        if found is None:
            try:
                found = await self.store.users.create(LOCAL_USER)
            except Exception:  # another process created it first
                found = await self.store.users.by_name(LOCAL_USER)
                if found is None:
                    raise
        return found.id

    async def _config(
        self, given: ProviderConfig | str | None, config_id: str | None
    ) -> tuple[ProviderConfig, str | None]:
        """A config with its key, and the stored config's id when it came from storage."""
        from storage.errors import NotFound

        environment = self._egress is None  # the service never lends its own keys
        if isinstance(given, ProviderConfig):
            given.resolve_api_key(environment=environment)  # a missing key is a ConfigError now, not later
            return given, None
        if config_id is None and isinstance(given, str):
            try:
                await self.store.provider_configs.get(self.user_id, given)
                config_id = given
            except NotFound:
                stored = await self.store.provider_configs.default_for(self.user_id, given)
                if stored is None:
                    explicit = ProviderConfig(provider=given)
                    explicit.resolve_api_key(environment=environment)
                    return explicit, None
                config_id = stored.id
        if config_id is None:
            raise ConfigError("no provider given: pass provider= (a ProviderConfig, provider name or stored config id)")
        resolved = await self.store.provider_configs.resolve(self.user_id, config_id)
        resolved.resolve_api_key(environment=environment)
        return resolved, config_id

    async def _open_hub(
        self,
        mcp: McpConfig | Mapping[str, Any] | str | Path | None,
        hub: McpHub | None,
        egress: Mapping[str, EgressPolicy] | None,
    ) -> None:
        if hub is not None:
            self.hub = hub
            if isinstance(hub.sampling, SamplingRouter):
                self._router = hub.sampling
                hub.sampling.session = self
            return
        if mcp is None:
            return
        from mcp_bridge.config import McpConfig, load_config, parse_config

        if isinstance(mcp, str | Path):
            config = load_config(mcp)
        elif isinstance(mcp, McpConfig):
            config = mcp
        else:
            config = parse_config(mcp)
        # The same capabilities as the shared hubs (chat, the service): elicitation is declined when this
        # session has no handler, instead of hiding the tools that need it.
        self._router = SamplingRouter()
        self._router.session = self
        self.hub = session_hub(config, self._router, egress=egress)
        await self.hub.__aenter__()
        self._owns_hub = True

    async def aclose(self) -> None:
        """Close what the session opened (hub, store, adapters it does not share with other sessions)."""
        if self._router is not None and self._router.session is self:
            self._router.session = None
        if self.hub is not None and self._owns_hub:
            # The hub's task group was entered by ``open`` in this task: leave it at the same nesting level
            # (not inside a new cancel scope), or anyio refuses to exit it.
            self._owns_hub = False
            await self.hub.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            if self.unsaved_record is not None:
                with contextlib.suppress(Exception):  # best effort, like the rest of closing
                    await self.ensure_stored()
            for adapter in self._providers:
                with contextlib.suppress(Exception):  # closing is best effort
                    await adapter.aclose()
            self._providers = []
            if self._owns_store:
                self._owns_store = False
                await self.store.close()

    async def ensure_stored(self) -> None:
        """Write the session's row now if it has not been written yet."""
        record = self.unsaved_record
        if record is not None:
            await self.store.record_step(record.id, (), (), new_session=record)
            self.unsaved_record = None

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- tools

    def _refresh_tools(self) -> None:
        hub = self.hub
        if hub is None or hub.tools_version == self._tools_version:
            return
        self._tools_version = hub.tools_version
        cached = _HUB_TOOLS.get(hub)
        if cached is None or cached[0] != hub.tools_version:
            specs = hub.tools()
            cached = (
                hub.tools_version,
                {spec.name: _Tool(spec, hub.is_auto_approved(spec.name)) for spec in specs},
                specs,
            )
            _HUB_TOOLS[hub] = cached
        _, self._tools, self._specs = cached

    def tool_specs(self) -> list[ToolSpec]:
        """The tools offered to the model (the same list object while the hub's tools do not change)."""
        self._refresh_tools()
        return self._specs

    def tool(self, name: str) -> _Tool | None:
        self._refresh_tools()
        return self._tools.get(name)

    def tool_names(self) -> list[str]:
        return list(self._tools)

    async def call_tool(
        self, call: ToolCallPart, arguments: dict[str, Any], progress: ProgressCallback | None
    ) -> ToolResultPart:
        assert self.hub is not None
        return await self.hub.call_tool(call.name, arguments, call_id=call.id, on_progress=progress)

    def unique_call_ids(self, message: Message) -> Message:
        """Make the message's tool-call ids unique in this session (some servers reuse ids across turns)."""
        calls = message.tool_calls
        if not calls:
            return message
        if all(call.id not in self._call_ids for call in calls) and len({c.id for c in calls}) == len(calls):
            self._call_ids.update(call.id for call in calls)
            return message
        parts = []
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                new_id, n = part.id, 1
                while new_id in self._call_ids:
                    n += 1
                    new_id = f"{part.id}_{n}"
                self._call_ids.add(new_id)
                part = part.model_copy(update={"id": new_id}) if new_id != part.id else part
            parts.append(part)
        return Message(role=message.role, parts=parts)

    # ----------------------------------------------------------------- running

    def _on_attempt(self, attempt: Attempt) -> None:
        if self._run is not None:
            self._run.on_attempt(attempt)

    def _on_resilience_event(self, event: ResilienceEvent) -> None:
        if self._run is not None:
            self._run.on_resilience(event)

    async def run(
        self,
        prompt: str | None,
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        limits: Limits | None = None,
        on_event: EventCallback | None = None,
        deltas: bool = False,
    ) -> RunResult:
        """Run ``prompt`` to a final answer (or a limit). ``None`` continues the stored conversation
        (what :meth:`resume_run` does). Overrides apply to this call only. Provider errors are raised after
        the partial state is saved; limits and :meth:`cancel` end with a result.

        ``on_event`` receives every event of the run. The model is called without streaming unless
        ``deltas`` is true: each response's text then arrives as one :class:`TextChunk` (the cheapest way
        to run). With ``deltas=True`` (what :meth:`stream` and ``routekit run`` use) the model streams and
        text arrives as it is generated; a cancelled run then also keeps the partial answer."""
        async with self._lock:
            return await self._execute(prompt, model, temperature, max_tokens, limits, on_event, deltas)

    async def resume_run(self, **overrides: Any) -> RunResult:
        """Finish an interrupted run: settle unanswered tool calls, then let the model continue."""
        return await self.run(None, **overrides)

    def cancel(self) -> None:
        """Stop the current run at once; it ends with stop reason ``cancelled`` and its partial state saved."""
        self._cancel_requested = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def stream(
        self,
        prompt: str | None,
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        limits: Limits | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """The run's events as they happen; the last is :class:`RunFinished` (or :class:`RunError`, after
        which the error is raised). Leaving the loop early cancels the run (its partial state is saved)."""
        send, receive = anyio.create_memory_object_stream[AgentEvent](math.inf)
        failure: list[BaseException] = []

        def deliver(event: AgentEvent) -> None:
            # The consumer may have stopped listening; the run is then being cancelled.
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                send.send_nowait(event)

        async def produce() -> None:
            with send:
                try:
                    await self.run(
                        prompt,
                        model=model,
                        temperature=temperature,
                        max_tokens=max_tokens,
                        limits=limits,
                        on_event=deliver,
                        deltas=True,
                    )
                except Exception as error:  # delivered to the consumer after the RunError event
                    failure.append(error)

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            try:
                with receive:
                    async for event in receive:
                        yield event
            finally:
                if self._run is not None:
                    self.cancel()  # the run ends with "cancelled" and saves its partial state
        if failure:
            raise failure[0]

    async def _execute(
        self,
        prompt: str | None,
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        limits: Limits | None,
        on_event: EventCallback | None,
        deltas: bool,
    ) -> RunResult:
        lim = limits or self.limits
        tracker = LimitTracker(lim)
        run = Run(
            self,
            model=model or self.model_name,
            temperature=temperature if temperature is not None else self.temperature,
            max_tokens=max_tokens if max_tokens is not None else self.max_tokens,
            tracker=tracker,
            emit=on_event,
            deltas=deltas,
        )
        self._run = run
        self._cancel_requested = False
        with self.store.running():  # the store may commit a lone run's steps more cheaply (storage.sqlite)
            return await self._execute_run(run, lim, tracker, prompt)

    async def _execute_run(self, run: Run, lim: Limits, tracker: LimitTracker, prompt: str | None) -> RunResult:
        try:
            if lim.check_budget:
                budget = await self.store.usage.active_budget(self.user_id)  # None: no budget, no scan
                if budget is not None:
                    tracker.set_budget(budget.remaining_usd, budget.remaining_tokens)
            with self.tracer.run(self.session_id, run.model) as span:
                await self._loop(run, prompt, tracker)
                span.set_attribute("gen_ai.usage.input_tokens", tracker.input_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", tracker.output_tokens)
        except (ProviderError, RoutekitError) as error:
            await run.save_partial(cancelled=False)
            run.emit(RunError(str(error), type(error).__name__))
            raise
        except BaseException:
            await run.save_partial(cancelled=True)
            raise
        finally:
            self._run = None
            self._cancel_scope = None
            await run.drop_unused_attempt()
        result = self._result(run)
        run.emit(RunFinished(result))
        return result

    async def _loop(self, run: Run, prompt: str | None, tracker: LimitTracker) -> None:
        deadline = tracker.deadline_seconds
        with anyio.CancelScope() as scope:
            self._cancel_scope = scope
            if self._cancel_requested:
                scope.cancel()
            if deadline is not None:
                scope.deadline = anyio.current_time() + deadline
            await run.loop(prompt)
        if scope.cancelled_caught:
            run.stop_reason = "cancelled" if self._cancel_requested else "timeout"
            await run.save_partial(cancelled=True)
        else:
            await run.flush()

    def _result(self, run: Run) -> RunResult:
        reason = run.stop_reason or "end_turn"
        last = run.last_response
        text = last.text if last is not None else ""
        if reason in ("cancelled", "timeout") and self.history and self.history[-1].role == "assistant":
            text = self.history[-1].text
        detail = None if reason == "end_turn" else describe(reason, run.tracker.limits)
        return RunResult(
            text=text,
            session_id=self.session_id,
            stop_reason=reason,
            usage=run.total_usage(),
            cost_usd=run.cost_usd(),
            tool_calls=run.tool_summaries,
            provider=last.provider if last is not None else self.provider_name,
            model=last.model if last is not None else run.model,
            detail=detail,
        )

    # ----------------------------------------------------------------- sampling (MCP servers -> our provider)

    def _on_sampling_attempt(self, attempt: Attempt) -> None:
        self._sampling_attempts.append(attempt)

    async def sample(self, request: SamplingRequest) -> SamplingResponse:
        """Serve a server's ``sampling/createMessage`` with this session's provider, metered to this user."""
        from mcp_bridge.callbacks import SamplingResponse

        hub = self.hub
        server_auto = bool(
            hub is not None
            and request.server in hub.config.servers
            and hub.config.servers[request.server].trust == "auto"
        )
        verdict = self.approval.sampling_verdict(server_auto)
        if verdict == "deny":
            raise PermissionError(f"sampling requests from MCP server {request.server!r} are denied by the policy")
        if verdict == "ask":
            callback = self.approval.callback
            if callback is None:
                raise PermissionError(
                    f"sampling for MCP server {request.server!r} needs approval and no one can be asked"
                )
            arguments = {"messages": [m.text for m in request.messages], "max_tokens": request.max_tokens}
            decision = await callback(ApprovalRequest("sampling", request.server, arguments, "sampling"))
            if isinstance(decision, Deny):
                raise PermissionError(f"the user denied the sampling request: {decision.reason}")
            if not isinstance(decision, Approve | EditArguments):
                raise PermissionError("the approval callback returned no decision")
        run = self._run
        if run is not None and (reason := run.tracker.spending_reached()) is not None:
            raise PermissionError(f"sampling refused: {describe(reason, run.tracker.limits)}")
        model_request = ModelRequest(
            model=self.model_name,
            messages=request.messages,
            system=request.system,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=request.stop_sequences,
        )
        attempts_before = len(self._sampling_attempts)
        open_attempt = self.next_open_attempt(self.model_name, streamed=False)
        await self.store.open_attempts.open(open_attempt)  # a commit of its own: no other precedes the call
        try:
            response = await self._sampling_model.complete(model_request)
        finally:
            attempts = self._sampling_attempts[attempts_before:]
            del self._sampling_attempts[attempts_before:]
            await self._meter_sampling(attempts, open_attempt.id)
        stop = {"end_turn": "endTurn", "stop_sequence": "stopSequence", "max_tokens": "maxTokens"}
        return SamplingResponse(
            message=Message.assistant(response.text),
            model=response.model,
            stop_reason=stop.get(response.stop_reason, response.stop_reason),
        )

    def next_open_attempt(self, model: str, *, streamed: bool) -> OpenAttempt:
        """This session's next model call, to record as open before it is made (see storage.attempts)."""
        from storage.attempts import new_open_attempt

        return new_open_attempt(
            self.user_id,
            self.provider_name,
            model,
            session_id=self.session_id,
            run_id=self.run_id,
            config_id=self.config_id,
            streamed=streamed,
        )

    async def _meter_sampling(self, attempts: list[Attempt], open_attempt: str) -> None:
        from agent.metering import meter

        entries = []
        for attempt in attempts:
            metered = meter(attempt, user_id=self.user_id, session_id=self.session_id, config_ids=self.config_ids)
            entries.append(metered.entry)
            if self._run is not None:  # as for the run's own calls (agent.metering)
                if metered.unknown:
                    self._run.usage_unknown = True
                if metered.counted is not None:
                    self._run.tracker.add_usage(metered.counted, metered.cost)
        with anyio.CancelScope(shield=True):
            # The attempts' rows and the end of the open attempt in one commit (the session's row first if
            # it was not written yet).
            await self.store.record_step(
                self.session_id, (), entries, new_session=self.unsaved_record, close_attempt=open_attempt
            )
            self.unsaved_record = None
