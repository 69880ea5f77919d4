"""A real routekit service (uvicorn on 127.0.0.1, a free port) in a background thread, and helpers.

The service runs in its own thread and event loop, with its own SQLite store; tests talk to it over
HTTP with httpx. ``Service.call(coro_fn)`` runs a coroutine on the service's loop (for the few set-ups
that have no endpoint, such as writing usage rows). Every log record of the process is captured so that
tests can scan them for secrets, and so is every response body read through ``Service.client``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from agent.http import ServiceSettings, create_app
from agent.http.settings import hash_token
from storage import SQLStore, open_store
from storage.crypto import parse_master_keys
from tests.fakes.base import FakeProviderServer
from tests.fakes.openai import FakeOpenAIServer
from tests.providers.conftest import TEST_KEYS, start_fake

ADMIN_TOKEN = "rka_test-admin-token-0123456789"
OPENAI_KEY: str = TEST_KEYS["openai"] or ""
assert OPENAI_KEY
SECOND_KEY = "sk-test-second-key-9876543210zyxwSECRET"
MASTER_KEY = "v1:" + base64.b64encode(bytes(range(32))).decode()
T = TypeVar("T")

# Names the test resolver answers without real DNS (the service's resolver hook).
FAKE_DNS = {
    "internal.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
    "public.example": ["93.184.216.34"],
    "v6-local.example": ["::1"],
}


async def fake_resolver(host: str) -> list[str]:
    if host in FAKE_DNS:
        return FAKE_DNS[host]
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    raise OSError(f"test resolver: unknown host {host}")


class CapturedLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a broken record must not break the service under test
            text = repr(record.msg)
        self.lines.append(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One running service. ``bodies`` collects every response body read through ``client()``."""

    def __init__(self, tmp: Path, settings: ServiceSettings) -> None:
        self.tmp = tmp
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.store: SQLStore | None = None
        self.server: uvicorn.Server | None = None
        self.app: Any = None
        self.bodies: list[str] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="routekit-service", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.store = await open_store(
            f"sqlite:///{self.tmp / 'routekit.db'}", keyring=parse_master_keys(MASTER_KEY), durable=False
        )
        try:
            app = self.app = create_app(self.store, self.settings)
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_config=None, access_log=True, lifespan="on"
            )
            self.server = uvicorn.Server(config)
            serving = asyncio.create_task(self.server.serve())
            while not self.server.started and not serving.done():
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving
        finally:
            await self.store.close()

    def start(self) -> Service:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self.server is not None, "the service did not start"
        assert self.server.started, "the service did not start"
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self._thread.join(15)

    def call(self, make: Callable[[SQLStore], Awaitable[T]]) -> T:
        """Run ``make(store)`` on the service's own event loop and return its result."""
        assert self.loop is not None
        assert self.store is not None
        store = self.store
        return asyncio.run_coroutine_threadsafe(_awaited(make(store)), self.loop).result(30)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def record(response: httpx.Response) -> None:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                response.read()
                self.bodies.append(response.text)
                self.bodies.append(str(dict(response.headers)))

        return httpx.Client(
            base_url=self.url, headers=headers, timeout=30, event_hooks={"response": [record]}, **kwargs
        )

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_TOKEN)

    def new_user(self, name: str) -> tuple[str, str]:
        """Create a user through the admin API; (user id, API token)."""
        with self.admin() as admin:
            answer = admin.post("/api/admin/users", json={"name": name})
            assert answer.status_code == 201, answer.text
            data = answer.json()
        return data["user_id"], data["token"]

    def new_openai_user(self, name: str, fake: FakeProviderServer, **config: Any) -> tuple[str, str]:
        """A user whose default config is OpenAI at ``fake`` with the test key (``config`` adds fields)."""
        user_id, token = self.new_user(name)
        body = {"provider": "openai", "api_key": OPENAI_KEY, "base_url": fake.origin + "/v1", **config}
        with self.client(token) as c:
            created = c.post("/api/user/llm-config", json=body)
            assert created.status_code == 201, created.text
        return user_id, token


async def _awaited(value: Awaitable[T]) -> T:
    return await value


def base_settings(fake: FakeProviderServer, **overrides: Any) -> ServiceSettings:
    settings = ServiceSettings(
        admin_token_sha256=hash_token(ADMIN_TOKEN),
        max_body_bytes=64 * 1024,
        requests_per_minute=100_000,
        failed_auth_per_minute=100_000,  # every test client is 127.0.0.1: tests of the limit set their own
        max_concurrent_runs=2,
        allowed_hosts=frozenset({f"127.0.0.1:{fake.port}"}),
        resolver=fake_resolver,
        approval_timeout=30.0,
    )
    return replace(settings, **overrides)


@pytest.fixture(scope="module")
def captured_logs() -> Iterator[CapturedLogs]:
    handler = CapturedLogs()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet = [logging.getLogger(n) for n in ("asyncio", "aiosqlite", "hpack", "httpcore", "httpcore2")]
    old = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for q, level in zip(quiet, old, strict=True):
            q.setLevel(level)


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    server = start_fake("openai")
    assert isinstance(server, FakeOpenAIServer)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeProviderServer, captured_logs: CapturedLogs
) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("service"), base_settings(fake_openai)).start()
    try:
        yield svc
    finally:
        svc.stop()
