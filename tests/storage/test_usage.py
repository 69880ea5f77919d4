# ruff: noqa: PT018 - compound asserts keep each case on one line
"""The usage ledger: one row per attempt, NULL for unknown, genai-prices costs, reports and budgets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import genai_prices
import pytest

from providers.types import Message, Usage
from storage import SQLStore, UsageEntry, price_usd

pytestmark = pytest.mark.anyio


def expected_cost(provider_id: str, model: str, **tokens: int) -> Decimal:
    exact = genai_prices.calc_price(genai_prices.Usage(**tokens), model, provider_id=provider_id).total_price
    return Decimal(exact).quantize(Decimal("1e-9"))


async def test_streamed_call_with_usage(store: SQLStore) -> None:
    user = await store.users.create("u")
    session = await store.sessions.create(user.id)
    usage = Usage(
        input_tokens=1200, output_tokens=300, cache_read_tokens=1000, cache_write_tokens=None, reasoning_tokens=50
    )
    entry = UsageEntry(
        user_id=user.id,
        session_id=session.id,
        provider="openai",
        config_id="cfg1",
        model="gpt-4o",
        usage=usage,
        streamed=True,
        latency_ms=812.5,
        ttft_ms=120.25,
        request_id="req_abc",
    )
    await store.record_step(session.id, [Message.assistant("answer")], [entry])
    [row] = await store.usage.rows(session_id=session.id)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["reasoning_tokens"]) == (
        1200,
        300,
        1000,
        50,
    )
    assert row["cache_write_tokens"] is None
    assert row["status"] == "ok" and row["streamed"] == 1 and row["request_id"] == "req_abc"
    assert row["latency_ms"] == 812.5 and row["ttft_ms"] == 120.25 and row["config_id"] == "cfg1"
    assert row["cost_usd"] == expected_cost(
        "openai", "gpt-4o", input_tokens=1200, output_tokens=300, cache_read_tokens=1000
    )
    assert row["cost_usd"] > 0
    assert row["day"] == dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert [m.message.text for m in await store.messages.list(session.id)] == ["answer"]


async def test_aborted_stream_records_partial_or_unknown_usage(store: SQLStore) -> None:
    user = await store.users.create("u")
    base = {"user_id": user.id, "provider": "anthropic", "model": "claude-sonnet-4-5", "streamed": True}
    await store.usage.record(
        UsageEntry(**base, usage=Usage(input_tokens=5000), status="aborted", error_class="StreamInterrupted")  # type: ignore[arg-type]
    )
    await store.usage.record(UsageEntry(**base, usage=Usage(), status="aborted", error_class="CancelledError"))  # type: ignore[arg-type]
    partial, unknown = await store.usage.rows(user_id=user.id)
    assert partial["input_tokens"] == 5000 and partial["output_tokens"] is None
    assert partial["cost_usd"] is None  # a partial count would under-bill: cost unknown, not guessed
    assert all(unknown[k] is None for k in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"))
    assert unknown["status"] == "aborted" and unknown["error_class"] == "CancelledError"
    [totals] = await store.usage.report(["user"], user_id=user.id)
    assert totals.calls == 2 and totals.failed_calls == 2
    assert totals.tokens_unknown == 2 and totals.cost_unknown == 2
    assert totals.input_tokens is None  # one attempt did not report it: the sum is unknown, not 5000
    assert totals.known.input_tokens == 5000  # what is known for sure
    assert totals.cost_usd is None


async def test_failed_attempt_then_retry(store: SQLStore) -> None:
    user = await store.users.create("u")
    common = {"user_id": user.id, "provider": "openai", "model": "gpt-4o"}
    await store.usage.record(
        UsageEntry(**common, usage=Usage(), status="error", error_class="RateLimited", attempt=1, latency_ms=30.0)  # type: ignore[arg-type]
    )
    await store.usage.record(UsageEntry(**common, usage=Usage(input_tokens=10, output_tokens=5), attempt=2))  # type: ignore[arg-type]
    failed, ok = await store.usage.rows(user_id=user.id)
    assert (failed["attempt"], failed["status"], failed["error_class"]) == (1, "error", "RateLimited")
    assert failed["input_tokens"] is None and failed["cost_usd"] is None
    assert (ok["attempt"], ok["status"]) == (2, "ok") and ok["cost_usd"] is not None


async def test_unknown_model_cost_is_null_and_ollama_is_free(store: SQLStore) -> None:
    user = await store.users.create("u")
    await store.usage.record(
        UsageEntry(
            user_id=user.id,
            provider="openai",
            model="gpt-does-not-exist-9",
            usage=Usage(input_tokens=1, output_tokens=1),
        )
    )
    await store.usage.record(
        UsageEntry(
            user_id=user.id, provider="ollama", model="llama3.2", usage=Usage(input_tokens=900, output_tokens=100)
        )
    )
    await store.usage.record(UsageEntry(user_id=user.id, provider="ollama", model="qwen3", usage=Usage()))
    unknown, ollama, ollama_unknown_tokens = await store.usage.rows(user_id=user.id)
    assert unknown["cost_usd"] is None and unknown["input_tokens"] == 1
    assert ollama["cost_usd"] == 0 and ollama["output_tokens"] == 100
    assert ollama_unknown_tokens["cost_usd"] == 0 and ollama_unknown_tokens["input_tokens"] is None
    assert price_usd("openai-compatible", "gpt-4o", Usage(input_tokens=1, output_tokens=1)) is None


async def test_reports_and_budgets(store: SQLStore) -> None:
    alice = await store.users.create("alice")
    bob = await store.users.create("bob")
    s1 = await store.sessions.create(alice.id)
    s2 = await store.sessions.create(alice.id)
    rows = [
        (alice.id, s1.id, "openai", "gpt-4o", 1000, 100),
        (alice.id, s1.id, "openai", "gpt-4o", 2000, 200),
        (alice.id, s2.id, "anthropic", "claude-sonnet-4-5", 3000, 300),
        (bob.id, None, "ollama", "llama3.2", 50, 5),
    ]
    await store.usage.record_many(
        [
            UsageEntry(user_id=u, session_id=s, provider=p, model=m, usage=Usage(input_tokens=i, output_tokens=o))
            for u, s, p, m, i, o in rows
        ]
    )
    by_user = {t.group["user"]: t for t in await store.usage.report(["user"])}
    assert (
        by_user[alice.id].calls == 3
        and by_user[alice.id].input_tokens == 6000
        and by_user[alice.id].output_tokens == 600
    )
    assert by_user[bob.id].cost_usd == 0
    gpt = expected_cost("openai", "gpt-4o", input_tokens=1000, output_tokens=100) + expected_cost(
        "openai", "gpt-4o", input_tokens=2000, output_tokens=200
    )
    by_model = {(t.group["provider"], t.group["model"]): t for t in await store.usage.report(["provider", "model"])}
    assert by_model[("openai", "gpt-4o")].cost_usd == gpt
    by_session = {t.group["session"]: t.calls for t in await store.usage.report(["session"], user_id=alice.id)}
    assert by_session == {s1.id: 2, s2.id: 1}
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    [day] = await store.usage.report(["day"], since_day=today, until_day=today)
    assert day.group == {"day": today} and day.calls == 4
    assert await store.usage.report(["day"], until_day="2000-01-01") == []

    status = await store.usage.check_budget(alice.id)
    assert status.limit_usd is None and not status.exceeded and status.spent_tokens == 6600
    await store.usage.set_budget(alice.id, monthly_usd="0.01", monthly_tokens=None)
    status = await store.usage.check_budget(alice.id)
    assert status.spent_usd == by_user[alice.id].cost_usd and status.spent_usd > Decimal("0.01")
    assert status.exceeded and status.remaining_usd == 0
    await store.usage.set_budget(alice.id, monthly_usd=None, monthly_tokens=10_000)
    status = await store.usage.check_budget(alice.id)
    assert not status.exceeded and status.remaining_tokens == 3400
    assert not (await store.usage.check_budget(alice.id, month="1999-12")).exceeded
