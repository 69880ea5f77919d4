"""Unknown is null in every total of the service: the run's final event, its usage events and ``/api/usage``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from providers.types import Usage
from storage import SQLStore, UsageEntry
from tests.fakes.base import FakeTurn
from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import Service


@pytest.fixture
def fake(fake_openai: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    fake_openai.reset()
    try:
        yield fake_openai
    finally:
        fake_openai.reset()


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.split("\n\n"):
        lines = block.splitlines()
        kind = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = "".join(line[6:] for line in lines if line.startswith("data: "))
        if kind and data:
            out.append((kind, json.loads(data)))
    return out


def test_a_run_reports_unreported_counts_as_null(service: Service, fake: FakeOpenAIServer) -> None:
    fake.usage_details = False  # an OpenAI-compatible server that sends no cached/reasoning token details
    fake.turns.append(FakeTurn(text="no details"))
    user_id, token = service.new_openai_user("usage-reader", fake)
    with service.client(token) as c:
        session = c.post("/api/sessions", json={"model": "fake-model-1"}).json()
        with c.stream("POST", f"/api/sessions/{session['id']}/messages", json={"content": "hi"}) as response:
            assert response.status_code == 200
            run = events(response.read().decode())
    final = dict(run)["final"]["result"]
    assert final["usage"]["input_tokens"] == 42
    assert final["usage"]["cache_read_tokens"] is None  # not 0
    assert final["usage"]["reasoning_tokens"] is None
    assert final["usage"]["cache_write_tokens"] is None
    [usage_event] = [data for kind, data in run if kind == "usage"]
    assert usage_event["total"]["cache_read_tokens"] is None
    assert usage_event["step"]["cache_read_tokens"] is None

    async def seed(store: SQLStore) -> None:  # a priced call with every count, and one with none
        full = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=0, reasoning_tokens=0)
        await store.usage.record_many(
            [
                UsageEntry(user_id, "openai", "gpt-4.1-mini", full.model_copy(update={"cache_write_tokens": 0})),
                UsageEntry(user_id, "openai", "gpt-4.1-mini", Usage(), status="error"),
            ]
        )

    service.call(seed)
    with service.client(token) as c:
        report = c.get("/api/usage", params={"by": "model"}).json()
    groups = {g["group"]["model"]: g for g in report["groups"]}
    run_group = groups["fake-model-1"]  # the run above: counted, not priced
    assert run_group["input_tokens"] == 42
    assert run_group["cache_read_tokens"] is None
    assert run_group["cost_usd"] is None  # not "0"
    assert run_group["cost_unknown"] == 1
    priced = groups["gpt-4.1-mini"]
    assert priced["input_tokens"] is None  # the failed attempt reported nothing
    assert priced["known"]["input_tokens"] == 1000
    assert priced["tokens_unknown"] == 1
    assert priced["cost_usd"] is None
    assert float(priced["known"]["cost_usd"]) > 0
    total = report["total"]
    assert total["calls"] == 3
    assert total["input_tokens"] is None
    assert total["known"]["input_tokens"] == 1042
    assert total["cost_usd"] is None
    assert total["cost_unknown"] == 2
    assert "E" not in total["known"]["cost_usd"]  # a plain decimal, never 1E+1
