"""Fixtures for the CLI tests: the real ``routekit`` executable in subprocesses, a private data home.

Every invocation goes through :func:`Cli.run`, which checks the exit code and that no test secret shows
up in the command line it was given, in its stdout or in its stderr.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.base import FakeProviderServer
from tests.providers.conftest import TEST_KEYS, start_fake

ROOT = Path(__file__).resolve().parents[2]
ROUTEKIT = str(Path(sys.executable).parent / "routekit")
MCP_SERVER = str(Path(__file__).resolve().parent / "mcp_server.py")
OPENAI_KEY = TEST_KEYS["openai"]
assert OPENAI_KEY is not None
WRONG_KEY = "sk-wrong-key-9876543210zyxwvuSECRET"
MCP_SECRET = "mcp-env-secret-5551212abcdefSECRET"
MASTER_KEY = base64.b64encode(b"k" * 32).decode()

# Variables of the developer's shell that would change what the CLI does.
_SCRUBBED_PREFIXES = ("ROUTEKIT_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "OLLAMA_", "GROQ_", "COLUMNS")


@dataclass
class Cli:
    home: Path
    env: dict[str, str]
    secrets: list[str] = field(default_factory=lambda: [OPENAI_KEY, WRONG_KEY, MCP_SECRET, MASTER_KEY])

    def run(
        self,
        *args: str,
        code: int = 0,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        argv = [ROUTEKIT, *args]
        for secret in self.secrets:
            assert not any(secret in arg for arg in argv), "a test put a secret in argv"
        full_env = {k: v for k, v in {**self.env, **(env or {})}.items() if k not in drop}
        proc = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
        for secret in self.secrets:
            assert secret not in proc.stdout, f"a secret leaked to stdout of {args}"
            assert secret not in proc.stderr, f"a secret leaked to stderr of {args}"
        assert proc.returncode == code, (
            f"routekit {' '.join(args)} exited {proc.returncode}, expected {code}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
        return proc

    def json(self, *args: str, code: int = 0, **kwargs: Any) -> Any:
        split = args.index("--") if "--" in args else len(args)
        proc = self.run(*args[:split], "--json", *args[split:], code=code, **kwargs)
        return json.loads(proc.stdout)


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        ROUTEKIT_HOME=str(home),
        ROUTEKIT_MASTER_KEY=MASTER_KEY,
        NO_COLOR="1",
        COLUMNS="200",
        OPENAI_TEST_KEY=OPENAI_KEY,
        WRONG_TEST_KEY=WRONG_KEY,
        CLI_TEST_SECRET=MCP_SECRET,
    )
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    return Cli(home=home, env=base_env(home))


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeProviderServer]:
    """An OpenAI-wire fake that accepts only the test key (others get OpenAI's 401)."""
    server = start_fake("openai")
    server.valid_keys = {OPENAI_KEY}  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def openai_url(server: FakeProviderServer) -> str:
    return server.origin + "/v1"
