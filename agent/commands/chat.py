"""``routekit chat``: an interactive, streaming conversation with tools, approvals and switches.

The conversation is a stored :class:`agent.Session` of the CLI's local user, so it can be resumed by id
(``--resume``). The MCP servers are those of ``routekit mcp list``, kept open for the whole chat;
``/provider`` reopens the session on another provider config (same history, same servers).
Input is read off the event loop (a worker thread), so spinners keep turning while the user types.
"""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import click

from agent.commands._common import (
    EXIT_LIMIT,
    EXIT_OK,
    EXIT_PROVIDER,
    EXIT_USAGE,
    CommandFailed,
    console,
    first_undecodable,
    local_user,
    opened_store,
    run_async,
)

if TYPE_CHECKING:
    from agent.approval import ApprovalDecision, ApprovalRequest
    from agent.session import Session
    from storage import SQLStore

_HELP = """commands:
  /model NAME        use another model from now on
  /provider NAME|ID  switch to another provider (a provider name, or a config id/label from `routekit config list`)
  /session           show this conversation's id (resume it with `routekit chat --resume ID`)
  /help              this text
  /exit              leave (Ctrl-D works too)"""


@click.command("chat")
@click.option("--provider", "-p", help="Provider name or stored config id/label (default: your default config).")
@click.option("--model", "-m", help="Model (default: the config's default model).")
@click.option("--resume", "resume_id", metavar="SESSION_ID", help="Continue a stored conversation.")
@click.option("--system", "system_prompt", help="System prompt for a new conversation.")
@click.option("--no-mcp", is_flag=True, help="Do not start the configured MCP servers.")
@click.option("--yes", "auto_approve", is_flag=True, help="Run every tool call without asking.")
def chat(
    provider: str | None,
    model: str | None,
    resume_id: str | None,
    system_prompt: str | None,
    no_mcp: bool,
    auto_approve: bool,
) -> None:
    """Chat with a model, with your MCP tools; answers stream, tool calls ask for approval.

    Type /help inside the chat for /model, /provider, /session and /exit. Exit code 3 when the last
    turn failed with a provider error, 4 when it stopped at a limit.

    \b
    Examples:
      routekit chat
      routekit chat --provider openai --model gpt-4.1-mini
      routekit chat --resume 5f0c2a9e41b34c6f9d2b8e7a1c3d5f70
      echo "What time is it in Tokyo?" | routekit chat --yes
    """
    code = run_async(_chat, provider, model, resume_id, system_prompt, no_mcp, auto_approve)
    sys.exit(code)


class _Terminal:
    """Output for one chat: streamed text, a spinner while tools run, and questions to the user."""

    def __init__(self) -> None:
        self.out = console()
        self.err = console(stderr=True)
        self.interactive = sys.stdin.isatty() and sys.stdout.isatty()
        self._status: Any = None
        self._mid_line = False

    async def read(self, prompt: str) -> str | None:
        """One line from the user, or None at end of input."""
        self.stop_spinner()
        self.end_line()

        def read_line() -> str | None:
            if self.interactive:
                try:
                    return input(prompt)
                except EOFError:
                    return None
            line = sys.stdin.readline()
            return None if line == "" else line.rstrip("\n")

        return await anyio.to_thread.run_sync(read_line)

    def text(self, chunk: str) -> None:
        self.stop_spinner()
        sys.stdout.write(chunk)
        sys.stdout.flush()
        self._mid_line = not chunk.endswith("\n")

    def end_line(self) -> None:
        if self._mid_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._mid_line = False

    def note(self, message: str, style: str = "dim") -> None:
        self.stop_spinner()
        self.end_line()
        self.out.print(message, style=style, markup=False)

    def spinner(self, message: str, *, when_piped: bool = True) -> None:
        if not self.interactive:
            if when_piped:
                self.note(message)
            return
        if self._status is None:
            self.end_line()
            self._status = self.out.status(message, spinner="dots")
            self._status.start()
        else:
            self._status.update(message)

    def stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


