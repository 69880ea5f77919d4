# ruff: noqa: PT018 - compound asserts keep each case on one line
"""Repositories over SQLite and PostgreSQL: users, provider configs, MCP servers, OAuth, sessions, tool calls."""

from __future__ import annotations

import pytest
from mcp.client.auth import TokenStorage
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import SecretStr

from providers.errors import ConfigError
from providers.types import Message, TextPart, ToolCallPart, ToolResultPart
from storage import NotFound, SQLStore

pytestmark = pytest.mark.anyio

KEY = "sk-test-AAAAbbbbCCCCdddd1234"


async def test_users_tokens_are_hashed_and_shown_once(store: SQLStore) -> None:
    user = await store.users.create("alice")
    issued = await store.users.issue_token(user.id, "laptop")
    token = issued.token.get_secret_value()
    assert token not in repr(issued)
    assert (await store.users.authenticate(token)) == user
    assert await store.users.authenticate(token + "x") is None
    stored = await store.db.read(lambda c: c.fetch("SELECT * FROM api_tokens"))
    assert token not in str([dict(r) for r in stored])
    await store.users.revoke_token(issued.id)
    assert await store.users.authenticate(token) is None
    [info] = await store.users.tokens(user.id)
    assert info.revoked and info.label == "laptop"


async def test_provider_configs_masked_default_and_resolve(store: SQLStore) -> None:
    user = await store.users.create("bob")
    first = await store.provider_configs.create(
        user.id, "openai", api_key=KEY, label="work", default_model="gpt-4o", extra_headers={"X-Org": "org-secret-9999"}
    )
    second = await store.provider_configs.create(
        user.id, "openai", api_key=SecretStr("sk-other-key-5678"), label="home"
    )
    assert first.is_default and not second.is_default  # the first of a provider becomes its default
    assert first.api_key_masked == "****1234"
    assert first.extra_header_names == ("X-Org",)
    assert KEY not in repr(first)
    await store.provider_configs.set_default(user.id, second.id)
    default = await store.provider_configs.default_for(user.id, "openai")
    assert default is not None and default.id == second.id
    assert [c.is_default for c in await store.provider_configs.list(user.id)] == [False, True]

    config = await store.provider_configs.resolve(user.id, first.id)
    assert config.api_key is not None and config.api_key.get_secret_value() == KEY
    assert config.header_values() == {"X-Org": "org-secret-9999"}
    assert "org-secret-9999" not in repr(config.extra_headers)  # a secret like the key
    assert config.default_model == "gpt-4o" and config.label == "work"
    assert KEY not in repr(config)

    with pytest.raises(ConfigError):
        await store.provider_configs.create(user.id, "no-such-provider", api_key=KEY)
    with pytest.raises(NotFound):
        await store.provider_configs.get(user.id, "missing")


async def test_mcp_servers_per_user_and_global(store: SQLStore) -> None:
    user = await store.users.create("carol")
    await store.mcp_servers.save(
        None, "search", {"url": "https://search.example/mcp"}, headers={"Authorization": "Bearer glob-token-0000"}
    )
    await store.mcp_servers.save(
        user.id, "files", {"command": "mcp-files", "args": ["--root", "/tmp"]}, env={"FILES_TOKEN": "user-token-4242"}
    )
    listed = await store.mcp_servers.list(user.id)
    assert {(s.owner, s.name) for s in listed} == {(None, "search"), (user.id, "files")}
    files = next(s for s in listed if s.name == "files")
    assert files.env_masked == {"FILES_TOKEN": "****4242"}
    assert "user-token" not in repr(listed)
    resolved = await store.mcp_servers.resolve(user.id, "search")  # falls back to the global one
    assert resolved.headers == {"Authorization": "Bearer glob-token-0000"}
    assert "glob-token" not in repr(resolved)
    assert (await store.mcp_servers.resolve(user.id, "files")).env == {"FILES_TOKEN": "user-token-4242"}
    # saving again replaces
    await store.mcp_servers.save(user.id, "files", {"command": "mcp-files"}, env={"FILES_TOKEN": "new-token-7777"})
    assert (await store.mcp_servers.resolve(user.id, "files")).env == {"FILES_TOKEN": "new-token-7777"}
    with pytest.raises(NotFound):
        await store.mcp_servers.resolve(user.id, "nope")


