"""``routekit users ... --expires`` through the real executable, and the parser of its values."""

from __future__ import annotations

import datetime as dt

import click
import pytest

from agent.commands.users import parse_expiry
from tests.cli.conftest import Cli

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds_from_now"),
    [
        ("30d", 30 * 86_400),
        ("12h", 12 * 3_600),
        ("45m", 45 * 60),
        (" 1d ", 86_400),
        ("2030-06-02", 12 * 3_600),  # a date: midnight UTC
        ("2030-06-01T18:00", 6 * 3_600),  # no offset: UTC
        ("2030-06-01T18:00+02:00", 4 * 3_600),
    ],
)
def test_expiry_values(text: str, seconds_from_now: int) -> None:
    assert parse_expiry(text, now=NOW) == NOW + seconds_from_now


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0d", "positive"),
        ("30s", "not a length or a date"),
        ("-3d", "not a length or a date"),
        ("soon", "not a length or a date"),
        ("2030-05-31", "has passed"),
        ("2030-06-01T12:00", "has passed"),
    ],
)
def test_bad_expiry_values_are_refused(text: str, problem: str) -> None:
    with pytest.raises(click.BadParameter, match=problem):
        parse_expiry(text, now=NOW)


def test_users_tokens_with_expiry_are_listed(cli: Cli) -> None:
    added = cli.json("users", "add", "alice", "--label", "laptop", "--expires", "2h")
    cli.secrets.append(added["token"])
    in_two_hours = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    expires = dt.datetime.strptime(added["expires_at"], "%Y-%m-%d %H:%M UTC").replace(tzinfo=dt.UTC)
    assert abs((expires - in_two_hours).total_seconds()) < 120
    dated = cli.json("users", "token", "alice", "--label", "dated", "--expires", "2999-01-31")
    cli.secrets.append(dated["token"])
    assert dated["expires_at"] == "2999-01-31 00:00 UTC"
    forever = cli.json("users", "token", "alice", "--label", "forever")
    cli.secrets.append(forever["token"])
    assert forever["expires_at"] is None

    [alice] = cli.json("users", "list")
    tokens = {t["label"]: t for t in alice["tokens"]}
    assert tokens["laptop"]["expires_at"] == added["expires_at"]
    assert tokens["dated"]["expires_at"] == "2999-01-31 00:00 UTC"
    assert tokens["forever"]["expires_at"] is None
    assert not any(t["expired"] for t in tokens.values())
    table = cli.run("users", "list").stdout
    assert "next expiry" in table
    assert added["expires_at"] in table  # the soonest expiry of alice's active tokens
    shown = cli.run("users", "token", "alice", "--expires", "30d").stdout
    assert "expires 20" in shown

    for bad, problem in (("yesterday", "not a length or a date"), ("2001-01-01", "has passed"), ("0m", "positive")):
        err = cli.run("users", "token", "alice", "--expires", bad, code=2).stderr
        assert problem in err
    assert "cannot be combined" in cli.run("users", "token", "alice", "--revoke", "x", "--expires", "1d", code=2).stderr
    assert len(cli.json("users", "list")[0]["tokens"]) == 4  # the refused ones issued nothing