async def _chat(
    provider: str | None,
    model: str | None,
    resume_id: str | None,
    system_prompt: str | None,
    no_mcp: bool,
    auto_approve: bool,
) -> int:
    from agent.approval import ApprovalPolicy

    term = _Terminal()
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(opened_store())
        user = await local_user(store)
        hub = None if no_mcp else await _open_hub(stack, store, user.id, term)

        async def ask(request: ApprovalRequest) -> ApprovalDecision:
            return await _ask_approval(term, request)

        policy = ApprovalPolicy.auto_all() if auto_approve else ApprovalPolicy(callback=ask)
        chosen = provider or (None if resume_id else await _default_provider(store, user.id))
        session = await _open_session(store, user.id, chosen, model, resume_id, system_prompt, hub, policy)
        stack.push_async_callback(lambda: session.aclose())
        term.note(
            f"routekit chat · {session.provider_name} · {session.model_name} · session {session.session_id}"
            " · /help for commands"
        )
        if resume_id:
            _show_history(term, session)
        code = EXIT_OK
        while True:
            line = await term.read("you> ")
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            if first_undecodable([line]) is not None:
                term.note("routekit: that line is not valid UTF-8 text; nothing was sent", style="red")
                code = EXIT_USAGE
                continue
            if line.startswith("/"):
                action = await _command(term, line, session, store, user.id, hub, policy)
                if action == "exit":
                    break
                if action is not None and not isinstance(action, str):
                    await session.aclose()
                    session = action
                continue
            code = await _turn(term, session, line)
        term.note(f"session {session.session_id} · resume with: routekit chat --resume {session.session_id}")
        return code


async def _open_hub(stack: AsyncExitStack, store: SQLStore, user_id: str, term: _Terminal) -> Any:
    from agent.commands.mcp import load_servers
    from agent.session import SamplingRouter
    from mcp_bridge import McpConfig, McpHub

    servers, problems = await load_servers(store, user_id)
    for name, problem in problems.items():
        term.note(f"MCP server {name} skipped: {problem}", style="yellow")
    if not servers:
        return None
    term.spinner(f"starting MCP servers: {', '.join(servers)}")
    router = SamplingRouter()
    hub = await stack.enter_async_context(
        McpHub(McpConfig(servers=servers), sampling=router, elicitation=router.elicit)
    )
    term.stop_spinner()
    for name, status in hub.status().items():
        if status.state != "ready":
            term.note(f"MCP server {name} did not start: {status.error}", style="yellow")
    return hub


async def _default_provider(store: SQLStore, user_id: str) -> str:
    """The user's default stored config (the first provider that has one), else a provider with a key set."""
    from agent.cli import _detect_provider

    for record in await store.provider_configs.list(user_id):
        if record.is_default and record.status == "ok":
            return record.id
    detected = _detect_provider()
    if detected is None:
        raise CommandFailed(
            "no provider configured: add a key with `routekit config add --provider NAME`, or pass --provider"
        )
    return detected


async def _open_session(
    store: SQLStore,
    user_id: str,
    provider: str | None,
    model: str | None,
    session_id: str | None,
    system_prompt: str | None,
    hub: Any,
    policy: Any,
) -> Session:
    from agent.session import Session
    from storage import NotFound

    if provider is not None and session_id is None:
        provider = await _config_ref(store, user_id, provider)
    try:
        return await Session.open(
            provider=provider,
            model=model,
            store=store,
            user=user_id,
            session_id=session_id,
            system=system_prompt,
            hub=hub,
            approval=policy,
        )
    except NotFound as exc:
        raise CommandFailed(f"{exc}: `routekit chat` prints the id to resume at the end of a chat") from None


async def _config_ref(store: SQLStore, user_id: str, ref: str) -> str:
    """A stored config id for a label or id prefix; otherwise ``ref`` unchanged (a provider name)."""
    for record in await store.provider_configs.list(user_id):
        if ref in (record.id, record.label) or (len(ref) >= 4 and record.id.startswith(ref)):
            return record.id
    return ref


async def _default_model(store: SQLStore, user_id: str, ref: str) -> str | None:
    """The model a switch to ``ref`` starts with: the config's default, else the provider's suggestion."""
    from providers.errors import ConfigError
    from providers.profiles import get_profile

    for record in await store.provider_configs.list(user_id):
        if record.id == ref:
            return record.default_model or get_profile(record.provider).suggested_model
    try:
        return get_profile(ref).suggested_model
    except ConfigError:
        return None


def _show_history(term: _Terminal, session: Session) -> None:
    shown = [m for m in session.history if m.role in ("user", "assistant") and m.text.strip()][-10:]
    for message in shown:
        who = "you" if message.role == "user" else "assistant"
        term.note(f"{who}> {message.text.strip()}", style="dim")


