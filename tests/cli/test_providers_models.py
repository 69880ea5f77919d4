"""``routekit providers --models`` through the real executable: the per-model profiles, offline and live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.profiles import PROFILES
from tests.cli.conftest import Cli, openai_url
from tests.fakes.base import FakeProviderServer
from tests.providers.conftest import start_fake


@pytest.fixture
def listed_openai(openai_fake: FakeProviderServer) -> Iterator[FakeProviderServer]:
    """The module's OpenAI fake, listing real model names for the duration of one test."""
    before = openai_fake.models
    openai_fake.models = ["o3", "gpt-4.1-mini", "fake-model-1"]
    try:
        yield openai_fake
    finally:
        openai_fake.models = before


@pytest.fixture
def ollama_fake() -> Iterator[FakeProviderServer]:
    server = start_fake("ollama")
    server.models = ["llama3.2-vision:11b", "qwen3:8b"]
    try:
        yield server
    finally:
        server.stop()


def test_offline_lists_every_providers_families_with_their_request_fields(cli: Cli) -> None:
    data = cli.json("providers", "--models", "--offline")
    by_name = {entry["provider"]: entry for entry in data}
    assert set(by_name) == set(PROFILES)
    assert all(entry["live"] is None for entry in data)
    openai = {family["model"]: family for family in by_name["openai"]["families"]}
    assert openai["o3*"]["thinking"] == "effort"
    assert openai["o3*"]["thinking_field"] == "reasoning_effort"
    assert openai["gpt-4.1*"]["thinking"] == "none"
    assert openai["gpt-4.1*"]["thinking_field"] is None
    assert openai["*"]["family"] == "(provider default)"
    assert openai["*"]["max_tokens_field"] == "max_completion_tokens"
    assert openai["*"]["context_window"] is None  # unknown stays null
    anthropic = {family["model"]: family for family in by_name["anthropic"]["families"]}
    assert anthropic["claude-opus-4-0"]["nonstreaming_max_tokens"] == 8192
    assert anthropic["claude-3-5-haiku*"]["thinking_field"] is None
    groq = by_name["groq"]["families"]
    assert [family["model"] for family in groq] == ["*"]  # no per-model knowledge: the preset default only
    assert groq[0]["max_tokens_field"] == "max_tokens"
    assert groq[0]["tool_name_max_length"] == 64

    table = cli.run("providers", "--models", "--offline", "-p", "gemini").stdout
    assert "gemini-3*" in table
    assert "level (thinking_config)" in table
    assert "anthropic" not in table


def test_a_stored_config_lists_the_live_models_each_with_its_profile(
    cli: Cli, listed_openai: FakeProviderServer
) -> None:
    url = openai_url(listed_openai)
    cli.json("config", "add", "-p", "openai", "--base-url", url, "--key-env", "OPENAI_TEST_KEY", "-l", "work")
    before = len(listed_openai.requests)
    [entry] = cli.json("providers", "--models", "-p", "openai")
    assert listed_openai.requests[before:][-1].path.endswith("/models")
    live = entry["live"]
    assert live["source"] == "stored config 'work'"
    models = {model["id"]: model for model in live["models"]}
    assert list(models) == ["o3", "gpt-4.1-mini", "fake-model-1"]
    assert models["o3"]["family"] == "o3*"
    assert models["o3"]["thinking_field"] == "reasoning_effort"
    assert models["o3"]["context_window"] == 200_000
    assert models["gpt-4.1-mini"]["thinking"] == "none"
    assert models["fake-model-1"]["family"] == "(provider default)"
    assert models["fake-model-1"]["provider"] == "openai"

    text = cli.run("providers", "--models", "-p", "openai").stdout
    assert "3 models visible via stored config 'work'" in text
    assert "gpt-4.1-mini" in text


def test_the_key_variable_lists_the_live_models(cli: Cli, ollama_fake: FakeProviderServer) -> None:
    env = {"OLLAMA_API_KEY": "ollama-test-key-123", "OLLAMA_HOST": ollama_fake.origin}
    [entry] = cli.json("providers", "--models", "-p", "ollama", env=env)
    assert entry["live"]["source"] == "$OLLAMA_API_KEY"
    models = {model["id"]: model for model in entry["live"]["models"]}
    assert models["llama3.2-vision:11b"]["vision"] is True
    assert models["llama3.2-vision:11b"]["thinking_field"] is None
    assert models["qwen3:8b"]["thinking"] == "toggle"
    assert models["qwen3:8b"]["thinking_field"] == "think"
    # --offline: no request at all.
    before = len(ollama_fake.requests)
    [offline] = cli.json("providers", "--models", "-p", "ollama", "--offline", env=env)
    assert offline["live"] is None
    assert len(ollama_fake.requests) == before


def test_a_failed_listing_is_reported_in_place_and_exits_3(cli: Cli, listed_openai: FakeProviderServer) -> None:
    url = openai_url(listed_openai)
    cli.json("config", "add", "-p", "openai", "--base-url", url, "--key-env", "WRONG_TEST_KEY", "-l", "stale")
    [entry] = cli.json("providers", "--models", "-p", "openai", code=3)
    assert entry["live"]["models"] is None
    assert entry["live"]["exit_code"] == 3
    assert "openai" in entry["live"]["error"].lower()
    assert entry["families"]  # the profiles are listed all the same
    text = cli.run("providers", "--models", "-p", "openai", code=3).stdout
    assert "live listing via stored config 'stale' failed" in text


def test_an_unknown_provider_is_a_usage_error(cli: Cli) -> None:
    refused = cli.run("providers", "--models", "-p", "no-such-provider", code=2)
    assert "unknown provider 'no-such-provider'" in refused.stderr
    assert refused.stdout == ""
    assert "unknown provider" in cli.json("providers", "-p", "nope", code=2)["error"]
