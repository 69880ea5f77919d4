"""The egress guard under every adapter: real SDKs against the fake servers, through an EgressPolicy.

What the service relies on (issue 11, defects 1-3): under a policy an adapter connects only to addresses
the policy checked (pinned: it never asks the system resolver itself), refuses redirects, reads no key or
host from the environment, and a refused request is ``RequestNotSent``, which leaves circuit breakers alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from providers.base import ProviderConfig, create_provider
from providers.egress import EgressPolicy, blocked_reason
from providers.errors import ConfigError, EgressDenied, RequestNotSent
from providers.resilience import Breakers, FallbackTarget, ResilientModel
from providers.types import Message, ModelRequest
from tests.fakes.base import FakeProviderServer, FakeTurn
from tests.fakes.redirect import InternalService, Redirector, table_resolver
from tests.providers.conftest import base_url_for, config_for

ASK = ModelRequest(model="fake-model-1", messages=[Message.user("hi")])


@pytest.fixture
def internal() -> Iterator[InternalService]:
    server = InternalService().start()
    try:
        yield server
    finally:
        server.stop()


def _named(family: str, server: FakeProviderServer, host: str) -> str:
    return base_url_for(family, server).replace("127.0.0.1", host)


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("2002:7f00:1::", "6to4"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "6to4"),  # 6to4 of 169.254.169.254
        ("64:ff9b::7f00:1", "NAT64"),  # well-known NAT64 prefix, 127.0.0.1
        ("64:ff9b:1::a00:1", "NAT64"),  # local-use NAT64 prefix, 10.0.0.1
        ("::127.0.0.1", "IPv4-compatible"),
        ("::ffff:10.1.2.3", "IPv4-mapped"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),  # Teredo client 127.0.0.1 (obfuscated)
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_embed(address: str, embedded: str) -> None:
    why = blocked_reason(ipaddress.ip_address(address))
    assert why is not None
    assert embedded in why


@pytest.mark.parametrize("address", ["2002:5db8:d822::1", "2606:4700:4700::1111", "93.184.216.34"])
def test_public_addresses_and_forms_of_them_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    ["http://[2002:7f00:1::]/v1", "http://[64:ff9b::a9fe:a9fe]/", "http://2130706433/", "http://0x7f.1/", "ftp://x/"],
)
async def test_urls_with_such_hosts_are_refused(url: str) -> None:
    with pytest.raises(EgressDenied):
        await EgressPolicy(resolver=table_resolver({})).check_url(url, what="base_url")


# --------------------------------------------------------------------------- connections, every adapter


@pytest.mark.anyio
async def test_the_connection_goes_to_the_address_the_policy_checked(
    family: str, fake_server: FakeProviderServer
) -> None:
    """``pinned.example`` resolves only through the policy (the system resolver cannot resolve it): the request
    arrives, so the connection used the policy's answer."""
    fake_server.turns.append(FakeTurn(text="pinned"))
    policy = EgressPolicy(
        allowed_hosts=frozenset({f"pinned.example:{fake_server.port}"}),
        resolver=table_resolver({"pinned.example": ["127.0.0.1"]}),
    )
    provider = create_provider(
        config_for(family, fake_server, base_url=_named(family, fake_server, "pinned.example")), egress=policy
    )
    try:
        assert (await provider.complete(ASK)).text == "pinned"
    finally:
        await provider.aclose()
    assert len(fake_server.requests) == 1


@pytest.mark.anyio
async def test_a_name_that_resolves_to_loopback_is_not_connected(family: str, fake_server: FakeProviderServer) -> None:
    """A public-looking name whose answer (now) is loopback: refused where the connection is made, before any
    byte is sent, whatever the check at save time saw (DNS rebinding)."""
    policy = EgressPolicy(resolver=table_resolver({"rebind.example": ["127.0.0.1"]}))
    provider = create_provider(
        config_for(family, fake_server, base_url=_named(family, fake_server, "rebind.example")), egress=policy
    )
    try:
        with pytest.raises(RequestNotSent, match="loopback") as caught:
            await provider.complete(ASK)
        with pytest.raises(RequestNotSent):
            async for _ in provider.stream(ASK):
                pass
    finally:
        await provider.aclose()
    assert fake_server.requests == []
    assert "rebind.example" in str(caught.value)


@pytest.mark.anyio
async def test_an_ip_literal_is_checked_too(family: str, fake_server: FakeProviderServer) -> None:
    provider = create_provider(config_for(family, fake_server), egress=EgressPolicy(resolver=table_resolver({})))
    try:
        with pytest.raises(RequestNotSent, match="loopback"):
            await provider.complete(ASK)
    finally:
        await provider.aclose()
    assert fake_server.requests == []


