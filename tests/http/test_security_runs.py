"""One run per session, claimed in the database: concurrent posts, another process's claim, lease expiry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.base import FakeTurn, Fault
from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import MASTER_KEY, Service, base_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def claims_service(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAIServer, captured_logs: Any
) -> Iterator[Service]:
    # Room for many runs per user, so that only the session claim can refuse the concurrent posts; a short
    # lease, so that a run lasting several leases shows the renewal.
    settings = base_settings(fake_openai, max_concurrent_runs=20, run_lease_seconds=0.9)
    svc = Service(tmp_path_factory.mktemp("claims"), settings).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def token(claims_service: Service, fake_openai: FakeOpenAIServer) -> str:
    _, token = claims_service.new_openai_user("claimer", fake_openai, default_model="fake-model-1")
    return token


@pytest.fixture
def fake(fake_openai: FakeOpenAIServer) -> FakeOpenAIServer:
    fake_openai.reset()
    return fake_openai


def new_session(client: httpx.Client) -> str:
    created = client.post("/api/sessions", json={})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def post(service: Service, token: str, session_id: str, content: str) -> tuple[int, str]:
    """One POST of a message, read to the end: (status, body)."""
    with (
        service.client(token) as c,
        c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": content}) as response,
    ):
        return response.status_code, response.read().decode()


def wait_for_run(service: Service, token: str, session_id: str, running: bool, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    with service.client(token) as c:
        while c.get(f"/api/sessions/{session_id}").json()["session"]["running"] is not running:
            assert time.monotonic() < deadline, f"the session never became running={running}"
            time.sleep(0.05)


def test_ten_concurrent_posts_one_run(claims_service: Service, token: str, fake: FakeOpenAIServer) -> None:
    fake.faults.append(Fault(delay=8.0))  # the winner's model call outlasts the other nine posts, even under load
    fake.turns.extend(FakeTurn(text=f"answer {n}") for n in range(10))
    with claims_service.client(token) as c:
        session_id = new_session(c)
    barrier = threading.Barrier(10)

    def one(n: int) -> tuple[int, str]:
        barrier.wait()
        return post(claims_service, token, session_id, f"prompt {n}")

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(one, range(10)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * 9, statuses
    refusals = [body for status, body in answers if status == 409]
    assert all("already running" in body for body in refusals)
    [stream] = [body for status, body in answers if status == 200]
    assert "event: final" in stream
    with claims_service.client(token) as c:
        history = c.get(f"/api/sessions/{session_id}").json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]  # one run, not interleaved
    assert history["messages"][1]["parts"][0]["text"] == "answer 0"
    assert history["session"]["running"] is False  # released when the run ended
    assert len(fake.requests) == 1


def test_the_claim_is_renewed_while_the_run_lasts(claims_service: Service, token: str, fake: FakeOpenAIServer) -> None:
    fake.faults.append(Fault(delay=3.0))  # more than three leases of 0.9 s
    fake.turns.append(FakeTurn(text="slow answer"))
    with claims_service.client(token) as c:
        session_id = new_session(c)
    result: list[tuple[int, str]] = []
    runner = threading.Thread(target=lambda: result.append(post(claims_service, token, session_id, "slow")))
    runner.start()
    try:
        wait_for_run(claims_service, token, session_id, running=True)
        time.sleep(2.0)  # past two lease lengths: only renewal keeps the claim
        assert post(claims_service, token, session_id, "second")[0] == 409
        with claims_service.client(token) as c:
            assert c.get(f"/api/sessions/{session_id}").json()["session"]["running"] is True
            deleted = c.delete(f"/api/sessions/{session_id}")
            assert deleted.status_code == 409
            assert "running" in deleted.json()["detail"]
    finally:
        runner.join(30)
    assert result[0][0] == 200
    assert "slow answer" in result[0][1]
    wait_for_run(claims_service, token, session_id, running=False, timeout=1.0)
    with claims_service.client(token) as c:
        assert c.delete(f"/api/sessions/{session_id}").status_code == 204


def test_a_dropped_client_releases_the_claim(claims_service: Service, token: str, fake: FakeOpenAIServer) -> None:
    fake.faults.append(Fault(delay=30.0))  # the model never answers while the client waits
    with claims_service.client(token) as c:
        session_id = new_session(c)
        with c.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": "hang"}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("event: run_started"):
                    break
        # The connection is closed: the run is cancelled and its claim released (not left to expire).
    wait_for_run(claims_service, token, session_id, running=False, timeout=5.0)
    fake.faults.clear()
    fake.turns.append(FakeTurn(text="after the drop"))
    status, body = post(claims_service, token, session_id, "again")
    assert status == 200
    assert "after the drop" in body


def test_a_claim_held_by_another_process_then_expired(
    claims_service: Service, token: str, fake: FakeOpenAIServer
) -> None:
    with claims_service.client(token) as c:
        session_id = new_session(c)
    db_url = f"sqlite:///{claims_service.tmp / 'routekit.db'}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.storage._claim_worker", db_url, session_id, "5"],
        cwd=ROOT,
        env={**os.environ, "ROUTEKIT_MASTER_KEY": MASTER_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line.startswith("claimed "), line + (worker.stderr.read() if worker.stderr else "")
        status, body = post(claims_service, token, session_id, "while another process holds it")
        assert status == 409
        assert "already running" in body
        with claims_service.client(token) as c:
            assert c.get(f"/api/sessions/{session_id}").json()["session"]["running"] is True
            listed = {s["id"]: s["running"] for s in c.get("/api/sessions").json()}
            assert listed[session_id] is True
            assert c.delete(f"/api/sessions/{session_id}").status_code == 409
        os.kill(worker.pid, signal.SIGKILL)  # dies holding the claim
        worker.wait(10)
        # Taken over once the dead process's lease runs out; no one had to clean up.
        fake.turns.append(FakeTurn(text="taken over"))
        wait_for_run(claims_service, token, session_id, running=False, timeout=30.0)
        status, body = post(claims_service, token, session_id, "after the lease")
        assert status == 200
        assert "taken over" in body
        assert len(fake.requests) == 1  # the refused post never reached the provider
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def test_the_service_settles_model_calls_of_runs_that_died(claims_service: Service, token: str) -> None:
    """A run on another instance died mid-call (its claim lapsed): this instance records the call as
    interrupted on its own, without anyone resuming the session."""
    from storage import SQLStore
    from storage.attempts import new_open_attempt

    with claims_service.client(token) as c:
        session_id = new_session(c)

    async def orphan(store: SQLStore) -> str:
        record = await store.sessions.get(session_id)
        attempt = new_open_attempt(
            record.user_id, "openai", "gpt-4.1-mini", session_id=session_id, run_id="run-of-a-dead-instance"
        )
        await store.open_attempts.open(attempt)
        return attempt.id

    attempt_id = claims_service.call(orphan)
    deadline = time.monotonic() + 15
    with claims_service.client(token) as c:
        while True:
            report = c.get("/api/usage", params={"session_id": session_id}).json()
            if report["total"] is not None:
                break
            assert time.monotonic() < deadline, "the orphaned call was never recorded"
            time.sleep(0.1)
    assert report["total"]["calls"] == 1
    assert report["total"]["failed_calls"] == 1
    assert report["total"]["input_tokens"] is None
    assert report["total"]["cost_usd"] is None
    rows = claims_service.call(lambda store: store.usage.rows(session_id=session_id))
    assert [(r["id"], r["status"]) for r in rows] == [(attempt_id, "interrupted")]
