"""``routekit serve`` as a real subprocess: it starts, shows a new admin token once, and keeps it across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from agent.http.settings import FORWARDED_ALLOW_IPS_ENV
from tests.http.conftest import MASTER_KEY, free_port

ROUTEKIT = Path(sys.executable).parent / "routekit"


@contextmanager
def serving(home: Path, port: int, *args: str, **env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``routekit serve --port PORT *args`` with ``env`` over a copy of this environment, until it answers."""
    environ = {k: v for k, v in os.environ.items() if k not in ("ROUTEKIT_ADMIN_TOKEN", FORWARDED_ALLOW_IPS_ENV)}
    environ.update(ROUTEKIT_HOME=str(home), ROUTEKIT_MASTER_KEY=MASTER_KEY, **env)
    proc = subprocess.Popen(
        [str(ROUTEKIT), "serve", "--port", str(port), *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "routekit serve did not come up"
            time.sleep(0.1)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(15)


def test_serve_creates_the_admin_token_once(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port) as (proc, url):
        page = httpx.get(url + "/")
        assert page.status_code == 200
        assert "<title>routekit</title>" in page.text
    out, err = proc.communicate()
    assert f"http://localhost:{port}/" in out
    token = next(line.strip() for line in out.splitlines() if line.strip().startswith("rka_"))
    assert token not in err  # never in a log line
    assert (tmp_path / "admin_token.sha256").stat().st_mode & 0o077 == 0

    with serving(tmp_path, port) as (proc, url):
        created = httpx.post(
            url + "/api/admin/users", json={"name": "ops"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201, created.text
        user_token = created.json()["token"]
        assert httpx.get(url + "/api/sessions", headers={"Authorization": f"Bearer {user_token}"}).json() == []
    out, err = proc.communicate()
    assert "rka_" not in out  # shown only the first time
    assert user_token not in err
    assert token not in err


def test_serve_takes_the_admin_token_from_the_environment(tmp_path: Path) -> None:
    chosen = "rka_chosen-by-the-operator-123456"
    with serving(tmp_path, free_port(), ROUTEKIT_ADMIN_TOKEN=chosen) as (proc, url):
        ok = httpx.post(url + "/api/admin/users", json={"name": "x"}, headers={"Authorization": f"Bearer {chosen}"})
        assert ok.status_code == 201
    out, _ = proc.communicate()
    assert "rka_" not in out
    assert not (tmp_path / "admin_token.sha256").exists()


def test_first_start_on_the_embedded_database_prints_a_sign_in_token(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port) as (proc, url):
        pass
    out, err = proc.communicate()
    user_token = next(line.strip() for line in out.splitlines() if line.strip().startswith("rk_"))
    assert f"open http://localhost:{port}/ and sign in" in out
    assert user_token not in err

    with serving(tmp_path, port) as (proc, url):
        sessions = httpx.get(url + "/api/sessions", headers={"Authorization": f"Bearer {user_token}"})
        assert sessions.status_code == 200, sessions.text
    out, _ = proc.communicate()
    assert "rk_" not in out  # shown once; a restart only says how to get another
    assert "routekit users token local" in out
