"""The ``routekit`` command.

This first version talks to a provider directly (one streamed model call); the agent loop with MCP
tools, storage and limits replaces the body of ``run`` when the runtime lands. The command surface
(options, ``--json`` shape, exit codes) is already the one the runtime keeps.

Exit codes: 0 success, 2 usage or configuration error, 3 provider error, 4 a limit was reached.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import anyio
import click

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--system", "system_prompt", help="System prompt.")
@click.option("--max-tokens", type=int, help="Maximum output tokens.")
@click.option("--temperature", type=float, help="Sampling temperature.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
def run(
    prompt: str,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    api_key_env: str | None,
    system_prompt: str | None,
    max_tokens: int | None,
    temperature: float | None,
    as_json: bool,
) -> None:
    """Send PROMPT to a model and print the answer as it streams.

    \b
    Examples:
      ANTHROPIC_API_KEY=... routekit run "Hello"
      routekit run "Hello" --provider ollama --model llama3.1
      routekit run "Hello" --provider openai-compatible --base-url http://127.0.0.1:8000/v1 --model my-model
      routekit run "Hello" --json
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
        )
    try:
        get_profile(chosen)  # a clean "unknown provider" error listing the valid names
        config = ProviderConfig(provider=chosen, base_url=base_url, api_key_env=api_key_env)
        config.resolve_api_key()
        resolved_model = config.resolve_model(model)
    except (ConfigError, ValidationError) as exc:
        _fail(_first_line(exc), EXIT_USAGE)
    code = anyio.run(_run_once, config, resolved_model, prompt, system_prompt, max_tokens, temperature, as_json)
    sys.exit(code)


async def _run_once(
    config: Any,
    model: str,
    prompt: str,
    system_prompt: str | None,
    max_tokens: int | None,
    temperature: float | None,
    as_json: bool,
) -> int:
    from providers.base import create_provider
    from providers.errors import ConfigError, ProviderError
    from providers.types import Message, ModelRequest, ResponseDone, TextDelta

    request = ModelRequest(
        model=model,
        messages=[Message.user(prompt)],
        system=system_prompt,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    try:
        provider = create_provider(config)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    try:
        final = None
        async for event in provider.stream(request):
            if isinstance(event, TextDelta) and not as_json:
                click.echo(event.text, nl=False)
            elif isinstance(event, ResponseDone):
                final = event.response
    except ProviderError as exc:
        if not as_json:
            click.echo()
        _fail(str(exc), EXIT_PROVIDER, as_json=as_json)
    finally:
        await provider.aclose()
    assert final is not None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "text": final.text,
                    "session_id": None,
                    "stop_reason": final.stop_reason,
                    "provider": final.provider,
                    "model": final.model,
                    "usage": final.usage.model_dump(),
                    "cost_usd": None,
                    "tool_calls": [],
                }
            )
        )
    else:
        click.echo()
    return EXIT_OK


@main.command()
def providers() -> None:
    """List the providers and presets routekit can talk to, with the key variable each reads."""
    from rich.console import Console
    from rich.table import Table

    from providers.profiles import PROFILES

    table = Table("name", "provider", "key variable", "default endpoint", "suggested model")
    for profile in PROFILES.values():
        table.add_row(
            profile.name,
            profile.display_name,
            profile.api_key_env or "-",
            profile.default_base_url or "(SDK default)",
            profile.suggested_model or "(pass --model)",
        )
    Console().print(table)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if "validation error" not in text else text


def _fail(message: str, code: int, *, as_json: bool = False) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": code}))
    else:
        click.echo(f"routekit: {message}", err=True)
    sys.exit(code)