async def test_oauth_token_storage_implements_sdk_protocol(store: SQLStore) -> None:
    user = await store.users.create("dave")
    storage = store.oauth.storage(user.id, "github")
    proto: TokenStorage = storage  # mypy checks that it satisfies the SDK protocol
    assert await proto.get_tokens() is None
    await proto.set_tokens(
        OAuthToken(access_token="gho_access_1111", refresh_token="ghr_refresh_2222", expires_in=3600)
    )
    info = OAuthClientInformationFull(
        client_id="client-1", client_secret="cs-3333", redirect_uris=["http://127.0.0.1:3000/cb"]
    )
    await proto.set_client_info(info)
    tokens = await proto.get_tokens()
    assert (
        tokens is not None and tokens.access_token == "gho_access_1111" and tokens.refresh_token == "ghr_refresh_2222"
    )
    client = await proto.get_client_info()
    assert client is not None and client.client_secret == "cs-3333"
    # keyed per user + server
    assert await store.oauth.storage(user.id, "other").get_tokens() is None
    other_user = await store.users.create("erin")
    assert await store.oauth.storage(other_user.id, "github").get_tokens() is None
    await proto.set_tokens(OAuthToken(access_token="gho_access_5555"))
    assert (await proto.get_tokens()).access_token == "gho_access_5555"  # type: ignore[union-attr]


async def test_sessions_messages_ordered_append_only(store: SQLStore) -> None:
    user = await store.users.create("frank")
    session = await store.sessions.create(user.id, model="gpt-4o", title="t")
    call = ToolCallPart(id="call_1", name="fs.read", arguments={"path": "/a"})
    seqs = await store.messages.append(session.id, Message.user("hi"), Message(role="assistant", parts=[call]))
    assert seqs == [1, 2]
    result = ToolResultPart(call_id="call_1", name="fs.read", content=[TextPart(text="data")])
    assert await store.messages.append(session.id, Message(role="tool", parts=[result])) == [3]
    stored = await store.messages.list(session.id)
    assert [m.seq for m in stored] == [1, 2, 3]
    assert stored[1].message.tool_calls[0] == call
    assert stored[2].message.tool_results[0] == result
    assert [m.seq for m in await store.messages.list(session.id, after=2)] == [3]
    assert (await store.sessions.get(session.id)).message_count == 3
    with pytest.raises(NotFound):
        await store.messages.append("missing-session", Message.user("x"))


async def test_concurrent_appends_get_distinct_ordered_seqs(store: SQLStore) -> None:
    import anyio

    user = await store.users.create("gina")
    session = await store.sessions.create(user.id)

    async def append(i: int) -> None:
        await store.messages.append(session.id, Message.user(f"m{i}"))

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(append, i)
    stored = await store.messages.list(session.id)
    assert [m.seq for m in stored] == list(range(1, 41))
    assert sorted(m.message.text for m in stored) == sorted(f"m{i}" for i in range(40))


async def test_tool_calls_lifecycle(store: SQLStore) -> None:
    user = await store.users.create("hank")
    session = await store.sessions.create(user.id)
    await store.tool_calls.start(session.id, "c1", "fs.read", {"path": "/a"})
    await store.tool_calls.start(session.id, "c2", "fs.write", {"path": "/b"})
    await store.tool_calls.finish(
        session.id, "c1", ToolResultPart(call_id="c1", name="fs.read", content=[TextPart(text="ok")])
    )
    assert await store.tool_calls.interrupt_open(session.id) == 1
    calls = {c.call_id: c for c in await store.tool_calls.list(session.id)}
    assert calls["c1"].status == "finished" and calls["c1"].result is not None
    assert calls["c1"].result.content[0].text == "ok"  # type: ignore[union-attr]
    assert calls["c2"].status == "interrupted" and calls["c2"].result is None
    with pytest.raises(NotFound):  # a finished call cannot finish again
        await store.tool_calls.finish(session.id, "c1", ToolResultPart(call_id="c1", name="fs.read"))