async def _command(
    term: _Terminal, line: str, session: Session, store: SQLStore, user_id: str, hub: Any, policy: Any
) -> Session | str | None:
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/exit", "/quit"):
        return "exit"
    if name == "/help":
        term.note(_HELP, style="")
    elif name == "/session":
        term.note(f"session {session.session_id} ({session.provider_name}, {session.model_name})", style="")
    elif name == "/model":
        if not arg:
            term.note(f"model: {session.model_name} (give a name to switch)", style="")
        else:
            session.model_name = arg
            term.note(f"model is now {arg}", style="green")
    elif name == "/provider":
        if not arg:
            term.note(f"provider: {session.provider_name} (give a name or config id to switch)", style="")
            return None
        from providers.errors import ConfigError

        try:
            ref = await _config_ref(store, user_id, arg)
            model = await _default_model(store, user_id, ref)
            new = await _open_session(store, user_id, ref, model, session.session_id, None, hub, policy)
        except (ConfigError, CommandFailed) as exc:
            term.note(f"cannot switch to {arg}: {getattr(exc, 'message', exc)}", style="red")
            return None
        # Reopening with the stored session id keeps the history; the old session's adapters are closed.
        new_session: Session = new
        term.note(f"provider is now {new_session.provider_name} ({new_session.model_name})", style="green")
        return new_session
    else:
        term.note(f"unknown command {name}; /help lists them", style="yellow")
    return None


async def _turn(term: _Terminal, session: Session, prompt: str) -> int:
    """Stream one run; returns the exit code this turn would give (0, 3 provider error, 4 limit)."""
    from agent.events import (
        ApprovalRequested,
        RetryScheduled,
        RunError,
        RunFinished,
        TextChunk,
        ToolCallFinished,
        ToolCallStarted,
        ToolProgress,
    )
    from providers.errors import ConfigError, ProviderError

    code = EXIT_OK
    try:
        term.spinner("thinking…", when_piped=False)
        async for event in session.stream(prompt, model=session.model_name):
            if isinstance(event, TextChunk):
                term.text(event.text)
            elif isinstance(event, ToolCallStarted):
                term.note(f"⚙ {event.name}({_short(event.arguments)})", style="cyan")
                term.spinner(f"running {event.name}…", when_piped=False)
            elif isinstance(event, ToolProgress):
                total = f"/{event.total:g}" if event.total else ""
                term.spinner(f"{event.name}: {event.progress:g}{total} {event.message or ''}".rstrip())
            elif isinstance(event, ToolCallFinished):
                mark = "✗" if event.is_error else "✓"
                state = "" if event.executed else " (not run)"
                term.note(f"{mark} {event.name}{state} in {event.duration:.2f}s: {_short(event.result_text)}")
                term.spinner("thinking…", when_piped=False)
            elif isinstance(event, ApprovalRequested):
                term.stop_spinner()
            elif isinstance(event, RetryScheduled):
                term.spinner(f"{event.provider} failed ({event.error[:80]}); retrying in {event.delay:.1f}s")
            elif isinstance(event, RunError):
                term.stop_spinner()
            elif isinstance(event, RunFinished):
                term.stop_spinner()
                term.end_line()
                result = event.result
                if result.limit_reached:
                    term.note(f"stopped: {result.detail or result.stop_reason}", style="yellow")
                    code = EXIT_LIMIT
                cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
                tokens = f"{_num(result.usage.input_tokens)} in / {_num(result.usage.output_tokens)} out"
                term.note(f"[{result.model} · {tokens} · {cost}]")
    except ProviderError as exc:
        term.note(f"provider error: {exc}", style="red")
        return EXIT_PROVIDER
    except ConfigError as exc:
        term.note(f"configuration error: {exc}", style="red")
        return EXIT_USAGE
    finally:
        term.stop_spinner()
        term.end_line()
    return code


async def _ask_approval(term: _Terminal, request: ApprovalRequest) -> ApprovalDecision:
    from agent.approval import Approve, Deny

    what = "sampling request from MCP server" if request.kind == "sampling" else "tool call"
    term.note(f"? {what} {request.name}({_short(request.arguments, 400)})", style="bold yellow")
    if request.reason:
        term.note(f"  asked because {request.reason}")
    while True:
        answer = await term.read("  allow? [y]es / [n]o: ")
        if answer is None:
            return Deny("no answer (end of input)")
        choice = answer.strip().lower()
        if choice in ("y", "yes"):
            return Approve()
        if choice in ("n", "no", ""):
            return Deny("the user denied this call")


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
