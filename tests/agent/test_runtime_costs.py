"""What the per-run cost work changed: shared adapters, merged durable writes, the budget check.

Behaviour only (speed is measured in bench/agent.py): an adapter is shared by sessions of one event loop and
closed with the loop; a tool call's start is durable (with the step that asked for it) before the tool runs;
a new session is stored by its first write, or when it closes.
"""

from __future__ import annotations

import gc
import threading
import warnings
from pathlib import Path

import anyio
import pytest

from agent import Limits, Session
from mcp_bridge import McpHub
from providers.base import adapter_key, close_shared_providers, shared_provider
from storage import SQLStore, open_store
from tests.fakes.base import FakeProviderServer, FakeTurn
from tests.providers.conftest import TEST_KEYS, config_for

from .conftest import open_session, read_log, tool_turn

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("family", ["anthropic", "openai"])
async def test_sessions_share_one_adapter_and_closing_a_session_keeps_it(
    family: str, fake: FakeProviderServer, store: SQLStore
) -> None:
    config = config_for(family, fake)
    adapter, shared = await shared_provider(config)
    assert shared
    again, _ = await shared_provider(config_for(family, fake))  # an equal config: the same adapter
    assert again is adapter
    other, _ = await shared_provider(config_for(family, fake, timeout=7.0))
    assert other is not adapter
    for _ in range(2):
        fake.turns.append(FakeTurn(text="hi"))
        async with await Session.open(provider=config, store=store, limits=Limits(check_budget=False)) as session:
            assert (await session.run("hello")).text == "hi"
    assert not adapter._client.is_closed()  # type: ignore[attr-defined]  # sessions do not close shared ones
    await close_shared_providers()
    assert adapter._client.is_closed()  # type: ignore[attr-defined]
    fresh, _ = await shared_provider(config)
    assert fresh is not adapter
    await close_shared_providers()


def test_the_cache_key_is_a_digest_without_the_secret() -> None:
    from providers.base import ProviderConfig

    key = TEST_KEYS["anthropic"]
    assert key is not None
    config = ProviderConfig(provider="anthropic", api_key=key, base_url="http://127.0.0.1:1")
    digest = adapter_key(config)
    assert key not in digest
    assert len(digest) == 64
    rotated = ProviderConfig(provider="anthropic", api_key=key + "2", base_url="http://127.0.0.1:1")
    assert adapter_key(rotated) != digest


def test_the_cache_key_follows_the_config_and_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from providers.base import ProviderConfig

    monkeypatch.setenv("ROUTEKIT_TEST_KEY", "sk-first")
    config = ProviderConfig(
        provider="openai", api_key_env="ROUTEKIT_TEST_KEY", base_url="http://127.0.0.1:1", options={"a": {"b": 1}}
    )
    first = adapter_key(config)
    assert adapter_key(config) == first

    def fresh_key() -> str:  # the key of an equal config built anew
        return adapter_key(ProviderConfig.model_validate(config.model_dump()))

    config.options["a"]["b"] = 2  # a nested option changed in place
    assert adapter_key(config) != first
    assert adapter_key(config) == fresh_key()
    config.timeout = 9.0  # a field changed in place
    assert adapter_key(config) == fresh_key()
    changed = adapter_key(config)
    monkeypatch.setenv("ROUTEKIT_TEST_KEY", "sk-rotated")  # the key in the environment rotated
    assert adapter_key(config) != changed
    assert adapter_key(config) == fresh_key()
    assert "sk-rotated" not in repr(config)


def test_equal_configs_have_one_key_and_stay_equal() -> None:
    from providers.base import ProviderConfig

    first = ProviderConfig(provider="openai", api_key="sk-a", base_url="http://127.0.0.1:1")
    second = ProviderConfig(provider="openai", api_key="sk-a", base_url="http://127.0.0.1:1")
    assert adapter_key(first) == adapter_key(second)
    assert first == second
    headers = ProviderConfig(
        provider="openai", api_key="sk-a", base_url="http://127.0.0.1:1", extra_headers={"X-A": "1"}
    )
    assert adapter_key(headers) != adapter_key(first)  # header values shape the client, though dumps mask them


