"""Sign-in security of the service: failed sign-ins limited per client address before any token lookup,
proxy headers trusted only from the operator's proxies, token expiry, and a wrong master key at start-up.

The proxy and start-up tests run a real ``routekit serve`` process; the others the in-process service.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from agent.http.limits import RateLimiter, TooManyRequests, client_key
from storage import SQLStore, open_store, parse_master_keys
from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import ADMIN_TOKEN, MASTER_KEY, Service, base_settings, free_port
from tests.http.test_serve import ROUTEKIT, serving

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRONG = {"Authorization": "Bearer rk_guessed-token-0000000000"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_user(url: str, name: str, **extra: object) -> dict[str, object]:
    answer = httpx.post(f"{url}/api/admin/users", json={"name": name, **extra}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    data: dict[str, object] = answer.json()
    return data


# --------------------------------------------------------------------------- failed sign-ins, in process


@pytest.fixture
def strict(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer) -> Iterator[Service]:
    """A service that holds an address back after 3 failed sign-ins (each test that trips it gets its own)."""
    svc = Service(tmp_path_factory.mktemp("strict"), base_settings(fake_openai, failed_auth_per_minute=3)).start()
    try:
        yield svc
    finally:
        svc.stop()


def test_a_throttled_address_gets_429_whatever_token_it_sends(strict: Service) -> None:
    _, valid = strict.new_user("victim")  # the admin token signs in: not a failure
    with strict.client() as c:
        assert [c.get("/api/sessions").status_code for _ in range(5)] == [401] * 5  # no token: nothing to guess
        guesses = [c.get("/api/sessions", headers=WRONG).status_code for _ in range(3)]
        throttled = c.get("/api/sessions", headers=WRONG)
        with_valid = c.get("/api/sessions", headers=_bearer(valid))
        with_admin = c.get("/api/admin/mcp-servers", headers=ADMIN)
    assert guesses == [401] * 3
    # Past the limit the answer no longer depends on the token: a valid one is refused just like a guess.
    for answer in (throttled, with_valid, with_admin):
        assert answer.status_code == 429, answer.text
        assert "failed sign-ins" in answer.json()["detail"]
        assert 1 <= int(answer.headers["retry-after"]) <= 60
    assert with_valid.json() == throttled.json()


def test_wrong_admin_tokens_and_expired_tokens_count_as_failed_sign_ins(strict: Service) -> None:
    user_id, token = strict.new_user("soon-gone")
    strict.call(lambda store: _expire(store, user_id, "created with the user"))
    with strict.client() as c:
        codes = [c.get("/api/admin/mcp-servers", headers=WRONG).status_code for _ in range(2)]
        codes.append(c.get("/api/sessions", headers=_bearer(token)).status_code)  # expired: the third failure
        admin = c.get("/api/admin/mcp-servers", headers=ADMIN)
    assert codes == [401, 401, 401]
    assert admin.status_code == 429


# --------------------------------------------------------------------------- proxy headers, real process


def test_a_spoofed_forwarded_for_does_not_escape_the_limit(tmp_path: Path) -> None:
    """Nothing trusted by default: X-Forwarded-For from a direct client is ignored, so every guess counts."""
    env = {"ROUTEKIT_ADMIN_TOKEN": ADMIN_TOKEN}
    with serving(tmp_path, free_port(), "--failed-auth-per-minute", "5", **env) as (_, url):
        valid = str(_new_user(url, "spoof-victim")["token"])
        codes = [
            httpx.get(f"{url}/api/sessions", headers={**WRONG, "X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(12)
        ]
        again = httpx.get(f"{url}/api/sessions", headers={**_bearer(valid), "X-Forwarded-For": "198.51.100.1"})
    assert codes == [401] * 5 + [429] * 7
    assert again.status_code == 429


def test_forwarded_for_is_trusted_from_the_operators_proxy_only(tmp_path: Path) -> None:
    """Behind a named proxy each client is counted under its own address: one abusive client is held back,
    the valid user elsewhere is not."""
    env = {"ROUTEKIT_ADMIN_TOKEN": ADMIN_TOKEN, "ROUTEKIT_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with serving(tmp_path, free_port(), "--failed-auth-per-minute", "3", **env) as (_, url):
        valid = str(_new_user(url, "behind-proxy")["token"])
        abuser = {"X-Forwarded-For": "203.0.113.9"}
        user_elsewhere = {"X-Forwarded-For": "198.51.100.7"}
        guesses = [httpx.get(f"{url}/api/sessions", headers={**WRONG, **abuser}).status_code for _ in range(4)]
        abuser_with_valid = httpx.get(f"{url}/api/sessions", headers={**_bearer(valid), **abuser})
        elsewhere = httpx.get(f"{url}/api/sessions", headers={**_bearer(valid), **user_elsewhere})
        elsewhere_wrong = httpx.get(f"{url}/api/sessions", headers={**WRONG, **user_elsewhere})
    assert guesses == [401, 401, 401, 429]
    assert abuser_with_valid.status_code == 429
    assert elsewhere.status_code == 200, elsewhere.text
    assert elsewhere_wrong.status_code == 401  # its own count, untouched by the abuser's


def test_a_malformed_proxy_list_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(ROUTEKIT), "serve", "--forwarded-allow-ips", "10.0.0.1,proxy.internal"],
        env={**os.environ, "ROUTEKIT_HOME": str(tmp_path), "ROUTEKIT_MASTER_KEY": MASTER_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "'proxy.internal' is not an IP address or network" in proc.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was created


# --------------------------------------------------------------------------- token expiry


def test_admin_issues_tokens_that_expire(service: Service) -> None:
    created = service.admin().post("/api/admin/users", json={"name": "temp", "expires_in_days": 1})
    assert created.status_code == 201, created.text
    user_id, token = created.json()["user_id"], created.json()["token"]
    assert created.json()["expires_at"] == pytest.approx(time.time() + 86_400, abs=120)
    in_a_year = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).replace(microsecond=0)
    with service.admin() as admin:
        until = admin.post(
            f"/api/admin/users/{user_id}/tokens", json={"label": "dated", "expires_at": in_a_year.isoformat()}
        )
        forever = admin.post(f"/api/admin/users/{user_id}/tokens", json={"label": "forever"})
        both = admin.post(
            f"/api/admin/users/{user_id}/tokens", json={"expires_in_days": 2, "expires_at": in_a_year.isoformat()}
        )
        past = admin.post(f"/api/admin/users/{user_id}/tokens", json={"expires_at": "2001-01-01"})
        zero = admin.post(f"/api/admin/users/{user_id}/tokens", json={"expires_in_days": 0})
        huge = admin.post(f"/api/admin/users/{user_id}/tokens", json={"expires_in_days": 1e300})
        late_user = admin.post("/api/admin/users", json={"name": "never-made", "expires_at": "2001-01-01"})
    assert until.status_code == 201
    assert until.json()["expires_at"] == in_a_year.timestamp()
    assert forever.status_code == 201
    assert forever.json()["expires_at"] is None
    assert both.status_code == 400
    assert "not both" in both.json()["detail"]
    assert past.status_code == 400
    assert "has passed" in past.json()["detail"]
    assert zero.status_code == 422
    assert huge.status_code == 422
    assert late_user.status_code == 400
    with service.admin() as admin:
        assert admin.post("/api/admin/users", json={"name": "never-made"}).status_code == 201  # nothing was made

    with service.client(token) as c:
        assert c.get("/api/sessions").status_code == 200
    # Time passes (the stored expiry moves into the past); the token is refused, and says why.
    service.call(lambda store: _expire(store, user_id, "created with the user"))
    with service.client(token) as c:
        expired = c.get("/api/sessions")
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    assert expired.headers["www-authenticate"] == "Bearer"
    with service.client(forever.json()["token"]) as c:
        assert c.get("/api/sessions").status_code == 200

    listed = {t["label"]: t for t in service.admin().get(f"/api/admin/users/{user_id}/tokens").json()}
    assert listed["created with the user"]["expired"] is True
    assert listed["created with the user"]["revoked"] is False
    assert listed["dated"]["expires_at"] == in_a_year.timestamp()
    assert listed["dated"]["expired"] is False
    assert listed["forever"]["expires_at"] is None
    assert listed["forever"]["expired"] is False


async def _expire(store: SQLStore, user_id: str, label: str) -> None:
    await store.db.write(
        lambda c: c.execute(
            "UPDATE api_tokens SET expires_at = ? WHERE user_id = ? AND label = ?", time.time() - 1, user_id, label
        )
    )


# --------------------------------------------------------------------------- start-up with a wrong master key


def test_serve_with_a_wrong_master_key_stops_before_writing_anything(tmp_path: Path) -> None:
    async def make_database() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'routekit.db'}", keyring=parse_master_keys(MASTER_KEY))
        await store.close()

    anyio.run(make_database)
    other_key = "v1:" + "A" * 43 + "="
    proc = subprocess.run(
        [str(ROUTEKIT), "serve", "--port", str(free_port())],
        env={
            **{k: v for k, v in os.environ.items() if k != "ROUTEKIT_ADMIN_TOKEN"},
            "ROUTEKIT_HOME": str(tmp_path),
            "ROUTEKIT_MASTER_KEY": other_key,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # no admin token, no sign-in token, no "serving on"
    [line] = proc.stderr.splitlines()
    assert line.startswith("routekit: cannot start: the master key")
    assert "A" * 43 not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("routekit.db")) == []


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("203.0.113.9", "203.0.113.9", True),
        ("203.0.113.9", "203.0.113.10", False),
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::7", True),  # one IPv6 host holds a /64: rotating in it is no escape
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:203.0.113.9", "203.0.113.9", True),
    ],
)
def test_failed_sign_ins_are_counted_per_address(first: str, second: str, same: bool) -> None:
    limiter = RateLimiter(2, clock=lambda: 100.0, what="failed sign-ins")
    limiter.record(client_key(first))
    limiter.record(client_key(first))
    with pytest.raises(TooManyRequests, match="failed sign-ins"):
        limiter.check(client_key(first))
    if same:
        with pytest.raises(TooManyRequests):
            limiter.check(client_key(second))
    else:
        limiter.check(client_key(second))
