"""Bad input to the CLI ends in one clear line and the right exit code, never a traceback (real executable).

2: usage or configuration (arguments that are not UTF-8, out-of-range values, an inexpressible tool schema,
a malformed URL); 3: provider (a refused connection is reported as one, not as a timeout).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, ROUTEKIT, Cli, openai_url
from tests.fakes.base import FakeProviderServer
from tests.http.conftest import free_port

BAD_SCHEMA_SERVER = str(Path(__file__).resolve().parent / "mcp_bad_schema_server.py")
NOT_UTF8 = "\udcff"  # how Python holds the byte 0xff of a command line; subprocess passes the raw byte


def _one_line(proc: subprocess.CompletedProcess[str], *, after_retries: bool = False) -> str:
    """The error line; the only line on stderr, or the last one after the retry notices."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    if after_retries:
        assert all(line.startswith("↻ ") for line in lines[:-1]), proc.stderr
    else:
        assert len(lines) == 1, proc.stderr
    assert lines[-1].startswith("routekit: "), lines[-1]
    return lines[-1]


def _run_openai(url: str, *args: str) -> tuple[str, ...]:
    return ("run", "hi", "-p", "openai", "--base-url", url, "--api-key-env", "OPENAI_TEST_KEY", "-m", "gpt-4o", *args)


@pytest.mark.parametrize(
    "args",
    [
        ("run", NOT_UTF8),
        ("run", "hello", "--system", "be " + NOT_UTF8),
        ("users", "add", "al" + NOT_UTF8),
        ("config", "add", "-p", NOT_UTF8),
        ("usage", "--since", NOT_UTF8),
    ],
)
def test_arguments_that_are_not_utf8_are_refused(cli: Cli, args: tuple[str, ...]) -> None:
    line = _one_line(cli.run(*args, code=2))
    assert "is not valid UTF-8" in line
    assert not (cli.home / "routekit.db").exists()  # refused before any command ran


@pytest.mark.parametrize(
    ("option", "value"),
    [("--max-tokens", "-5"), ("--max-tokens", "0"), ("--temperature", "99"), ("--temperature", "nan")],
)
def test_out_of_range_run_options_are_usage_errors(
    cli: Cli, openai_fake: FakeProviderServer, option: str, value: str
) -> None:
    before = len(openai_fake.requests)
    proc = cli.run(*_run_openai(openai_url(openai_fake), option, value), code=2)
    assert f"Invalid value for '{option}'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(openai_fake.requests) == before  # nothing was sent


def test_timeouts_must_be_positive(cli: Cli) -> None:
    assert "Invalid value for '--timeout'" in cli.run("config", "test", "--timeout", "-1", code=2).stderr
    assert "Invalid value for '--timeout'" in cli.run("doctor", "--timeout", "nan", code=2).stderr


def test_a_refused_connection_is_a_provider_error_not_a_timeout(cli: Cli) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    line = _one_line(cli.run(*_run_openai(closed), code=3), after_retries=True)
    assert "cannot reach" in line
    assert "no answer within" not in line
    answer = cli.json(*_run_openai(closed), code=3)
    assert answer["exit_code"] == 3
    assert "no answer within" not in answer["error"]


def test_an_inexpressible_tool_schema_is_a_configuration_error(
    cli: Cli, openai_fake: FakeProviderServer, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"bad": {"command": sys.executable, "args": [BAD_SCHEMA_SERVER]}}}))
    before = len(openai_fake.requests)
    line = _one_line(cli.run(*_run_openai(openai_url(openai_fake), "--mcp-config", str(config)), code=2))
    assert "tool 'bad.lookup' cannot be offered to openai" in line
    answer = cli.json(*_run_openai(openai_url(openai_fake), "--mcp-config", str(config)), code=2)
    assert answer["exit_code"] == 2
    assert "cannot be offered" in answer["error"]
    assert len(openai_fake.requests) == before  # refused before the call


def test_bad_files_and_urls_are_one_line_usage_errors(cli: Cli, tmp_path: Path) -> None:
    not_utf8 = tmp_path / "mcp.json"
    not_utf8.write_bytes(b'{"mcpServers": {"a": "\xff"}}')
    line = _one_line(cli.run(*_run_openai("http://127.0.0.1:9/v1", "--mcp-config", str(not_utf8)), code=2))
    assert f"cannot read {not_utf8}" in line
    for url, problem in (("http://[::1/v1", "not a valid URL"), ("http://h:99999/v1", "not a valid URL")):
        assert problem in _one_line(cli.run(*_run_openai(url), code=2))
    added = cli.run(
        "config", "add", "-p", "openai", "--base-url", "http://[::1", "--key-env", "OPENAI_TEST_KEY", code=2
    )
    assert "not a valid URL" in _one_line(added)
    assert cli.json("config", "list") == []  # nothing stored


def test_chat_refuses_a_line_that_is_not_utf8_and_sends_nothing(cli: Cli, openai_fake: FakeProviderServer) -> None:
    cli.json("config", "add", "-p", "openai", "--base-url", openai_url(openai_fake), "--key-env", "OPENAI_TEST_KEY",
             "-m", "fake-model-1")  # fmt: skip
    before = len(openai_fake.requests)
    proc = subprocess.run(
        [ROUTEKIT, "chat", "--no-mcp"],
        input=b"hello \xff\n/exit\n",
        capture_output=True,
        env=cli.env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert b"not valid UTF-8" in proc.stdout + proc.stderr
    assert b"Traceback" not in proc.stderr
    assert len(openai_fake.requests) == before
