"""``GET /api/providers/{provider}/models``: each listed model carries its per-model profile (real service)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai import FakeOpenAIServer
from tests.http.conftest import Service


@pytest.fixture
def real_names(fake_openai: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    before = fake_openai.models
    fake_openai.models = ["o3", "gpt-4.1-mini", "fake-model-1"]
    try:
        yield fake_openai
    finally:
        fake_openai.models = before


def test_listed_models_carry_their_profile(service: Service, real_names: FakeOpenAIServer) -> None:
    _, token = service.new_openai_user("profiles-openai", real_names)
    with service.client(token) as c:
        answer = c.get("/api/providers/openai/models")
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert [m["id"] for m in listed] == ["o3", "gpt-4.1-mini", "fake-model-1"]
    models = {m["id"]: m for m in listed}
    o3 = models["o3"]
    assert (o3["family"], o3["thinking"], o3["thinking_field"]) == ("o3*", "effort", "reasoning_effort")
    assert (o3["context_window"], o3["max_output_tokens"]) == (200_000, 100_000)
    gpt = models["gpt-4.1-mini"]
    assert (gpt["family"], gpt["thinking"], gpt["thinking_field"]) == ("gpt-4.1*", "none", None)
    unknown = models["fake-model-1"]
    assert unknown["family"] == "(provider default)"
    assert unknown["context_window"] is None  # unknown is null, never 0
    assert unknown["vision"] is None
    for model in listed:
        assert model["provider"] == "openai"  # the listing's fields stay
        assert model["display_name"] is None
        assert model["strict_schemas"] is True
        assert model["max_tokens_field"] == "max_completion_tokens"
        assert model["tool_name_max_length"] == 64
        assert model["output_mode"] == "json_schema"


def test_a_compatible_presets_models_get_the_presets_profile(service: Service, real_names: FakeOpenAIServer) -> None:
    _, token = service.new_user("profiles-vllm")
    with service.client(token) as c:
        created = c.post("/api/user/llm-config", json={"provider": "vllm", "base_url": real_names.origin + "/v1"})
        assert created.status_code == 201, created.text
        answer = c.get("/api/providers/vllm/models")
    assert answer.status_code == 200, answer.text
    for model in answer.json():
        # vLLM serves whatever it was started with: no family applies, and nothing is claimed.
        assert model["provider"] == "vllm"
        assert model["family"] == "(provider default)"
        assert model["thinking_field"] is None  # reasoning_effort is OpenAI's field, not sent to vLLM
        assert model["max_tokens_field"] == "max_tokens"
        assert model["strict_schemas"] is False
        assert model["tools"] is None
