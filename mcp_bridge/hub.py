"""McpHub: every configured MCP server, connected concurrently and kept open.

One :class:`_Connection` per enabled server runs in the hub's task group. It opens the transport (stdio, streamable
HTTP or SSE), negotiates the protocol era (``server/discover`` for 2026-07-28, falling back to the ``initialize``
handshake), lists the tools and then waits until the connection drops. A stdio server that dies, an HTTP server
that goes away and an HTTP session that expires (404) all end in a reconnect with exponential backoff; a server
that never came up is reported once, with the tail of its stderr, and leaves the other servers working.

Tool calls are the hub's main path and stay thin: one ``tools/call`` on the live session, with the per-call
timeout and progress callback handed to the SDK (a timeout or a cancelled caller makes the SDK send
``notifications/cancelled``). The SDK's own ``ClientSession.call_tool`` is not used because it raises on a
structured-content mismatch and lists tools implicitly; routekit notes mismatches in the result instead.

The ``mcp`` SDK is imported lazily (it costs about a second), so ``import mcp_bridge`` stays cheap.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc

from mcp_bridge.callbacks import (
    ElicitationHandler,
    ProgressCallback,
    ProgressEvent,
    SamplingHandler,
    elicitation_request_from_sdk,
    sdk_elicitation_callback,
    sdk_logging_callback,
    sdk_roots_callback,
    sdk_sampling_callback,
)
from mcp_bridge.config import McpConfig, ServerConfig
from mcp_bridge.input_required import drive_input_required
from mcp_bridge.negotiation import negotiate_auto
from mcp_bridge.results import DEFAULT_MAX_RESULT_BYTES, OutputSchema, convert_content, error_result, to_tool_result
from providers.errors import scrub
from providers.types import Message, ResourcePart, ToolAnnotations, ToolResultPart, ToolSpec

if TYPE_CHECKING:
    import mcp_types
    from mcp.client.session import ClientSession

    from mcp_bridge.auth import RedirectHandler, TokenStoreFactory
    from providers.egress import EgressPolicy

__all__ = ["McpHub", "PromptArgumentInfo", "PromptInfo", "PromptResult", "ResourceInfo", "ServerStatus"]

_log = logging.getLogger(__name__)

ServerState = Literal["connecting", "ready", "restarting", "failed", "closed"]

# Environment a stdio server gets from the parent besides its config `env` (and `inherit_env`): enough to find
# programs, a home, a locale, a temp dir and CA certificates; never the parent's credentials.
_SAFE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SYSTEMROOT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
)

_STDERR_KEEP = 16_384
_BACKOFF_FIRST = 0.25
_BACKOFF_CAP = 10.0
_STDERR_GRACE = 0.5


@dataclass(frozen=True)
class ServerStatus:
    name: str
    state: ServerState
    error: str | None = None
    stderr_tail: str = ""
    protocol_version: str | None = None
    server_name: str | None = None
    restarts: int = 0
    tools: int = 0


@dataclass(frozen=True)
class ResourceInfo:
    server: str
    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    media_type: str | None = None


@dataclass(frozen=True)
class PromptArgumentInfo:
    name: str
    description: str | None = None
    required: bool = False


@dataclass(frozen=True)
class PromptInfo:
    server: str
    name: str
    title: str | None = None
    description: str | None = None
    arguments: list[PromptArgumentInfo] = field(default_factory=list)


@dataclass(frozen=True)
class PromptResult:
    description: str | None
    messages: list[Message]


class McpError(RuntimeError):
    """A hub operation other than a tool call failed (server unknown or down, protocol error)."""


# --------------------------------------------------------------------------- helpers


class _StderrTail:
    """The last bytes a stdio server wrote to stderr (bounded)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > 2 * _STDERR_KEEP:
            del self._buf[:-_STDERR_KEEP]

    def clear(self) -> None:
        self._buf.clear()

    def tail(self, limit: int = 2000) -> str:
        return bytes(self._buf[-limit:]).decode("utf-8", "replace").strip()


