"""The error taxonomy: secret scrubbing, status mapping, retry-after parsing, pickling."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from providers.errors import (
    AuthenticationError,
    BadRequest,
    ContextTooLong,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
    Unavailable,
    error_for_status,
    parse_retry_after,
    scrub,
)
from providers.types import Message, ModelResponse, Usage

# --------------------------------------------------------------------------- scrub


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-abc123DEF456ghi789", "sk-proj-abc123DEF456ghi789"),
        ("Incorrect API key provided: sk-abc12**********************xyz9", "sk-abc12*"),
        ("invalid x-api-key sk-ant-api03-AbCdEf0123456789", "sk-ant-api03-AbCdEf0123456789"),
        ("API key not valid: AIzaSyA1234567890abcdefghij", "AIzaSyA1234567890abcdefghij"),
        ("groq says gsk_0123456789abcdefABCDEF is bad", "gsk_0123456789abcdefABCDEF"),
        ("hf token hf_AbCdEfGhIjKlMnOp rejected", "hf_AbCdEfGhIjKlMnOp"),
        ("GET https://host/v1beta/models?key=plainsecretvalue&alt=sse failed", "plainsecretvalue"),
        ("GET https://host/x?alt=sse&api_key=plainsecretvalue", "plainsecretvalue"),
        ("GET https://host/x?access_token=ya29.a0AfH6SMB", "ya29.a0AfH6SMB"),
    ],
)
def test_scrub_removes_credential_shapes(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_scrub_keeps_the_bearer_word_and_removes_the_token() -> None:
    cleaned = scrub("sent header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig")
    assert "eyJhbGciOiJIUzI1NiJ9" not in cleaned
    assert "[redacted]" in cleaned


@pytest.mark.parametrize(
    "text",
    [
        '{"headers": {"x-api-key": "opaque-value-1234"}}',
        "x-goog-api-key=opaque-value-1234",
        "api-key: opaque-value-1234",
        "'authorization': 'opaque-value-1234'",
    ],
)
def test_scrub_removes_echoed_key_headers(text: str) -> None:
    cleaned = scrub(text)
    assert "opaque-value-1234" not in cleaned


def test_scrub_removes_explicit_secrets_of_any_shape() -> None:
    assert scrub("the key was hunter2-custom!", secrets=["hunter2-custom!", None, ""]) == "the key was [redacted]"


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "model 'gpt-4o' does not exist; ask for a task-list or a risk-free retry"
    assert scrub(text) == text


def test_provider_error_never_shows_the_secret() -> None:
    key = "sk-test-0123456789abcdefSECRET"
    error = AuthenticationError(f"Incorrect API key provided: {key}", provider="openai", secrets=[key])
    assert key not in str(error)
    assert key not in repr(error)
    assert key not in error.detail
    assert "openai" in str(error)
    assert error.hint in str(error)


def test_short_secrets_are_not_used_for_replacement() -> None:
    """A 1-3 character "secret" would shred ordinary words; only longer ones are replaced."""
    assert scrub("a b c", secrets=["a"]) == "a b c"


# --------------------------------------------------------------------------- status mapping


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "invalid tool schema", BadRequest),
        (400, "This model's maximum context length is 8192 tokens", ContextTooLong),
        (400, "prompt is too long: 210000 tokens > 200000 maximum", ContextTooLong),
        (413, "request entity too large", ContextTooLong),
        (422, "unprocessable", BadRequest),
        (401, "bad key", AuthenticationError),
        (402, "payment required", PermissionDenied),
        (403, "forbidden", PermissionDenied),
        (404, "The model `gpt-9` does not exist", ModelNotFound),
        (404, "no such route", BadRequest),
        (408, "request timeout", Timeout),
        (409, "conflict", BadRequest),
        (429, "rate limited", RateLimited),
        (500, "internal", Unavailable),
        (502, "bad gateway", Unavailable),
        (503, "service unavailable", Unavailable),
        (503, "The model is overloaded", Overloaded),
        (504, "gateway timeout", Timeout),
        (529, "overloaded_error", Overloaded),
    ],
)
def test_error_for_status(status: int, message: str, expected: type[ProviderError]) -> None:
    assert error_for_status(status, message) is expected


def test_error_for_status_model_missing_flag() -> None:
    assert error_for_status(404, "not found", model_missing=True) is ModelNotFound


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (RateLimited, True),
        (Overloaded, True),
        (Unavailable, True),
        (Timeout, True),
        (StreamInterrupted, True),
        (AuthenticationError, False),
        (PermissionDenied, False),
        (BadRequest, False),
        (ContextTooLong, False),
        (ModelNotFound, False),
    ],
)
def test_retryable_flags(cls: type[ProviderError], retryable: bool) -> None:
    assert cls.retryable is retryable


def test_model_not_found_lists_available_models() -> None:
    error = ModelNotFound("model 'gpt-9' not found", provider="openai", model="gpt-9", available=["a", "b"])
    assert "Available models: a, b" in str(error)
    many = ModelNotFound("missing", provider="openai", available=[f"m{i}" for i in range(30)])
    assert "m19 ..." in str(many)
    assert "m20" not in str(many)


# --------------------------------------------------------------------------- retry-after


def test_retry_after_ms_wins_over_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_seconds() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25


def test_retry_after_is_capped() -> None:
    assert parse_retry_after({"retry-after": "3600"}) == 60.0
    assert parse_retry_after({"retry-after": "3600"}, cap=5) == 5
    assert parse_retry_after({"retry-after-ms": "999999"}, cap=2.5) == 2.5


def test_retry_after_http_date_in_the_future() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    value = parse_retry_after({"retry-after": format_datetime(when, usegmt=True)})
    assert value is not None
    assert 20 < value <= 30


def test_retry_after_http_date_in_the_past_means_no_wait_hint() -> None:
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after({"retry-after": past}) is None


@pytest.mark.parametrize(
    "headers",
    [{}, {"retry-after": "soon"}, {"retry-after": "-3"}, {"retry-after-ms": "abc"}, {"retry-after": ""}, None, 42],
)
def test_retry_after_garbage_is_none(headers: object) -> None:
    assert parse_retry_after(headers) is None


def test_retry_after_ms_garbage_falls_back_to_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "abc", "retry-after": "2"}) == 2.0


def test_retry_after_reads_real_httpx_headers_case_insensitively() -> None:
    headers = httpx.Headers({"Retry-After": "3", "Content-Type": "application/json"})
    assert parse_retry_after(headers) == 3.0


# --------------------------------------------------------------------------- pickling


def test_errors_survive_pickling() -> None:
    error = RateLimited(
        "slow down", provider="anthropic", model="claude-x", status_code=429, request_id="req_1", retry_after=2.5
    )
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is RateLimited
    assert str(restored) == str(error)
    assert (restored.provider, restored.model, restored.status_code, restored.request_id, restored.retry_after) == (
        "anthropic",
        "claude-x",
        429,
        "req_1",
        2.5,
    )
    assert restored.retryable


def test_model_not_found_survives_pickling() -> None:
    error = ModelNotFound("no such model", provider="openai", model="x", available=["a", "b"])
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is ModelNotFound
    assert str(restored) == str(error)
    assert restored.available == ["a", "b"]


def test_stream_interrupted_keeps_partial_usage_through_pickling() -> None:
    partial = ModelResponse(
        message=Message.assistant("half an ans"),
        usage=Usage(input_tokens=10, output_tokens=3),
        model="m",
        provider="openai",
    )
    error = StreamInterrupted("connection reset", provider="openai", model="m", partial=partial)
    assert error.partial_usage == Usage(input_tokens=10, output_tokens=3)
    restored = pickle.loads(pickle.dumps(error))
    assert restored.partial == partial
    assert restored.partial_usage == partial.usage


def test_scrubbed_detail_stays_scrubbed_after_pickling() -> None:
    key = "sk-live-abcdef0123456789"
    error = AuthenticationError(f"bad key {key}", provider="openai", secrets=[key])
    assert key not in str(pickle.loads(pickle.dumps(error)))
