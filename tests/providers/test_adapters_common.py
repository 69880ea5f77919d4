"""Behaviour every adapter shares, checked on all four wires with the same test."""

from __future__ import annotations

import traceback
from collections.abc import Iterator

import pytest

from providers.base import Provider, create_provider
from providers.errors import AuthenticationError, ProviderError
from providers.types import Message, ModelRequest, ResponseDone
from tests.fakes.base import FakeProviderServer, Fault
from tests.providers.conftest import FAKE_CLASSES, TEST_KEYS, config_for, start_fake

KEYED = sorted(family for family in FAKE_CLASSES if TEST_KEYS[family])


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeProviderServer]]:
    started = {family: start_fake(family) for family in FAKE_CLASSES}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


def _ask() -> ModelRequest:
    return ModelRequest(model="", messages=[Message.user("hello")])


async def _call(provider: Provider, *, streaming: bool) -> None:
    if streaming:
        async for _ in provider.stream(_ask()):
            pass
    else:
        await provider.complete(_ask())


@pytest.mark.anyio
@pytest.mark.parametrize("family", sorted(FAKE_CLASSES))
async def test_sequential_calls_reuse_one_connection(servers: dict[str, FakeProviderServer], family: str) -> None:
    """A stream read to its end hands its connection back: no new TCP (and TLS) handshake per call."""
    server = servers[family]
    provider = create_provider(config_for(family, server))
    try:
        before = len(server.requests)
        for _ in range(3):
            events = [event async for event in provider.stream(_ask())]
            assert isinstance(events[-1], ResponseDone)
        await provider.complete(_ask())
        ports = {request.client_port for request in server.requests[before:]}
        assert len(server.requests) - before == 4
        assert len(ports) == 1, f"{family}: each call opened a new connection ({len(ports)} ports)"
    finally:
        await provider.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("family", KEYED)
@pytest.mark.parametrize("streaming", [False, True])
async def test_rejected_key_never_reaches_message_traceback_or_repr(
    servers: dict[str, FakeProviderServer], family: str, streaming: bool
) -> None:
    server = servers[family]
    key = TEST_KEYS[family]
    assert key is not None
    # Providers echo (part of) a rejected key back; the error must not carry it anywhere.
    server.faults.append(Fault(status=401, message=f"Incorrect API key provided: {key}. Check it."))
    provider = create_provider(config_for(family, server))
    try:
        with pytest.raises(ProviderError) as caught:
            await _call(provider, streaming=streaming)
        error = caught.value
        assert isinstance(error, AuthenticationError), error
        rendered = "".join(traceback.format_exception(error)) + repr(error) + repr(provider)
        assert key not in rendered
        assert key[-12:] not in rendered
    finally:
        server.faults.clear()
        await provider.aclose()