@pytest.mark.anyio
async def test_redirects_are_refused(family: str, internal: InternalService) -> None:
    """An allowed endpoint that redirects to an internal one: the redirect is refused, the internal service
    sees nothing (the SDKs' clients would otherwise follow it and hand back the internal answer)."""
    redirector = Redirector(internal.origin).start()
    try:
        server_like = type("S", (), {"origin": redirector.origin})()
        policy = EgressPolicy(allowed_hosts=frozenset({f"127.0.0.1:{redirector.port}"}), resolver=table_resolver({}))
        config = config_for(family, server_like, base_url=base_url_for(family, server_like))  # type: ignore[arg-type]
        provider = create_provider(config, egress=policy)
        try:
            with pytest.raises(RequestNotSent, match="redirect"):
                await provider.list_models()
            with pytest.raises(RequestNotSent, match="redirect"):
                await provider.complete(ASK)
        finally:
            await provider.aclose()
        assert redirector.hits  # the allowed endpoint was asked
    finally:
        redirector.stop()
    assert internal.hits == []


@pytest.mark.anyio
async def test_not_sent_requests_leave_the_breaker_alone(family: str, fake_server: FakeProviderServer) -> None:
    breakers = Breakers(failure_threshold=1)
    policy = EgressPolicy(resolver=table_resolver({}))
    provider = create_provider(config_for(family, fake_server), egress=policy)
    model = ResilientModel([FallbackTarget(provider)], breakers=breakers)
    try:
        for _ in range(3):
            with pytest.raises(RequestNotSent):
                await model.complete(ASK)
    finally:
        await provider.aclose()
    assert breakers.for_provider(provider).state == "closed"


# --------------------------------------------------------------------------- the environment


@pytest.mark.anyio
async def test_under_a_policy_no_key_comes_from_the_environment(
    family: str, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(family, fake_server, api_key=None)
    if config.profile.api_key_env:
        monkeypatch.setenv(config.profile.api_key_env, "sk-operator-canary-0123456789")
    policy = EgressPolicy(allowed_hosts=frozenset({f"127.0.0.1:{fake_server.port}"}), resolver=table_resolver({}))
    if config.profile.requires_key:
        with pytest.raises(ConfigError, match="never uses its own"):
            create_provider(config, egress=policy)
        assert create_provider(config) is not None  # locally the environment's key is the user's own
        return
    fake_server.turns.append(FakeTurn(text="no key"))
    provider = create_provider(config, egress=policy)
    try:
        await provider.complete(ASK)
    finally:
        await provider.aclose()
    assert all("canary" not in str(r.headers) for r in fake_server.requests)


def test_header_values_are_secrets_everywhere() -> None:
    config = ProviderConfig(
        provider="openai", api_key="sk-k", extra_headers={"X-Trace": "canary-trace-value", "Auth2": "Token abcdefgh"}
    )
    for shown in (repr(config), str(config.model_dump()), config.model_dump_json(), str(config.extra_headers)):
        assert "canary-trace-value" not in shown
        assert "abcdefgh" not in shown
    assert "canary-trace-value" in config.secrets()
    assert "abcdefgh" in config.secrets()  # the token of a "<scheme> <token>" value too
    assert config.header_values() == {"X-Trace": "canary-trace-value", "Auth2": "Token abcdefgh"}


@pytest.mark.parametrize(
    "headers", [{"X-A": "line\r\nX-Injected: 1"}, {"X-A": "nul\x00"}, {"Bad Name": "v"}, {"": "v"}, {"X:A": "v"}]
)
def test_headers_http_cannot_carry_are_refused_when_the_config_is_made(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="extra_headers") as caught:
        ProviderConfig(provider="openai", api_key="sk-k", extra_headers=headers)
    for value in headers.values():
        if len(value) > 3:
            assert value not in str(caught.value)


def test_breakers_are_kept_per_credential() -> None:
    class Stub:
        def __init__(self, config: ProviderConfig) -> None:
            self.name, self.config = config.provider, config

    url = "https://one.example/v1"
    a = Stub(ProviderConfig(provider="openai", base_url=url, api_key="sk-tenant-a"))
    a2 = Stub(ProviderConfig(provider="openai", base_url=url, api_key="sk-tenant-a", label="again"))
    b = Stub(ProviderConfig(provider="openai", base_url=url, api_key="sk-tenant-b"))
    c = Stub(ProviderConfig(provider="openai", base_url=url, api_key="sk-tenant-a", extra_headers={"X-T": "1"}))
    breakers = Breakers()
    assert breakers.for_provider(a) is breakers.for_provider(a2)  # type: ignore[arg-type]
    assert breakers.for_provider(a) is not breakers.for_provider(b)  # type: ignore[arg-type]
    assert breakers.for_provider(a) is not breakers.for_provider(c)  # type: ignore[arg-type]
    assert "sk-tenant" not in repr(breakers.for_provider(a))  # type: ignore[arg-type]