async def _pump_stderr(fd: int, sink: _StderrTail, done: anyio.Event) -> None:
    """Read a pipe end until EOF without blocking the loop; lines also go to debug logging."""
    os.set_blocking(fd, False)
    try:
        while True:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return
            sink.feed(chunk)
    finally:
        os.close(fd)
        done.set()


class _WatchedReadStream:
    """Forwards the transport's read stream and sets ``dropped`` when it ends (the server went away)."""

    def __init__(self, inner: Any, dropped: anyio.Event) -> None:
        self._inner = inner
        self._dropped = dropped

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._dropped.set()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _describe(exc: BaseException) -> str:
    """A one-line description of a connection failure, unwrapping task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _annotations(tool: Any) -> ToolAnnotations | None:
    ann = tool.annotations
    if ann is None:
        return None
    return ToolAnnotations(
        title=ann.title,
        read_only=ann.read_only_hint,
        destructive=ann.destructive_hint,
        idempotent=ann.idempotent_hint,
        open_world=ann.open_world_hint,
    )


def _retry_safe(tool: Any) -> bool:
    ann = tool.annotations if tool is not None else None
    return bool(ann is not None and (ann.read_only_hint or ann.idempotent_hint))


_call_adapter: Any = None


def _call_result_adapter() -> Any:
    global _call_adapter
    if _call_adapter is None:
        import mcp_types as types
        from pydantic import TypeAdapter

        _call_adapter = TypeAdapter(types.CallToolResult | types.InputRequiredResult)
    return _call_adapter


# --------------------------------------------------------------------------- one server


class _Connection:
    def __init__(self, hub: McpHub, config: ServerConfig) -> None:
        self.hub = hub
        self.config = config
        self.name = config.name
        self.state: ServerState = "connecting"
        self.error: str | None = None
        self.stderr = _StderrTail()
        self.session: ClientSession | None = None
        self.generation = 0
        self.restarts = 0
        self.ever_ready = False
        self.tools: dict[str, Any] = {}  # server tool name -> mcp_types.Tool (after allow/deny)
        self.specs: dict[str, ToolSpec] = {}  # canonical name -> spec
        self.first_done = anyio.Event()
        self._changed = anyio.Event()
        self._dropped = anyio.Event()
        self._closing = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._tools_stale = False
        self._output_schemas: dict[str, OutputSchema] = {}  # server tool name -> its schema and validator
        self._auth: Any = None  # the server's httpx2.Auth, kept across reconnects (it holds tokens and metadata)

    # ----------------------------------------------------------------- state

    def _set_state(self, state: ServerState) -> None:
        self.state = state
        self._changed.set()
        self._changed = anyio.Event()

    def status(self) -> ServerStatus:
        session = self.session
        info = session.server_info if session is not None else None
        return ServerStatus(
            name=self.name,
            state=self.state,
            error=self.error,
            stderr_tail=self.stderr.tail(),
            protocol_version=session.protocol_version if session is not None else None,
            server_name=info.name if info is not None else None,
            restarts=self.restarts,
            tools=len(self.tools),
        )

    def drop(self) -> None:
        """Ask for a reconnect (session expired, connection lost)."""
        self._dropped.set()

    def close(self) -> None:
        self._closing = True
        self._dropped.set()

    def _closing_requested(self) -> bool:
        return self._closing

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        failures = 0
        try:
            while not self._closing:
                became_ready = await self._attempt()
                if self._closing_requested():
                    break
                failures = 0 if became_ready else failures + 1
                if not self.ever_ready or failures >= self.config.max_restarts:
                    self.tools, self.specs = {}, {}
                    self._set_state("failed")
                    _log.warning("MCP server %r is unavailable: %s", self.name, self.error)
                    return
                self._set_state("restarting")
                delay = min(_BACKOFF_FIRST * 2 ** max(failures - 1, 0), _BACKOFF_CAP)
                _log.info("MCP server %r disconnected (%s); reconnecting in %.2fs", self.name, self.error, delay)
                await anyio.sleep(delay)
                self.restarts += 1
                self._set_state("connecting")
        finally:
            self.first_done.set()
            if self.state != "failed":
                self._set_state("closed")

    async def _attempt(self) -> bool:
        self._dropped = anyio.Event()
        became_ready = False
        deadline = anyio.current_time() + self.config.connect_timeout
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                async with AsyncExitStack() as stack:
                    self._tg = await stack.enter_async_context(anyio.create_task_group())
                    stack.callback(self._tg.cancel_scope.cancel)
                    read, write = await self._open_transport(stack)
                    session = await stack.enter_async_context(self._new_session(read, write))
                    await self._negotiate(session)
                    await self._load_tools(session)
                    scope.deadline = math.inf
                    self.session = session
                    self.generation += 1
                    self.ever_ready = became_ready = True
                    self.error = None
                    self._set_state("ready")
                    self.first_done.set()
                    await self._dropped.wait()
                    self.session = None
                    if not self._closing:
                        self.error = "the connection was lost"
            if scope.cancelled_caught and not became_ready:
                self.error = f"did not finish connecting within {self.config.connect_timeout:g}s"
        except Exception as exc:
            self.error = self._failure_text(exc)
        finally:
            self.session = None
            self._tg = None
        if self.error and not became_ready and (tail := self.stderr.tail()):
            self.error += f"; server stderr (last lines): {tail[-1000:]}"
        if self.error:
            self.error = self.scrub(self.error)
        return became_ready

    def scrub(self, text: str) -> str:
        """``text`` without this server's env and header values (each one is a secret)."""
        return scrub(text, self.config.secret_values())

    def _failure_text(self, exc: BaseException) -> str:
        inner = exc
        while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
            inner = inner.exceptions[0]
        if isinstance(inner, FileNotFoundError) and self.config.transport == "stdio":
            return f"cannot start {self.config.command!r}: command not found"
        from mcp.shared.exceptions import MCPError

        if isinstance(inner, MCPError) and inner.code == -32000:
            return "the server closed the connection during startup (it exited or wrote no MCP messages)"
        return _describe(exc)

    def _http_auth(self) -> Any:
        """The OAuth ``httpx2.Auth`` for a remote server with an ``auth`` section (built once, then reused)."""
        cfg = self.config
        if cfg.auth is None or cfg.url is None:
            return None
        if self._auth is None:
            from mcp_bridge.auth import build_auth

            hub = self.hub
            store = hub.token_store(self.name) if hub.token_store is not None else None
            self._auth = build_auth(cfg.auth, cfg.url, store=store, redirect_handler=hub.redirect_handler)
        return self._auth

    async def _open_transport(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        cfg = self.config
        if cfg.transport == "stdio":
            read, write = await self._open_stdio(stack)
        elif cfg.transport == "http":
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            client = await stack.enter_async_context(
                self._http_client(
                    headers=cfg.header_values(),
                    auth=self._http_auth(),
                    timeout=httpx2.Timeout(cfg.connect_timeout, read=max(300.0, cfg.call_timeout or 0)),
                )
            )
            assert cfg.url is not None
            read, write = await stack.enter_async_context(streamable_http_client(cfg.url, http_client=client))
        else:
            from mcp.client.sse import sse_client

            assert cfg.url is not None
            options: dict[str, Any] = {
                "headers": cfg.header_values(),
                "timeout": cfg.connect_timeout,
                "sse_read_timeout": max(300.0, cfg.call_timeout or 0),
                "auth": self._http_auth(),
            }
            if self.name in self.hub.egress:
                options["httpx_client_factory"] = self._http_client
            read, write = await stack.enter_async_context(sse_client(cfg.url, **options))
        return _WatchedReadStream(read, self._dropped), write

    def _http_client(self, headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None) -> Any:
        """The ``httpx2.AsyncClient`` for this server (the shape of the mcp SDK's client factories). Under the
        hub's egress policy for this server: on the guarded aiohttp session, no redirects."""
        import httpx2

        policy = self.hub.egress.get(self.name)
        if policy is None:
            return httpx2.AsyncClient(headers=headers, auth=auth, timeout=timeout)
        from httpx_aiohttp.httpx2 import AiohttpTransport

        from providers.egress import guarded_session

        what = f"MCP server {self.name!r}"
        transport = AiohttpTransport(client=lambda: guarded_session(policy, what=what))
        return httpx2.AsyncClient(
            headers=headers, auth=auth, timeout=timeout, transport=transport, follow_redirects=False
        )

    async def _open_stdio(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        cfg = self.config
        assert cfg.command is not None
        assert self._tg is not None
        if cfg.cwd is not None and not await anyio.Path(cfg.cwd).is_dir():
            raise FileNotFoundError(f"working directory {cfg.cwd!r} does not exist")
        env = {key: os.environ[key] for key in (*_SAFE_ENV, *cfg.inherit_env) if key in os.environ}
        env.update(cfg.env_values())
        self.stderr.clear()
        read_fd, write_fd = os.pipe()
        errlog = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        stderr_done = anyio.Event()
        self._tg.start_soon(_pump_stderr, read_fd, self.stderr, stderr_done)

        async def settle_stderr() -> None:
            # After the process is gone its stderr reaches EOF; a surviving grandchild holding the pipe must not
            # keep us waiting, so the wait is bounded (the task group's cancel then stops the pump).
            with anyio.move_on_after(_STDERR_GRACE, shield=True):
                await stderr_done.wait()

        stack.push_async_callback(settle_stderr)
        params = StdioServerParameters(command=cfg.command, args=cfg.args, env=env, cwd=cfg.cwd)
        try:
            streams = await stack.enter_async_context(stdio_client(params, errlog=errlog))
        finally:
            errlog.close()  # the child has its own copy; ours must go so the pump sees EOF when it exits
        return streams

    def _new_session(self, read: Any, write: Any) -> ClientSession:
        import mcp_types as types
        from mcp.client.session import ClientSession

        hub = self.hub
        return ClientSession(
            read,
            write,
            sampling_callback=sdk_sampling_callback(self.name, hub.sampling) if hub.sampling else None,
            elicitation_callback=sdk_elicitation_callback(self.name, hub.elicitation) if hub.elicitation else None,
            list_roots_callback=sdk_roots_callback(self.config.roots) if self.config.roots else None,
            logging_callback=sdk_logging_callback(self.name),
            message_handler=self._on_message,
            client_info=types.Implementation(name=hub.client_name, version=hub.client_version),
        )

    async def _negotiate(self, session: ClientSession) -> None:
        protocol = self.config.protocol
        if protocol == "legacy":
            await session.initialize()
        elif protocol == "auto":
            await negotiate_auto(session)
        else:
            await session.discover()

    async def _load_tools(self, session: ClientSession) -> None:
        import mcp_types as types

        tools: dict[str, Any] = {}
        caps = session.server_capabilities
        if caps is None or caps.tools is not None:
            cursor: str | None = None
            for _ in range(100):  # a paginator that never ends must not hang the connection
                page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
                for tool in page.tools:
                    if self.config.tool_allowed(tool.name):
                        tools[tool.name] = tool
                cursor = page.next_cursor
                if not cursor:
                    break
        self._tools_stale = False
        self.tools = tools
        self.specs = {f"{self.name}.{tool.name}": self._spec(tool) for tool in tools.values()}
        self.hub._tools_changed()

    def _spec(self, tool: Any) -> ToolSpec:
        annotations = _annotations(tool)
        return ToolSpec(
            name=f"{self.name}.{tool.name}",
            description=tool.description or "",
            input_schema=tool.input_schema,
            output_schema=tool.output_schema,
            annotations=annotations,
            title=tool.title or (annotations.title if annotations else None),
            origin=self.name,
        )

    async def refresh_tools(self) -> None:
        session = self.session
        if session is None:
            return
        try:
            await self._load_tools(session)
        except Exception as exc:
            _log.warning("re-listing the tools of MCP server %r failed: %s", self.name, _describe(exc))

    async def _on_message(self, message: Any) -> None:
        import mcp_types as types

        if isinstance(message, Exception):
            _log.warning("MCP server %r sent something that is not an MCP message: %s", self.name, _describe(message))
            return
        if isinstance(message, types.ToolListChangedNotification):
            self._tools_stale = True
            if self._tg is not None:
                self._tg.start_soon(self.refresh_tools)
        elif isinstance(message, types.ResourceListChangedNotification | types.PromptListChangedNotification):
            self.hub._notify_listeners(self.name, message.method)

    # ----------------------------------------------------------------- calls

    async def wait_session(self, after_generation: int, timeout: float) -> ClientSession | None:  # noqa: ASYNC109 - a per-call budget handed to the SDK
        """The live session of a generation newer than ``after_generation``; None if the server is down."""
        session = self.session
        if self.state == "ready" and session is not None and self.generation > after_generation:
            return session  # the common case, without the cost of a cancel scope on every call
        with anyio.move_on_after(timeout):
            while True:
                session = self.session
                if self.state == "ready" and session is not None and self.generation > after_generation:
                    return session
                if self.state in ("failed", "closed"):
                    return None
                await self._changed.wait()
        return None

    def _down_text(self) -> str:
        return f"MCP server {self.name!r} is not available ({self.state}): {self.error or 'not connected'}"

    async def call(
        self,
        tool_name: str,
        arguments: dict[str, Any],
        *,
        call_id: str,
        canonical: str,
        timeout: float | None,  # noqa: ASYNC109 - a per-call budget handed to the SDK
        on_progress: ProgressCallback | None,
    ) -> ToolResultPart:
        from mcp.shared.exceptions import MCPError

        retried = False
        after = 0
        wait = self.config.connect_timeout + _BACKOFF_CAP
        while True:
            session = await self.wait_session(after, wait)
            if session is None:
                return error_result(call_id, canonical, self._down_text())
            if self._tools_stale or tool_name not in self.tools:
                await self.refresh_tools()
            tool = self.tools.get(tool_name)
            if tool is None:
                return error_result(call_id, canonical, f"tool {canonical!r} does not exist or is not allowed")
            generation = self.generation
            try:
                result = await self._send_call(session, tool_name, arguments, timeout, canonical, on_progress)
            except MCPError as exc:
                # Streamable HTTP answers an unknown or expired session id with 404 ("Session terminated" from the
                # SDK's transport, or the server's own JSON-RPC error body such as "Session not found").
                expired = self.config.transport == "http" and exc.code == -32600 and "session" in exc.message.lower()
                lost = exc.code == -32000
                if expired or lost:
                    if self.generation == generation:
                        self.drop()
                    # An expired session never ran the call; a lost connection may have, so only hinted-safe tools.
                    if not retried and (expired or _retry_safe(tool)):
                        retried, after = True, generation
                        continue
                    return error_result(call_id, canonical, self._lost_text(canonical, tool, retried))
                if exc.code == -32001:
                    return error_result(
                        call_id, canonical, f"tool {canonical!r} timed out after {timeout:g}s; the call was cancelled"
                    )
                if exc.code == -32042 and not retried and await self._url_elicitation(exc):
                    retried, after = True, generation - 1
                    continue
                if exc.code == -32020 and not retried:  # HEADER_MISMATCH: our listing is stale; re-list, resend
                    await self.refresh_tools()
                    retried, after = True, generation - 1
                    continue
                return error_result(
                    call_id,
                    canonical,
                    f"MCP server {self.name!r} rejected the call to {canonical!r}: {exc.message} (code {exc.code})",
                )
            except Exception as exc:
                return error_result(call_id, canonical, self.scrub(f"calling {canonical!r} failed: {_describe(exc)}"))
            return to_tool_result(
                result,
                call_id=call_id,
                name=canonical,
                output_schema=self._output_schema(tool),
                max_bytes=self.hub.max_result_bytes,
            )

    def _output_schema(self, tool: Any) -> OutputSchema | None:
        """The tool's output schema with its compiled validator, made again when a new listing brought a new
        schema object."""
        schema = tool.output_schema
        if schema is None:
            return None
        known = self._output_schemas.get(tool.name)
        if known is None or known.schema is not schema:
            known = self._output_schemas[tool.name] = OutputSchema(schema)
        return known

    def _lost_text(self, canonical: str, tool: Any, retried: bool) -> str:
        if retried:
            return f"the connection to MCP server {self.name!r} was lost again while {canonical!r} ran (retried once)"
        return (
            f"the connection to MCP server {self.name!r} was lost while {canonical!r} ran; the call was not retried "
            "because the tool is not marked read-only or idempotent, so it may or may not have taken effect"
        )

    async def _send_call(
        self,
        session: ClientSession,
        tool_name: str,
        arguments: dict[str, Any],
        timeout: float | None,  # noqa: ASYNC109 - a per-call budget handed to the SDK
        canonical: str,
        on_progress: ProgressCallback | None,
    ) -> mcp_types.CallToolResult:
        import mcp_types as types

        progress: Any = None
        if on_progress is not None:
            callback = on_progress

            async def progress(value: float, total: float | None, message: str | None) -> None:
                await callback(ProgressEvent(tool=canonical, progress=value, total=total, message=message))

        async def send(responses: Any, state: str | None) -> Any:
            request = types.CallToolRequest(
                params=types.CallToolRequestParams(
                    name=tool_name, arguments=arguments, input_responses=responses, request_state=state
                )
            )
            return await session.send_request(
                request, _call_result_adapter(), request_read_timeout_seconds=timeout, progress_callback=progress
            )

        result = await send(None, None)
        if isinstance(result, types.InputRequiredResult):
            result = await drive_input_required(session, result, send)
        assert isinstance(result, types.CallToolResult)
        return result

    async def _url_elicitation(self, exc: Any) -> bool:
        """-32042: the server needs URL elicitations completed first. True when all were accepted."""
        import mcp_types as types

        handler = self.hub.elicitation
        if handler is None:
            return False
        try:
            data = types.ElicitationRequiredErrorData.model_validate(exc.data)
        except Exception:
            return False
        for params in data.elicitations:
            response = await handler(elicitation_request_from_sdk(self.name, params))
            if response.action != "accept":
                return False
        return True


# --------------------------------------------------------------------------- the hub


class McpHub:
    """All configured MCP servers behind canonical tool names ``server.tool``.

    Use as ``async with McpHub(config, sampling=..., elicitation=...) as hub:``. Entering waits until every
    enabled server is connected or has failed (see :meth:`status`); failed servers do not stop the others.

    Remote servers with an ``auth`` section authorize with OAuth (:mod:`mcp_bridge.auth`): ``token_store`` builds
    each server's token store from its name (default: in memory), ``redirect_handler`` takes the user through an
    authorization-code login (default: :class:`~mcp_bridge.auth.HeadlessRedirectHandler`).

    ``egress`` maps server names to an :class:`~providers.egress.EgressPolicy`: those servers' HTTP clients
    connect only to addresses the policy checked (pinned), follow no redirects and use no proxy from the
    environment (see :mod:`providers.egress`).
    """

    def __init__(
        self,
        config: McpConfig | Mapping[str, ServerConfig],
        *,
        sampling: SamplingHandler | None = None,
        elicitation: ElicitationHandler | None = None,
        client_name: str = "routekit",
        client_version: str = "0.1.0",
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        token_store: TokenStoreFactory | None = None,
        redirect_handler: RedirectHandler | None = None,
        egress: Mapping[str, EgressPolicy] | None = None,
    ) -> None:
        self.config = config if isinstance(config, McpConfig) else McpConfig(servers=dict(config))
        # Remote servers named here connect only where their policy allows (users' servers in the service).
        self.egress = dict(egress or {})
        self.sampling = sampling
        self.elicitation = elicitation
        self.client_name = client_name
        self.client_version = client_version
        self.max_result_bytes = max_result_bytes
        self.token_store = token_store
        self.redirect_handler = redirect_handler
        self._connections: dict[str, _Connection] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._listeners: list[Callable[[str, str], None]] = []
        self.tools_version = 0

    async def __aenter__(self) -> McpHub:
        tg = self._tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            for name, server in self.config.enabled.items():
                connection = _Connection(self, server)
                self._connections[name] = connection
                tg.start_soon(connection.run, name=f"mcp-server-{name}")
            for connection in self._connections.values():
                await connection.first_done.wait()
        except BaseException as exc:
            # A cancelled open (its caller went away, a deadline) closes what it started: leaving the task group
            # cancels every connection still starting, and the SDK's transport stops its server process.
            for connection in self._connections.values():
                connection.close()
            self._tg = None
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        for connection in self._connections.values():
            connection.close()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None

    # ----------------------------------------------------------------- status and events

    def status(self) -> dict[str, ServerStatus]:
        return {name: connection.status() for name, connection in self._connections.items()}

    def on_change(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(server, method)`` on ``notifications/{tools,resources,prompts}/list_changed``."""
        self._listeners.append(listener)

    def _tools_changed(self) -> None:
        self.tools_version += 1

    def _notify_listeners(self, server: str, method: str) -> None:
        for listener in self._listeners:
            try:
                listener(server, method)
            except Exception:
                _log.exception("MCP change listener failed")

    async def reconnect(self, server: str) -> None:
        """Drop and re-open one server's connection (also revives a failed server)."""
        connection = self._connection(server)
        if connection.state == "failed" and self._tg is not None:
            replacement = _Connection(self, connection.config)
            self._connections[server] = replacement
            self._tg.start_soon(replacement.run)
            await replacement.first_done.wait()
        else:
            connection.drop()

    def _connection(self, server: str) -> _Connection:
        try:
            return self._connections[server]
        except KeyError:
            known = ", ".join(sorted(self._connections)) or "none"
            raise McpError(f"no enabled MCP server named {server!r} (configured: {known})") from None

    # ----------------------------------------------------------------- tools

    def tools(self) -> list[ToolSpec]:
        """The cached tool list of every connected server."""
        return [spec for connection in self._connections.values() for spec in connection.specs.values()]

    async def list_tools(self) -> list[ToolSpec]:
        """The tool list, re-listing any server that announced a change since the last listing."""
        stale = [c for c in self._connections.values() if c._tools_stale and c.session is not None]
        if stale:
            async with anyio.create_task_group() as tg:
                for connection in stale:
                    tg.start_soon(connection.refresh_tools)
        return self.tools()

    def tool(self, name: str) -> ToolSpec | None:
        server, _, _tool = name.partition(".")
        connection = self._connections.get(server)
        return connection.specs.get(name) if connection is not None else None

    def is_auto_approved(self, name: str) -> bool:
        """Whether the config lets calls to this canonical tool run without asking the user."""
        server, _, tool = name.partition(".")
        connection = self._connections.get(server)
        return connection is not None and bool(tool) and connection.config.auto_approved(tool)

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a per-call budget handed to the SDK
        on_progress: ProgressCallback | None = None,
        call_id: str | None = None,
    ) -> ToolResultPart:
        """Call ``server.tool``. Failures (unknown tool, timeout, lost server, protocol errors) come back as
        ``is_error`` results the model can read, never as exceptions. ``timeout`` defaults to the server's
        ``call_timeout``; cancelling the caller cancels the call on the server too."""
        call_id = call_id or f"call_{uuid.uuid4().hex[:16]}"
        server, _, tool = name.partition(".")
        connection = self._connections.get(server)
        if connection is None or not tool:
            return error_result(call_id, name, f"unknown tool {name!r}: tools are named 'server.tool'")
        effective = timeout if timeout is not None else connection.config.call_timeout
        return await connection.call(
            tool, arguments or {}, call_id=call_id, canonical=name, timeout=effective, on_progress=on_progress
        )

    # ----------------------------------------------------------------- resources and prompts

    async def _session(self, server: str) -> tuple[_Connection, ClientSession]:
        connection = self._connection(server)
        session = await connection.wait_session(0, connection.config.connect_timeout)
        if session is None:
            raise McpError(connection._down_text())
        return connection, session

    async def list_resources(self, server: str | None = None) -> list[ResourceInfo]:
        out: list[ResourceInfo] = []
        for name in [server] if server else list(self._connections):
            connection = self._connection(name)
            if server is None and connection.session is None:
                continue
            _, session = await self._session(name)
            caps = session.server_capabilities
            if caps is not None and caps.resources is None:
                continue
            cursor: str | None = None
            for _ in range(100):
                page = await _paged(session.list_resources, cursor)
                out.extend(
                    ResourceInfo(
                        server=name,
                        uri=str(r.uri),
                        name=r.name,
                        title=r.title,
                        description=r.description,
                        media_type=r.mime_type,
                    )
                    for r in page.resources
                )
                cursor = page.next_cursor
                if not cursor:
                    break
        return out

    async def read_resource(self, server: str, uri: str) -> list[ResourcePart]:
        import mcp_types as types

        _, session = await self._session(server)
        result: Any = await session.read_resource(uri, allow_input_required=True)
        if isinstance(result, types.InputRequiredResult):

            async def retry(responses: Any, state: str | None) -> Any:
                return await session.read_resource(
                    uri, input_responses=responses, request_state=state, allow_input_required=True
                )

            result = await drive_input_required(session, result, retry)
        parts = convert_content([types.EmbeddedResource(resource=c) for c in result.contents])
        return [p for p in parts if isinstance(p, ResourcePart)]

    async def list_prompts(self, server: str | None = None) -> list[PromptInfo]:
        out: list[PromptInfo] = []
        for name in [server] if server else list(self._connections):
            connection = self._connection(name)
            if server is None and connection.session is None:
                continue
            _, session = await self._session(name)
            caps = session.server_capabilities
            if caps is not None and caps.prompts is None:
                continue
            cursor: str | None = None
            for _ in range(100):
                page = await _paged(session.list_prompts, cursor)
                out.extend(
                    PromptInfo(
                        server=name,
                        name=p.name,
                        title=p.title,
                        description=p.description,
                        arguments=[
                            PromptArgumentInfo(name=a.name, description=a.description, required=bool(a.required))
                            for a in p.arguments or []
                        ],
                    )
                    for p in page.prompts
                )
                cursor = page.next_cursor
                if not cursor:
                    break
        return out

    async def get_prompt(self, server: str, name: str, arguments: dict[str, str] | None = None) -> PromptResult:
        import mcp_types as types

        _, session = await self._session(server)
        result: Any = await session.get_prompt(name, arguments, allow_input_required=True)
        if isinstance(result, types.InputRequiredResult):

            async def retry(responses: Any, state: str | None) -> Any:
                return await session.get_prompt(
                    name, arguments, input_responses=responses, request_state=state, allow_input_required=True
                )

            result = await drive_input_required(session, result, retry)
        messages = [
            Message(role="assistant" if m.role == "assistant" else "user", parts=list(convert_content([m.content])))
            for m in result.messages
        ]
        return PromptResult(description=result.description, messages=messages)


async def _paged(method: Callable[..., Awaitable[Any]], cursor: str | None) -> Any:
    import mcp_types as types

    return await method(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
