"""``routekit usage``, ``keys rotate``, ``users`` and ``doctor`` through the real executable."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import anyio

from providers.types import Usage
from storage import UsageEntry, open_store, parse_master_keys
from tests.cli.conftest import MASTER_KEY, MCP_SERVER, OPENAI_KEY, Cli, openai_url
from tests.fakes.base import FakeProviderServer


def _seed_usage(home: Path) -> None:
    """Ledger rows for the CLI's local user: priced, unpriced model, and unknown token counts."""

    async def seed() -> None:
        store = await open_store(f"sqlite:///{home / 'routekit.db'}", keyring=parse_master_keys(MASTER_KEY))
        try:
            user = await store.users.by_name("local")
            assert user is not None
            await store.usage.record_many(
                [
                    UsageEntry(user.id, "openai", "gpt-4o-mini", Usage(input_tokens=1000, output_tokens=100)),
                    UsageEntry(user.id, "openai", "gpt-4o-mini", Usage(input_tokens=2000, output_tokens=200)),
                    UsageEntry(user.id, "openai", "no-such-model-x", Usage(input_tokens=10, output_tokens=5)),
                    UsageEntry(user.id, "ollama", "llama3.1", Usage(input_tokens=None, output_tokens=None)),
                ]
            )
        finally:
            await store.close()

    anyio.run(seed)


def test_usage_groups_totals_and_unknowns(cli: Cli) -> None:
    assert cli.json("usage") == {"by": "provider", "since": None, "rows": [], "total": None}  # creates the user
    _seed_usage(cli.home)
    by_model = cli.json("usage", "--by", "model", "--since", "7d")
    rows = {r["group"]["model"]: r for r in by_model["rows"]}
    assert rows["gpt-4o-mini"]["calls"] == 2
    assert rows["gpt-4o-mini"]["input_tokens"] == 3000
    assert Decimal(rows["gpt-4o-mini"]["cost_usd"]) > 0
    assert rows["no-such-model-x"]["cost_usd"] is None  # not priced: unknown, not 0
    assert rows["llama3.1"]["input_tokens"] is None  # not reported: unknown, not 0
    assert rows["llama3.1"]["cost_usd"] == "0"  # local model: free whatever the counts
    total = by_model["total"]
    assert total["calls"] == 4
    # Unknown is not zero: one call did not report its tokens and one could not be priced, so the totals are
    # null; what is known for sure is beside them.
    assert total["input_tokens"] is None
    assert total["known"]["input_tokens"] == 3010
    assert total["tokens_unknown_calls"] == 1
    assert total["cost_usd"] is None
    assert Decimal(total["known"]["cost_usd"]) == Decimal(rows["gpt-4o-mini"]["cost_usd"])
    assert total["cost_unknown_calls"] == 1

    table = cli.run("usage", "--by", "model").stdout
    assert "unknown" in table
    assert "total" in table
    assert "≥ $" in table
    assert "≥ 3,010 (1 unknown)" in table
    assert cli.json("usage", "--since", "2999-01-01")["rows"] == []
    assert "--since" in cli.run("usage", "--since", "yesterday", code=2).stderr


