"""``routekit config`` through the real executable against the OpenAI-wire fake."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli.conftest import OPENAI_KEY, Cli, openai_url
from tests.fakes.base import FakeProviderServer


def test_add_from_env_list_masked_and_test_ok(cli: Cli, openai_fake: FakeProviderServer) -> None:
    added = cli.json(
        "config",
        "add",
        "--provider",
        "openai",
        "--base-url",
        openai_url(openai_fake),
        "--key-env",
        "OPENAI_TEST_KEY",
        "--model",
        "fake-model-1",
        "--label",
        "work",
    )
    assert added["provider"] == "openai"
    assert added["api_key"] == "****" + OPENAI_KEY[-4:]
    assert added["is_default"] is True  # the first config of a provider becomes its default
    listed = cli.json("config", "list")
    assert [c["id"] for c in listed] == [added["id"]]
    assert listed[0]["api_key"] == "****" + OPENAI_KEY[-4:]
    table = cli.run("config", "list").stdout
    assert "work" in table
    assert "****" + OPENAI_KEY[-4:] in table

    before = len(openai_fake.requests)
    tested = cli.json("config", "test", "work")
    assert tested[0]["test"]["ok"] is True
    assert tested[0]["test"]["models_visible"] == 2
    # check() reached the fake with the stored key, sent as a header (not in the URL).
    seen = openai_fake.requests[before:]
    assert seen
    assert seen[-1].path.endswith("/models")
    assert seen[-1].headers.get("authorization") == f"Bearer {OPENAI_KEY}"
    assert "✓" in cli.run("config", "test").stdout


def test_key_from_stdin_and_wrong_key_is_a_provider_error(cli: Cli, openai_fake: FakeProviderServer) -> None:
    added = cli.json(
        "config",
        "add",
        "-p",
        "openai",
        "--base-url",
        openai_url(openai_fake),
        "--key-stdin",
        "--label",
        "bad",
        stdin="sk-wrong-key-9876543210zyxwvuSECRET\n",
    )
    assert added["api_key"] == "****CRET"
    result = cli.json("config", "test", "bad", code=3)
    assert result[0]["test"]["ok"] is False
    assert "openai" in result[0]["test"]["detail"].lower()
    # --test on add reports the same and exits 3 (the config is kept, so it can be fixed).
    again = cli.json(
        "config",
        "add",
        "-p",
        "openai",
        "--base-url",
        openai_url(openai_fake),
        "--key-env",
        "WRONG_TEST_KEY",
        "--test",
        code=3,
    )
    assert again["test"]["ok"] is False
    plain = cli.run("config", "test", code=3)
    assert "✗" in plain.stdout


def test_default_and_remove_by_prefix_and_label(cli: Cli, openai_fake: FakeProviderServer) -> None:
    url = openai_url(openai_fake)
    first = cli.json("config", "add", "-p", "openai", "--base-url", url, "--key-env", "OPENAI_TEST_KEY", "-l", "a")
    second = cli.json("config", "add", "-p", "openai", "--base-url", url, "--key-env", "OPENAI_TEST_KEY", "-l", "b")
    assert first["is_default"]
    assert not second["is_default"]
    made = cli.json("config", "default", second["id"][:8])
    assert made["is_default"] is True
    listed = {c["label"]: c["is_default"] for c in cli.json("config", "list")}
    assert listed == {"a": False, "b": True}
    assert cli.json("config", "remove", "a") == {"removed": first["id"]}
    assert [c["label"] for c in cli.json("config", "list")] == ["b"]
    missing = cli.json("config", "remove", "nope", code=2)
    assert "no provider config" in missing["error"]


def test_keys_are_never_taken_from_argv_or_silently_from_a_pipe(cli: Cli) -> None:
    dummy = "sk-dummy-from-argv-000000"
    refused = cli.run("config", "add", "-p", "openai", "--key", dummy, code=2)
    assert dummy not in refused.stdout + refused.stderr
    assert "never taken from the command line" in refused.stderr
    # Not a terminal and no --key-stdin/--key-env: refuse instead of reading stdin unasked.
    no_tty = cli.run("config", "add", "-p", "openai", stdin="", code=2)
    assert "--key-stdin" in no_tty.stderr
    unset = cli.run("config", "add", "-p", "openai", "--key-env", "NOT_SET_ANYWHERE", code=2)
    assert "NOT_SET_ANYWHERE" in unset.stderr
    unknown = cli.run("config", "add", "-p", "no-such-provider", "--no-key", code=2)
    assert "no-such-provider" in unknown.stderr
    assert cli.json("config", "list") == []


_HELP_SCRIPT = """
import json, sys
from click.testing import CliRunner
from agent.cli import main
out = {}
for command in json.loads(sys.argv[1]):
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="routekit")
    out[" ".join(command)] = [result.exit_code, result.output]
print(json.dumps(out))
"""


def test_every_command_has_help_with_examples(cli: Cli) -> None:
    commands = [
        ["config"], ["config", "add"], ["config", "list"], ["config", "remove"], ["config", "test"],
        ["config", "default"], ["mcp"], ["mcp", "add"], ["mcp", "list"], ["mcp", "remove"], ["mcp", "tools"],
        ["usage"], ["keys"], ["keys", "rotate"], ["users"], ["users", "add"], ["users", "list"],
        ["users", "token"], ["doctor"],
    ]  # fmt: skip
    # The executable's own --help once; the rest rendered by click in one process (start-up dominates).
    assert "Examples:" in cli.run("config", "add", "--help").stdout
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_SCRIPT, json.dumps(commands)],
        capture_output=True, text=True, env=cli.env, check=True, timeout=60,
    )  # fmt: skip
    helps = json.loads(proc.stdout)
    for command in commands:
        code, text = helps[" ".join(command)]
        assert code == 0, command
        assert "Examples:" in text, command
        assert f"routekit {command[0]}" in text, command
