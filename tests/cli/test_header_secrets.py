"""Extra header values are secrets at the CLI too (issue 11, defect 4): `config add --test`, `config test`
and `doctor` show an endpoint's error that echoes a header value with the value redacted."""

from __future__ import annotations

from tests.cli.conftest import Cli, openai_url
from tests.fakes.base import FakeProviderServer, Fault

HEADER_SECRET = "cli-header-secret-31337abcdef"


def test_an_echoed_header_value_is_redacted(cli: Cli, openai_fake: FakeProviderServer) -> None:
    cli.secrets.append(HEADER_SECRET)  # Cli.run asserts it never reaches stdout or stderr
    echo = f"unknown tenant in X-Tenant-Trace: {HEADER_SECRET}"
    env = {"TRACE_VAR": HEADER_SECRET}
    openai_fake.faults.append(Fault(status=401, message=echo))
    added = cli.json(
        "config",
        "add",
        "-p",
        "openai",
        "--base-url",
        openai_url(openai_fake),
        "--key-env",
        "OPENAI_TEST_KEY",
        "--header-env",
        "X-Tenant-Trace=TRACE_VAR",
        "--label",
        "traced",
        "--test",
        code=3,
        env=env,
    )
    assert added["test"]["ok"] is False
    assert "[redacted]" in added["test"]["detail"]
    openai_fake.faults.append(Fault(status=401, message=echo))
    tested = cli.json("config", "test", "traced", code=3)
    assert "[redacted]" in tested[0]["test"]["detail"]
    openai_fake.faults.append(Fault(status=401, message=echo))
    doctor = cli.run("doctor", code=3)
    assert "[redacted]" in doctor.stdout