@pytest.mark.parametrize("family", ["anthropic"])
def test_shared_adapters_close_when_the_event_loop_ends(family: str, fakes: dict[str, FakeProviderServer]) -> None:
    fake = fakes[family]
    fake.turns.append(FakeTurn(text="hi"))
    config = config_for(family, fake)
    found: list[object] = []

    async def main() -> None:
        adapter, _ = await shared_provider(config)
        found.append(adapter)
        from providers.types import Message, ModelRequest

        response = await adapter.complete(ModelRequest(model="fake-model-1", messages=[Message.user("x")]))
        assert response.text == "hi"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Its own event loop (in a thread: this one belongs to the test runner), shut down on return.
        worker = threading.Thread(target=anyio.run, args=(main,))
        worker.start()
        worker.join(60)
        gc.collect()
    assert found, "the event loop did not run"
    assert found[0]._client.is_closed()  # type: ignore[attr-defined]
    assert not [w for w in caught if "nclosed" in str(w.message)], [str(w.message) for w in caught]


@pytest.mark.parametrize("family", ["anthropic"])
async def test_step_and_tool_start_are_durable_while_the_tool_runs(
    family: str, fake: FakeProviderServer, store: SQLStore, hub: McpHub, tool_log: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    fake.turns.append(tool_turn(family, ("t.wait_for", {"path": str(gate)})))
    fake.turns.append(FakeTurn(text="done"))
    db_url = f"sqlite:///{store.db.description.removeprefix('sqlite:///')}"  # type: ignore[attr-defined]
    async with await open_session(family, fake, store, hub) as session, anyio.create_task_group() as tg:

        async def run() -> None:
            assert (await session.run("wait please")).text == "done"

        tg.start_soon(run)
        with anyio.fail_after(30):
            while not any(e["arguments"].get("path") == str(gate) for e in read_log(tool_log)):
                await anyio.sleep(0.02)
        # The tool is running: another connection sees the step, its usage and the call's start.
        key_dir = Path(db_url.removeprefix("sqlite:///")).parent
        other = await open_store(db_url, key_dir=key_dir)
        try:
            messages = [m.message for m in await other.messages.list(session.session_id)]
            assert [m.role for m in messages] == ["user", "assistant"]
            [call] = messages[-1].tool_calls
            [record] = await other.tool_calls.list(session.session_id)
            assert (record.call_id, record.status) == (call.id, "started")
            assert len(await other.usage.rows(session_id=session.session_id)) == 1
        finally:
            await other.close()
        gate.write_text("go")
    [record] = await store.tool_calls.list(session.session_id)
    assert record.status == "finished"


@pytest.mark.parametrize("family", ["openai"])
async def test_a_new_session_is_stored_by_its_first_write_or_when_closed(
    family: str, fake: FakeProviderServer, store: SQLStore
) -> None:
    config = config_for(family, fake)
    session = await Session.open(provider=config, store=store, title="later", limits=Limits(check_budget=False))
    async with session:
        fake.turns.append(FakeTurn(text="hi"))
        await session.run("hello")
        record = await store.sessions.get(session.session_id)
        assert (record.title, record.message_count) == ("later", 2)
    idle = await Session.open(provider=config, store=store, system="be brief")
    await idle.aclose()  # never ran: still stored, so it can be resumed
    record = await store.sessions.get(idle.session_id)
    assert record.metadata == {"system": "be brief"}
    assert record.message_count == 0


async def test_budget_is_only_scanned_when_the_user_has_one(store: SQLStore) -> None:
    user = await store.users.create("budgeted")
    assert await store.usage.active_budget(user.id) is None
    assert (await store.usage.check_budget(user.id)).limit_usd is None  # the report still works
    await store.usage.set_budget(user.id, monthly_usd="1.50", monthly_tokens=None)
    status = await store.usage.active_budget(user.id)
    assert status is not None
    assert status.remaining_usd is not None
    assert float(status.remaining_usd) == 1.5


async def test_sessions_share_the_process_circuit_breakers(
    fakes: dict[str, FakeProviderServer], store: SQLStore
) -> None:
    """A failing endpoint should fail fast for every session (the service runs many), not just within one."""
    config = config_for("openai", fakes["openai"])
    limits = Limits(check_budget=False)
    first = await Session.open(provider=config, store=store, limits=limits)
    second = await Session.open(provider=config, store=store, limits=limits)
    async with first, second:
        assert first.model.breakers is second.model.breakers
        adapter = first.model.targets[0].provider
        assert first.model.breakers.for_provider(adapter) is second.model.breakers.for_provider(adapter)
