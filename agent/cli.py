"""The ``routekit`` command.

``routekit run`` drives the agent runtime (:mod:`agent.session`): MCP tools, storage, limits, approvals.

Exit codes: 0 success, 2 usage or configuration error, 3 provider error, 4 a limit was reached.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NamedTuple, NoReturn

import anyio
import click

from agent.commands._common import FiniteFloat, RoutekitGroup, error_text, remember_json

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_LIMIT = 4

# Checked in this order when --provider is not given: the first variable that is set wins.
_AUTODETECT = ("anthropic", "openai", "gemini", "openrouter", "groq", "mistral", "deepseek", "together")


def _detect_provider() -> str | None:
    from providers.profiles import PROFILES

    for name in _AUTODETECT:
        env = PROFILES[name].api_key_env
        if env and os.environ.get(env):
            return name
    return None


@click.group(cls=RoutekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="routekit")
def main() -> None:
    """routekit: an MCP-aware agent runtime with tool calling.

    \b
    Examples:
      routekit run "What is the capital of France?"
      routekit run "Summarize README.md" --provider openai --model gpt-4.1-mini
      routekit providers
    """


@main.command()
@click.argument("prompt")
@click.option("--provider", "-p", help="Provider or preset (see `routekit providers`). Default: detected from keys.")
@click.option("--model", "-m", help="Model name. Default: the provider's suggested model.")
@click.option("--base-url", help="Endpoint override (OpenAI-compatible servers, proxies, Ollama host).")
@click.option("--api-key-env", help="Environment variable holding the API key (default: the provider's usual one).")
@click.option(
    "--mcp-config",
    type=click.Path(dir_okay=False, path_type=str),
    help="MCP servers JSON file (the usual mcpServers format) whose tools the model may call.",
)
@click.option("--system", "system_prompt", help="System prompt.")
@click.option("--max-turns", type=click.IntRange(min=1), help="Maximum model calls in this run (default 25).")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Maximum output tokens.")
@click.option("--temperature", type=FiniteFloat(0.0, 2.0), help="Sampling temperature (0 to 2).")
@click.option(
    "--json", "as_json", is_flag=True, callback=remember_json, help="Print one JSON object instead of streaming text."
)
def run(
    prompt: str,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    api_key_env: str | None,
    mcp_config: str | None,
    system_prompt: str | None,
    max_turns: int | None,
    max_tokens: int | None,
    temperature: float | None,
    as_json: bool,
) -> None:
    """Run PROMPT through the agent: the model may call MCP tools until it has an answer.

    The answer streams to stdout; tool activity goes to stderr. The session is stored (under
    $ROUTEKIT_HOME) with its usage and cost.

    \b
    Examples:
      ANTHROPIC_API_KEY=... routekit run "Hello"
      routekit run "What time is it in Tokyo?" --mcp-config mcp.json
      routekit run "Hello" --provider ollama --model llama3.1
      routekit run "Hello" --provider openai-compatible --base-url http://127.0.0.1:8000/v1 --model my-model
      routekit run "Hello" --json

    \b
    Exit codes: 0 answered, 2 usage or configuration error, 3 provider error, 4 a limit was reached.
    """
    from pydantic import ValidationError

    from providers.base import ProviderConfig
    from providers.errors import ConfigError
    from providers.profiles import get_profile

    chosen = provider or _detect_provider()
    if chosen is None:
        _fail(
            "no provider configured: set one of ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY "
            "(or another provider's key), or pass --provider (e.g. --provider ollama for a local model). "
            "`routekit providers` lists them all.",
            EXIT_USAGE,
            as_json=as_json,
        )
    try:
        get_profile(chosen)  # a clean "unknown provider" error listing the valid names
        config = ProviderConfig(provider=chosen, base_url=base_url, api_key_env=api_key_env)
        config.resolve_api_key()
        resolved_model = config.resolve_model(model)
    except (ConfigError, ValidationError) as exc:
        _fail(error_text(exc), EXIT_USAGE, as_json=as_json)
    options = _RunOptions(system_prompt, max_tokens, temperature, as_json, mcp_config, max_turns)
    code = anyio.run(_run_once, config, resolved_model, prompt, options)
    sys.exit(code)


class _RunOptions(NamedTuple):
    system_prompt: str | None
    max_tokens: int | None
    temperature: float | None
    as_json: bool
    mcp_config: str | None
    max_turns: int | None


async def _run_once(config: Any, model: str, prompt: str, options: _RunOptions) -> int:
    from rich.console import Console

    from agent.approval import ApprovalPolicy
    from agent.limits import Limits
    from agent.session import Session
    from providers.errors import ConfigError, ProviderError
    from storage.errors import StorageError

    as_json = options.as_json
    console = Console(stderr=True, highlight=False)
    interactive = not as_json and sys.stdin.isatty()
    approval = ApprovalPolicy(callback=_ask_on_terminal(console) if interactive else None)
    limits = Limits() if options.max_turns is None else Limits(max_turns=options.max_turns)
    try:
        session = await Session.open(
            provider=config,
            model=model,
            mcp=options.mcp_config,
            system=options.system_prompt,
            limits=limits,
            approval=approval,
            temperature=options.temperature,
            max_tokens=options.max_tokens,
        )
    except (ConfigError, StorageError) as exc:
        _fail(str(exc), EXIT_USAGE, as_json=as_json)
    except ProviderError as exc:
        _fail(str(exc), EXIT_PROVIDER, as_json=as_json)
    async with session:
        _report_failed_servers(session, console)
        try:
            if as_json:
                result = await session.run(prompt)
            else:
                result = await session.run(prompt, on_event=_show_events(console), deltas=True)
        except ProviderError as exc:
            if not as_json:
                click.echo()
            _fail(str(exc), EXIT_PROVIDER, as_json=as_json)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE, as_json=as_json)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo()
        if result.stop_reason != "end_turn":
            console.print(f"[yellow]routekit: stopped: {result.detail or result.stop_reason}[/yellow]")
    if result.limit_reached:
        return EXIT_LIMIT
    return EXIT_OK


def _report_failed_servers(session: Any, console: Any) -> None:
    hub = session.hub
    if hub is None:
        return
    for status in hub.status().values():
        if status.state == "failed":
            console.print(f"[yellow]MCP server {status.name!r} is unavailable: {status.error}[/yellow]")


def _show_events(console: Any) -> Any:
    """Text deltas to stdout as they stream; tool activity, progress, retries and fallbacks to stderr."""
    from agent import events as ev

    def show(event: Any) -> None:
        if isinstance(event, ev.TextChunk):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, ev.ToolCallStarted):
            args = json.dumps(event.arguments)
            console.print(f"[cyan]→ {event.name}[/cyan] [dim]{args[:200]}[/dim]")
        elif isinstance(event, ev.ToolProgress):
            total = f"/{event.total:g}" if event.total else ""
            note = f" {event.message}" if event.message else ""
            console.print(f"[dim]  … {event.name} {event.progress:g}{total}{note}[/dim]")
        elif isinstance(event, ev.ToolCallFinished):
            mark = "[red]✗[/red]" if event.is_error else "[green]✓[/green]"
            why = "" if event.executed else f" [dim]{event.result_text[:200]}[/dim]"
            console.print(f"{mark} {event.name} [dim]({event.duration:.2f} s)[/dim]{why}")
        elif isinstance(event, ev.RetryScheduled):
            console.print(f"[yellow]↻ {event.provider}: {event.error}; retrying in {event.delay:.1f} s[/yellow]")
        elif isinstance(event, ev.FallbackUsed):
            console.print(
                f"[yellow]⇢ {event.from_provider} failed ({event.reason}); using {event.to_provider} "
                f"{event.to_model}[/yellow]"
            )

    return show


def _ask_on_terminal(console: Any) -> Any:
    """An approval callback that asks on the terminal: approve, deny (with a reason) or edit the arguments."""
    from agent.approval import ApprovalRequest, Approve, Deny, EditArguments

    def ask(request: ApprovalRequest) -> Any:
        from rich.prompt import Prompt

        console.print(
            f"[bold]{request.name}[/bold] wants to run ({request.reason}) with {json.dumps(request.arguments)}"
        )
        choice = Prompt.ask("approve?", choices=["y", "n", "e"], default="n", console=console)
        if choice == "y":
            return Approve()
        if choice == "e":
            text = Prompt.ask("arguments (JSON)", default=json.dumps(request.arguments), console=console)
            try:
                edited = json.loads(text)
            except ValueError:
                return Deny("the user's edited arguments were not valid JSON")
            return EditArguments(edited) if isinstance(edited, dict) else Deny("edited arguments must be an object")
        reason = Prompt.ask("reason (optional)", default="the user denied this call", console=console)
        return Deny(reason)

    async def callback(request: ApprovalRequest) -> Any:
        return await anyio.to_thread.run_sync(ask, request)

    return callback


@main.command()
@click.option("--models", "show_models", is_flag=True, help="Per-model profiles, and the models each key can use.")
@click.option("--provider", "-p", "names", multiple=True, help="Only this provider or preset (repeatable).")
@click.option("--offline", is_flag=True, help="With --models: no live model listing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def providers(show_models: bool, names: tuple[str, ...], offline: bool, as_json: bool) -> None:
    """List the providers and presets routekit can talk to, with the key variable each reads.

    With --models: the model families routekit has a profile for (tools, vision, thinking control and
    the request field carrying it, prompt caching, limits; ? is unknown) and, for each provider with a
    stored default config or its key variable set, the models the key can use, each with its profile.
    """
    from agent.commands.providers import show

    show(models=show_models, names=names, offline=offline, as_json=as_json)


def _fail(message: str, code: int, *, as_json: bool = False) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}))
    else:
        click.echo(f"routekit: {message}", err=True)
    sys.exit(code)


from agent.commands.config import config as _config_command  # noqa: E402

main.add_command(_config_command)
from agent.commands.mcp import mcp as _mcp_command  # noqa: E402

main.add_command(_mcp_command)
from agent.commands.usage import usage as _usage_command  # noqa: E402

main.add_command(_usage_command)
from agent.commands.keys import keys as _keys_command  # noqa: E402

main.add_command(_keys_command)
from agent.commands.users import users as _users_command  # noqa: E402

main.add_command(_users_command)
from agent.commands.doctor import doctor as _doctor_command  # noqa: E402

main.add_command(_doctor_command)
from agent.commands.chat import chat as _chat_command  # noqa: E402

main.add_command(_chat_command)
from agent.http.serve import serve as _serve_command  # noqa: E402

main.add_command(_serve_command)