def test_keys_rotate_with_environment_and_key_file(cli: Cli, openai_fake: FakeProviderServer) -> None:
    url = openai_url(openai_fake)
    cli.json("config", "add", "-p", "openai", "--base-url", url, "--key-env", "OPENAI_TEST_KEY", "-l", "k")
    new_key = "v2:" + __import__("base64").b64encode(b"n" * 32).decode()
    both = {"ROUTEKIT_MASTER_KEY": f"{new_key},v1:{MASTER_KEY}"}
    cli.secrets.append(new_key.removeprefix("v2:"))
    rotated = cli.json("keys", "rotate", env=both)
    assert rotated["current"] == "v2"
    assert rotated["rewrapped"] >= 1
    assert rotated["remaining"] == 0
    assert rotated["versions_in_use"] == {"v2": rotated["rewrapped"]}
    # The old key is no longer needed: the new one alone opens the stored key.
    only_new = {"ROUTEKIT_MASTER_KEY": new_key}
    assert cli.json("config", "test", "k", env=only_new)[0]["test"]["ok"] is True

    # Key-file setup: no ROUTEKIT_MASTER_KEY at all; rotate makes v2 and drops v1 from the file.
    home2 = cli.home.parent / "home2"
    env2 = {"ROUTEKIT_HOME": str(home2)}
    cli.run("config", "add", "-p", "openai", "--base-url", url, "--key-env", "OPENAI_TEST_KEY", "-l", "f",
            env=env2, drop=("ROUTEKIT_MASTER_KEY",))  # fmt: skip
    key_file = home2 / "master.key"
    assert key_file.read_text().startswith("v1:")
    result = cli.json("keys", "rotate", env=env2, drop=("ROUTEKIT_MASTER_KEY",))
    assert result["source"] == "key_file"
    assert result["current"] == "v2"
    assert result["remaining"] == 0
    assert key_file.read_text().startswith("v2:")
    assert "v1:" not in key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    listed = cli.json("config", "list", env=env2, drop=("ROUTEKIT_MASTER_KEY",))
    assert listed[0]["status"] == "ok"
    assert listed[0]["api_key"] == "****" + OPENAI_KEY[-4:]


def test_users_add_list_token_revoke(cli: Cli) -> None:
    added = cli.json("users", "add", "alice", "--label", "laptop")
    assert added["name"] == "alice"
    assert added["token"].startswith("rk_")
    cli.secrets.append(added["token"])  # shown once: never again in any later output
    assert "exists already" in cli.run("users", "add", "alice", code=2).stderr
    issued = cli.json("users", "token", "alice")
    assert issued["token"].startswith("rk_")
    assert issued["token"] != added["token"]
    cli.secrets.append(issued["token"])
    users = {u["name"]: u for u in cli.json("users", "list")}
    assert [t["label"] for t in users["alice"]["tokens"]] == ["laptop", None]
    revoked = cli.json("users", "token", "alice", "--revoke", added["token_id"][:10])
    assert revoked["revoked"] == added["token_id"]
    tokens = {t["id"]: t["revoked"] for t in cli.json("users", "list")[0]["tokens"]}
    assert tokens == {added["token_id"]: True, issued["token_id"]: False}
    assert "no user named" in cli.run("users", "token", "bob", code=2).stderr


def test_doctor_healthy_then_broken(cli: Cli, openai_fake: FakeProviderServer, tmp_path: Path) -> None:
    url = openai_url(openai_fake)
    cli.json("config", "add", "-p", "openai", "--base-url", url, "--key-env", "OPENAI_TEST_KEY", "-l", "good")
    cli.json("mcp", "add", "ok", "--", sys.executable, MCP_SERVER)
    healthy = {c["name"]: c for c in cli.json("doctor")}
    assert healthy["database"]["status"] == "ok"
    assert healthy["master key"]["status"] == "ok"
    assert healthy["MCP server ok"]["status"] == "ok"
    assert healthy["provider openai good"]["status"] == "ok"

    # Only a provider problem: exit 3, with a fix hint.
    cli.json("config", "add", "-p", "openai", "--base-url", url, "--key-env", "WRONG_TEST_KEY", "-l", "bad")
    checks = {c["name"]: c for c in cli.json("doctor", code=3)}
    assert checks["provider openai bad"]["status"] == "fail"
    assert checks["provider openai bad"]["fix"]
    # A server that cannot start is a local problem: exit 2, with its stderr and a fix.
    cli.json("mcp", "add", "broken", "--", sys.executable, MCP_SERVER, "--fail-start")
    text = cli.run("doctor", code=2).stdout
    assert "MCP server broken" in text
    assert "fix:" in text
    # A wrong master key: the database check fails and says what to do; nothing else is attempted.
    wrong = {"ROUTEKIT_MASTER_KEY": __import__("base64").b64encode(b"w" * 32).decode()}
    cli.secrets.append(wrong["ROUTEKIT_MASTER_KEY"])
    checks = {c["name"]: c for c in cli.json("doctor", code=2, env=wrong)}
    assert checks["database"]["status"] == "fail"
    assert checks["provider keys"]["status"] == "skipped"
