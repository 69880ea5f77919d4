"""Fixtures: one started fake server per provider wire, and adapters pointed at them.

Each fake lives in ``tests/fakes/<provider>.py`` and is imported lazily so that a test module only
pays for the SDKs and fakes it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from providers.base import Provider, ProviderConfig, create_provider
from tests.fakes.base import FakeProviderServer

FAKE_CLASSES = {
    "anthropic": "tests.fakes.anthropic:FakeAnthropicServer",
    "openai": "tests.fakes.openai:FakeOpenAIServer",
    "gemini": "tests.fakes.gemini:FakeGeminiServer",
    "ollama": "tests.fakes.ollama:FakeOllamaServer",
}

TEST_KEYS = {
    "anthropic": "sk-ant-test-0123456789abcdefSECRET",
    "openai": "sk-test-0123456789abcdefSECRET",
    "gemini": "AIzaTest0123456789abcdefSECRET",
    "ollama": None,
}


def start_fake(family: str) -> FakeProviderServer:
    module_name, _, class_name = FAKE_CLASSES[family].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    server: FakeProviderServer = cls()
    return server.start()


def base_url_for(family: str, server: FakeProviderServer) -> str:
    """The base_url each SDK expects: OpenAI includes /v1, the others take the bare origin."""
    return server.origin + "/v1" if family == "openai" else server.origin


def config_for(family: str, server: FakeProviderServer, **overrides: Any) -> ProviderConfig:
    key = TEST_KEYS[family]
    values: dict[str, Any] = {
        "provider": family,
        "base_url": base_url_for(family, server),
        "default_model": "fake-model-1",
        "timeout": 5.0,
        "max_retries": 0,
    }
    if key is not None:
        values["api_key"] = key
    values.update(overrides)
    return ProviderConfig(**values)


@pytest.fixture(params=sorted(FAKE_CLASSES))
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake_server(family: str) -> Iterator[FakeProviderServer]:
    server = start_fake(family)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_provider() -> Callable[..., Provider]:
    """Build an adapter for ``family`` pointed at ``server`` (config overrides as keyword arguments)."""

    def build(family: str, server: FakeProviderServer, **overrides: Any) -> Provider:
        return create_provider(config_for(family, server, **overrides))

    return build
