"""Retries, fallback, timeouts, circuit breakers and cancellation of ResilientModel.

``ScriptedProvider`` below is test scaffolding, not a mock of a routekit class: a small, real
implementation of the ``Provider`` protocol whose answers (taxonomy errors, responses, streams, hangs)
are scripted per call, so every branch of the resilience layer can be driven deterministically.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anyio
import pytest

from providers.base import Provider, ProviderConfig, create_provider
from providers.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ContextTooLong,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
    Unavailable,
)
from providers.resilience import (
    Attempt,
    Breakers,
    CircuitBreaker,
    FallbackTarget,
    FallingBack,
    ResilienceEvent,
    ResilientModel,
    Retrying,
    RetryPolicy,
    endpoint_key,
)
from providers.types import (
    CheckResult,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    StreamEvent,
    TextDelta,
    Usage,
    UsageReport,
)
from tests.fakes.base import FakeProviderServer, FakeTurn, Fault
from tests.providers.conftest import TEST_KEYS, config_for, start_fake

# --------------------------------------------------------------------------- scaffolding


class Hang:
    """Script step: never answer (until cancelled)."""


@dataclass
class Stream:
    """Script step for stream(): these events, then optionally an error (or a hang)."""

    events: list[StreamEvent] = field(default_factory=list)
    error: BaseException | None = None
    hang: bool = False


Step = ModelResponse | BaseException | Hang | Stream


def response(
    text: str = "hi", *, provider: str = "openai", model: str = "m1", usage: Usage | None = None
) -> ModelResponse:
    return ModelResponse(
        message=Message.assistant(text),
        usage=usage or Usage(input_tokens=10, output_tokens=2),
        model=model,
        provider=provider,
        request_id=f"req-{text}",
    )


def ok_stream(text: str = "hello", *, provider: str = "openai") -> Stream:
    final = response(text, provider=provider)
    return Stream([UsageReport(usage=Usage(input_tokens=10)), TextDelta(text=text), ResponseDone(response=final)])


class ScriptedProvider:
    """A Provider whose every call takes the next scripted step."""

    def __init__(
        self,
        *steps: Step,
        name: str = "openai",
        base_url: str | None = None,
        default_model: str | None = "m1",
        label: str | None = None,
        max_retries: int = 2,
    ) -> None:
        self.name = name
        self.config = ProviderConfig(
            provider=name,
            base_url=base_url,
            default_model=default_model,
            label=label,
            max_retries=max_retries,
            timeout=5.0,
        )
        self.script: deque[Step] = deque(steps)
        self.requests: list[ModelRequest] = []
        self.closed_streams = 0

    def _next(self, request: ModelRequest) -> Step:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"{self.name}: unexpected extra call")
        return self.script.popleft()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        step = self._next(request)
        if isinstance(step, Hang):
            await anyio.sleep_forever()
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, ModelResponse)
        return step

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        step = self._next(request)
        try:
            if isinstance(step, Hang):
                await anyio.sleep_forever()
            if isinstance(step, BaseException):
                raise step
            assert isinstance(step, Stream)
            for event in step.events:
                await anyio.sleep(0)
                yield event
            if step.hang:
                await anyio.sleep_forever()
            if step.error is not None:
                raise step.error
        finally:
            self.closed_streams += 1

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def check(self) -> CheckResult:
        return CheckResult(ok=True, provider=self.name, detail="scripted")

    async def aclose(self) -> None:
        return None


def err(cls: type[ProviderError], provider: str = "openai", **kwargs: object) -> ProviderError:
    return cls(f"scripted {cls.__name__}", provider=provider, **kwargs)  # type: ignore[arg-type]


FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.004, jitter=0.0)


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.events: list[ResilienceEvent] = []

    def model(
        self, *targets: FallbackTarget, policy: RetryPolicy = FAST, breakers: Breakers | None = None
    ) -> ResilientModel:
        return ResilientModel(
            list(targets), policy, breakers, on_attempt=self.attempts.append, on_event=self.events.append
        )

    @property
    def outcomes(self) -> list[tuple[str, str, str | None]]:
        return [(a.provider, a.outcome, a.error) for a in self.attempts]


def request(model: str = "asked-model") -> ModelRequest:
    return ModelRequest(model=model, messages=[Message.user("hi")])


async def collect(stream: AsyncIterator[StreamEvent], into: list[StreamEvent] | None = None) -> list[StreamEvent]:
    """Every event of ``stream``; ``into`` keeps what arrived even if the stream then raises."""
    seen = [] if into is None else into
    async for event in stream:
        seen.append(event)
    return seen


def test_scripted_provider_satisfies_the_protocol() -> None:
    assert isinstance(ScriptedProvider(), Provider)


# --------------------------------------------------------------------------- policy


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=0.0)
    error = err(Unavailable)
    assert [policy.delay(n, error) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_jitter_only_shortens_the_backoff() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=1.0, jitter=1.0)
    delays = [policy.delay(1, err(Unavailable)) for _ in range(50)]
    assert all(d is not None and 0.0 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, retry_after_cap=10.0, jitter=0.5)
    assert policy.delay(1, err(RateLimited, retry_after=3.0)) == 3.0
    assert policy.delay(1, err(RateLimited, retry_after=10.0)) == 10.0
    assert policy.delay(1, err(RateLimited, retry_after=11.0)) is None


def test_policy_defaults_come_from_the_target_config() -> None:
    provider = ScriptedProvider(max_retries=4)
    assert RetryPolicy().attempts_for(provider) == 5
    assert RetryPolicy(max_attempts=2).attempts_for(provider) == 2
    assert RetryPolicy().timeout_for(provider) == 5.0
    assert RetryPolicy(attempt_timeout=0.5).timeout_for(provider) == 0.5


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"jitter": 1.5}, {"attempt_timeout": 0}])
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- circuit breaker


def state_of(breaker: CircuitBreaker) -> str:
    """The state as a plain string (mypy would otherwise narrow the property between two reads)."""
    return breaker.state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_fails_fast_naming_the_endpoint() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("openai at https://api.example.com/v1", failure_threshold=2, reset_timeout=30, clock=clock)
    breaker.before_attempt(provider="openai")
    breaker.record_failure()
    assert state_of(breaker) == "closed"
    breaker.record_failure()
    assert state_of(breaker) == "open"
    clock.now += 10
    with pytest.raises(Unavailable) as caught:
        breaker.before_attempt(provider="openai", model="m1")
    message = str(caught.value)
    assert "https://api.example.com/v1" in message
    assert "20.0 s" in message
    assert caught.value.retry_after == pytest.approx(20.0)
    assert caught.value.retryable


def test_breaker_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("e", failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert state_of(breaker) == "half_open"
    breaker.before_attempt(provider="p")  # the trial
    with pytest.raises(Unavailable, match="trial request"):
        breaker.before_attempt(provider="p")
    breaker.record_success()
    assert state_of(breaker) == "closed"
    breaker.before_attempt(provider="p")


def test_breaker_failed_trial_opens_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("e", failure_threshold=3, reset_timeout=5, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 6
    breaker.before_attempt(provider="p")
    breaker.record_failure()
    assert state_of(breaker) == "open"
    with pytest.raises(Unavailable):
        breaker.before_attempt(provider="p")


def test_breaker_released_trial_can_be_retried() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("e", failure_threshold=1, reset_timeout=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    breaker.before_attempt(provider="p")
    breaker.release()  # the trial was cancelled: no verdict
    breaker.before_attempt(provider="p")


def test_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker("e", failure_threshold=2, reset_timeout=1)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert state_of(breaker) == "closed"


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (err(Unavailable), True),
        (err(Overloaded), True),
        (err(Timeout), True),
        (err(StreamInterrupted), True),
        (err(RateLimited), False),
        (err(BadRequest), False),
        (err(AuthenticationError), False),
    ],
)
def test_which_errors_count_against_the_endpoint(error: ProviderError, counts: bool) -> None:
    breaker = CircuitBreaker("e", failure_threshold=1, reset_timeout=60)
    breaker.record(error)
    assert (state_of(breaker) == "open") is counts


def test_breakers_are_shared_per_endpoint() -> None:
    breakers = Breakers()
    a = ScriptedProvider(base_url="https://one.example/v1")
    b = ScriptedProvider(base_url="https://one.example/v1", label="other key")
    c = ScriptedProvider(base_url="https://two.example/v1")
    d = ScriptedProvider(name="groq", base_url="https://one.example/v1")
    assert breakers.for_provider(a) is breakers.for_provider(b)
    assert breakers.for_provider(a) is not breakers.for_provider(c)
    assert breakers.for_provider(a) is not breakers.for_provider(d)


def test_endpoint_key_hides_credentials_and_query() -> None:
    provider = ScriptedProvider(base_url="https://user:pw@proxy.example:8443/v1?key=abc")
    key = endpoint_key(provider)
    assert key == "openai at https://proxy.example:8443/v1"
    assert endpoint_key(ScriptedProvider()) == "openai at https://api.openai.com/v1"


# --------------------------------------------------------------------------- complete


@pytest.mark.anyio
async def test_success_is_recorded_as_one_attempt() -> None:
    rec = Recorder()
    provider = ScriptedProvider(response("fine"), label="main")
    result = await rec.model(FallbackTarget(provider)).complete(request())
    assert result.text == "fine"
    assert provider.requests[0].model == "asked-model"
    [attempt] = rec.attempts
    assert (attempt.provider, attempt.config_label, attempt.model, attempt.number, attempt.target_index) == (
        "openai",
        "main",
        "asked-model",
        1,
        0,
    )
    assert (attempt.outcome, attempt.error, attempt.request_id) == ("ok", None, "req-fine")
    assert attempt.usage == Usage(input_tokens=10, output_tokens=2)
    assert attempt.latency >= 0
    assert not attempt.streamed
    assert rec.events == []


@pytest.mark.anyio
async def test_rate_limit_is_retried_after_the_providers_retry_after() -> None:
    rec = Recorder()
    provider = ScriptedProvider(err(RateLimited, retry_after=0.01, request_id="req-429"), response("later"))
    result = await rec.model(FallbackTarget(provider)).complete(request())
    assert result.text == "later"
    assert rec.outcomes == [("openai", "error", "RateLimited"), ("openai", "ok", None)]
    assert rec.attempts[0].request_id == "req-429"
    assert rec.attempts[0].usage is None
    assert [a.number for a in rec.attempts] == [1, 2]
    assert rec.events == [
        Retrying(provider="openai", config_label=None, model="asked-model", attempt=1, delay=0.01, error="RateLimited")
    ]


@pytest.mark.anyio
async def test_backoff_is_used_without_retry_after() -> None:
    rec = Recorder()
    provider = ScriptedProvider(err(Unavailable), err(Overloaded), response())
    await rec.model(FallbackTarget(provider)).complete(request())
    assert [e.delay for e in rec.events if isinstance(e, Retrying)] == [0.001, 0.002]


@pytest.mark.anyio
async def test_failed_attempt_usage_comes_from_the_partial_response() -> None:
    rec = Recorder()
    partial = response("half", usage=Usage(input_tokens=50, output_tokens=7))
    provider = ScriptedProvider(err(StreamInterrupted, partial=partial), response())
    await rec.model(FallbackTarget(provider)).complete(request())
    assert rec.attempts[0].usage == Usage(input_tokens=50, output_tokens=7)


@pytest.mark.anyio
async def test_exhausted_retries_fall_back_to_the_next_target_and_its_model() -> None:
    rec = Recorder()
    primary = ScriptedProvider(err(Overloaded), err(Overloaded), err(Overloaded), label="primary")
    backup = ScriptedProvider(response("from backup", provider="anthropic"), name="anthropic", default_model="claude-x")
    model = rec.model(FallbackTarget(primary), FallbackTarget(backup))
    result = await model.complete(request())
    assert result.text == "from backup"
    assert len(primary.requests) == 3
    assert backup.requests[0].model == "claude-x"
    assert backup.requests[0].messages == request().messages
    assert rec.outcomes[-1] == ("anthropic", "ok", None)
    assert [a.target_index for a in rec.attempts] == [0, 0, 0, 1]
    assert rec.events[-1] == FallingBack(
        from_provider="openai",
        from_label="primary",
        from_model="asked-model",
        to_provider="anthropic",
        to_label=None,
        to_model="claude-x",
        reason="Overloaded",
    )


@pytest.mark.anyio
async def test_target_model_overrides_request_and_config() -> None:
    first = ScriptedProvider(response())
    await ResilientModel([FallbackTarget(first, model="pinned")], FAST).complete(request())
    assert first.requests[0].model == "pinned"


@pytest.mark.anyio
async def test_every_target_failing_raises_the_last_error_with_the_others_noted() -> None:
    rec = Recorder()
    primary = ScriptedProvider(err(Unavailable), max_retries=0)
    backup = ScriptedProvider(err(Timeout, provider="anthropic"), name="anthropic", max_retries=0)
    model = rec.model(FallbackTarget(primary), FallbackTarget(backup), policy=RetryPolicy(base_delay=0))
    with pytest.raises(Timeout) as caught:
        await model.complete(request())
    assert any("Unavailable" in note for note in caught.value.__notes__)
    assert rec.outcomes == [("openai", "error", "Unavailable"), ("anthropic", "error", "Timeout")]


@pytest.mark.anyio
async def test_bad_request_is_neither_retried_nor_sent_elsewhere() -> None:
    rec = Recorder()
    primary = ScriptedProvider(err(BadRequest))
    backup = ScriptedProvider(name="anthropic")
    with pytest.raises(BadRequest):
        await rec.model(FallbackTarget(primary), FallbackTarget(backup)).complete(request())
    assert len(primary.requests) == 1
    assert backup.requests == []
    assert rec.outcomes == [("openai", "error", "BadRequest")]


@pytest.mark.parametrize("cls", [AuthenticationError, PermissionDenied, ModelNotFound, ContextTooLong])
@pytest.mark.anyio
async def test_key_and_model_errors_fall_back_without_retrying(cls: type[ProviderError]) -> None:
    rec = Recorder()
    primary = ScriptedProvider(err(cls))
    backup = ScriptedProvider(response("saved"), name="anthropic")
    result = await rec.model(FallbackTarget(primary), FallbackTarget(backup)).complete(request())
    assert result.text == "saved"
    assert len(primary.requests) == 1
    assert isinstance(rec.events[0], FallingBack)
    assert rec.events[0].reason == cls.__name__


@pytest.mark.anyio
async def test_retry_after_beyond_the_cap_moves_on_at_once() -> None:
    rec = Recorder()
    primary = ScriptedProvider(err(RateLimited, retry_after=120.0))
    backup = ScriptedProvider(response("elsewhere"), name="anthropic")
    result = await rec.model(FallbackTarget(primary), FallbackTarget(backup)).complete(request())
    assert result.text == "elsewhere"
    assert len(primary.requests) == 1
    assert not any(isinstance(e, Retrying) for e in rec.events)


@pytest.mark.anyio
async def test_per_attempt_timeout_turns_a_hang_into_a_retried_timeout() -> None:
    rec = Recorder()
    provider = ScriptedProvider(Hang(), response("second try"))
    policy = RetryPolicy(max_attempts=2, base_delay=0, attempt_timeout=0.05)
    result = await rec.model(FallbackTarget(provider), policy=policy).complete(request())
    assert result.text == "second try"
    assert rec.outcomes == [("openai", "error", "Timeout"), ("openai", "ok", None)]
    assert "per-attempt timeout" in (rec.attempts[0].detail or "")


@pytest.mark.anyio
async def test_cancellation_propagates_at_once_and_is_recorded() -> None:
    rec = Recorder()
    provider = ScriptedProvider(Hang(), response())
    with anyio.move_on_after(0.05) as scope:
        await rec.model(FallbackTarget(provider)).complete(request())
    assert scope.cancelled_caught
    assert len(provider.requests) == 1
    assert rec.outcomes == [("openai", "cancelled", None)]


@pytest.mark.anyio
async def test_cancellation_during_backoff_is_not_retried() -> None:
    rec = Recorder()
    provider = ScriptedProvider(err(RateLimited, retry_after=20.0), response())
    with anyio.move_on_after(0.05) as scope:
        await rec.model(FallbackTarget(provider)).complete(request())
    assert scope.cancelled_caught
    assert len(provider.requests) == 1


@pytest.mark.anyio
async def test_unexpected_exceptions_propagate_without_retry() -> None:
    rec = Recorder()
    provider = ScriptedProvider(RuntimeError("adapter bug"), response())
    with pytest.raises(RuntimeError, match="adapter bug"):
        await rec.model(FallbackTarget(provider)).complete(request())
    assert rec.outcomes == [("openai", "error", "RuntimeError")]


@pytest.mark.anyio
async def test_open_breaker_skips_the_endpoint_without_calling_it() -> None:
    rec = Recorder()
    breakers = Breakers(failure_threshold=2, reset_timeout=60)
    primary = ScriptedProvider(err(Unavailable), err(Unavailable))
    backup = ScriptedProvider(response("b1"), response("b2"), name="anthropic")
    model = rec.model(FallbackTarget(primary), FallbackTarget(backup), breakers=breakers)
    assert (await model.complete(request())).text == "b1"
    assert len(primary.requests) == 2  # the third attempt was refused by the now open breaker
    assert (await model.complete(request())).text == "b2"
    assert len(primary.requests) == 2
    assert breakers.for_provider(primary).state == "open"
    fallbacks = [e for e in rec.events if isinstance(e, FallingBack)]
    assert [e.reason for e in fallbacks] == ["Unavailable", "Unavailable"]


@pytest.mark.anyio
async def test_open_breaker_on_the_only_target_fails_fast() -> None:
    breakers = Breakers(failure_threshold=1, reset_timeout=60)
    provider = ScriptedProvider(err(Unavailable), base_url="https://llm.internal/v1", max_retries=0)
    model = ResilientModel([FallbackTarget(provider)], FAST, breakers)
    with pytest.raises(Unavailable):
        await model.complete(request())
    with pytest.raises(Unavailable, match=r"circuit breaker open for openai at https://llm.internal/v1"):
        await model.complete(request())
    assert len(provider.requests) == 1


@pytest.mark.anyio
async def test_a_failing_callback_does_not_break_the_call(caplog: pytest.LogCaptureFixture) -> None:
    def explode(_: Attempt) -> None:
        raise ValueError("ledger down")

    model = ResilientModel([FallbackTarget(ScriptedProvider(response("fine")))], FAST, on_attempt=explode)
    with caplog.at_level(logging.ERROR, logger="routekit.providers.resilience"):
        assert (await model.complete(request())).text == "fine"
    assert "ledger down" in caplog.text


def test_chains_are_checked_when_built() -> None:
    with pytest.raises(ConfigError, match="at least one target"):
        ResilientModel([])
    no_model = ScriptedProvider(default_model=None, label="backup")
    with pytest.raises(ConfigError, match="'backup' has no model"):
        ResilientModel([FallbackTarget(ScriptedProvider()), FallbackTarget(no_model)])


@pytest.mark.anyio
async def test_first_target_without_any_model_is_a_config_error() -> None:
    model = ResilientModel([FallbackTarget(ScriptedProvider(default_model=None))], FAST)
    with pytest.raises(ConfigError, match="no model"):
        await model.complete(request(model=""))


# --------------------------------------------------------------------------- stream


@pytest.mark.anyio
async def test_stream_success_passes_events_through_and_meters_the_attempt() -> None:
    rec = Recorder()
    provider = ScriptedProvider(ok_stream("hello"))
    events = await collect(rec.model(FallbackTarget(provider)).stream(request()))
    assert [type(e).__name__ for e in events] == ["UsageReport", "TextDelta", "ResponseDone"]
    [attempt] = rec.attempts
    assert attempt.outcome == "ok"
    assert attempt.streamed
    assert attempt.time_to_first_token is not None
    assert attempt.usage == Usage(input_tokens=10, output_tokens=2)
    assert provider.closed_streams == 1


@pytest.mark.anyio
async def test_stream_failing_before_any_event_is_retried() -> None:
    rec = Recorder()
    provider = ScriptedProvider(err(Unavailable), ok_stream("again"))
    events = await collect(rec.model(FallbackTarget(provider)).stream(request()))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["again"]
    assert rec.outcomes == [("openai", "error", "Unavailable"), ("openai", "ok", None)]
    assert provider.closed_streams == 2


@pytest.mark.anyio
async def test_stream_failing_after_only_usage_is_retried_and_the_usage_not_leaked() -> None:
    rec = Recorder()
    first = Stream([UsageReport(usage=Usage(input_tokens=99))], error=err(StreamInterrupted))
    provider = ScriptedProvider(first, ok_stream("fresh"))
    events = await collect(rec.model(FallbackTarget(provider)).stream(request()))
    assert [e.usage.input_tokens for e in events if isinstance(e, UsageReport)] == [10]
    assert rec.attempts[0].usage == Usage(input_tokens=99)  # metered even though the caller never saw it
    assert rec.outcomes[0] == ("openai", "error", "StreamInterrupted")


@pytest.mark.anyio
async def test_stream_failure_after_the_first_event_propagates_with_its_partial() -> None:
    rec = Recorder()
    partial = response("hel", usage=Usage(input_tokens=10, output_tokens=1))
    broken = Stream([TextDelta(text="hel")], error=err(StreamInterrupted, partial=partial))
    provider = ScriptedProvider(broken, ok_stream())
    backup = ScriptedProvider(name="anthropic")
    seen: list[StreamEvent] = []
    with pytest.raises(StreamInterrupted) as caught:
        await collect(rec.model(FallbackTarget(provider), FallbackTarget(backup)).stream(request()), seen)
    assert seen == [TextDelta(text="hel")]
    assert caught.value.partial == partial
    assert len(provider.requests) == 1
    assert backup.requests == []
    assert rec.outcomes == [("openai", "error", "StreamInterrupted")]
    assert rec.attempts[0].usage == partial.usage
    assert provider.closed_streams == 1


@pytest.mark.anyio
async def test_stream_falls_back_with_the_targets_model() -> None:
    rec = Recorder()
    primary = ScriptedProvider(err(Overloaded), max_retries=0)
    backup = ScriptedProvider(ok_stream("from backup", provider="anthropic"), name="anthropic")
    model = rec.model(
        FallbackTarget(primary), FallbackTarget(backup, model="claude-y"), policy=RetryPolicy(base_delay=0)
    )
    events = await collect(model.stream(request()))
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.text == "from backup"
    assert backup.requests[0].model == "claude-y"
    assert any(isinstance(e, FallingBack) and e.to_model == "claude-y" for e in rec.events)


@pytest.mark.anyio
async def test_stream_waiting_too_long_for_the_first_event_times_out() -> None:
    rec = Recorder()
    primary = ScriptedProvider(Stream([UsageReport(usage=Usage(input_tokens=5))], hang=True), max_retries=0)
    backup = ScriptedProvider(ok_stream("quick"), name="anthropic")
    policy = RetryPolicy(base_delay=0, attempt_timeout=0.05)
    events = await collect(rec.model(FallbackTarget(primary), FallbackTarget(backup), policy=policy).stream(request()))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["quick"]
    assert rec.outcomes[0] == ("openai", "error", "Timeout")
    assert rec.attempts[0].usage == Usage(input_tokens=5)
    assert primary.closed_streams == 1


@pytest.mark.anyio
async def test_stream_abandoned_by_the_caller_is_closed_and_recorded_as_cancelled() -> None:
    rec = Recorder()
    breakers = Breakers(failure_threshold=1)
    long = Stream([UsageReport(usage=Usage(input_tokens=8)), TextDelta(text="a"), TextDelta(text="b")], hang=True)
    provider = ScriptedProvider(long)
    stream = rec.model(FallbackTarget(provider), breakers=breakers).stream(request())
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert provider.closed_streams == 1
    assert rec.outcomes == [("openai", "cancelled", None)]
    assert rec.attempts[0].usage == Usage(input_tokens=8)
    assert breakers.for_provider(provider).state == "closed"


@pytest.mark.anyio
async def test_stream_closed_right_after_the_final_response_counts_as_ok() -> None:
    rec = Recorder()
    provider = ScriptedProvider(ok_stream())
    stream = rec.model(FallbackTarget(provider)).stream(request())
    async for event in stream:
        if isinstance(event, ResponseDone):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert rec.outcomes == [("openai", "ok", None)]


@pytest.mark.anyio
async def test_stream_cancelled_before_the_first_event_is_not_retried() -> None:
    rec = Recorder()
    provider = ScriptedProvider(Hang(), ok_stream())
    with anyio.move_on_after(0.05) as scope:
        await collect(rec.model(FallbackTarget(provider)).stream(request()))
    assert scope.cancelled_caught
    assert len(provider.requests) == 1
    assert rec.outcomes == [("openai", "cancelled", None)]
    assert provider.closed_streams == 1


@pytest.mark.anyio
async def test_stream_ending_without_a_final_response_is_interrupted() -> None:
    rec = Recorder()
    provider = ScriptedProvider(Stream([TextDelta(text="only this")]))
    with pytest.raises(StreamInterrupted, match="without its final response"):
        await collect(rec.model(FallbackTarget(provider)).stream(request()))
    assert rec.outcomes == [("openai", "error", "StreamInterrupted")]


@pytest.mark.anyio
async def test_empty_stream_is_retried_as_interrupted() -> None:
    rec = Recorder()
    provider = ScriptedProvider(Stream([]), ok_stream("now"))
    events = await collect(rec.model(FallbackTarget(provider)).stream(request()))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["now"]
    assert rec.outcomes[0] == ("openai", "error", "StreamInterrupted")


@pytest.mark.anyio
async def test_stream_bad_request_is_raised_before_any_event() -> None:
    rec = Recorder()
    provider = ScriptedProvider(err(BadRequest))
    with pytest.raises(BadRequest):
        await collect(
            rec.model(FallbackTarget(provider), FallbackTarget(ScriptedProvider(name="anthropic"))).stream(request())
        )
    assert len(provider.requests) == 1


# --------------------------------------------------------------------------- with the real OpenAI adapter


@pytest.fixture
def openai_fake() -> Iterator[FakeProviderServer]:
    server = start_fake("openai")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.anyio
async def test_real_adapter_rate_limit_then_success(openai_fake: FakeProviderServer) -> None:
    rec = Recorder()
    provider = create_provider(config_for("openai", openai_fake, label="primary"))
    try:
        openai_fake.faults.append(Fault(status=429, message="Rate limit reached", headers={"retry-after-ms": "10"}))
        openai_fake.turns.append(FakeTurn(text="after the wait"))
        result = await rec.model(FallbackTarget(provider)).complete(request("fake-model-1"))
    finally:
        await provider.aclose()
    assert result.text == "after the wait"
    assert len(openai_fake.requests) == 2
    assert rec.outcomes == [("openai", "error", "RateLimited"), ("openai", "ok", None)]
    assert [e.delay for e in rec.events if isinstance(e, Retrying)] == [0.01]
    assert rec.attempts[1].usage is not None
    assert rec.attempts[1].usage.input_tokens == 42
    assert str(TEST_KEYS["openai"]) not in repr(rec.attempts)


@pytest.mark.parametrize("family", ["anthropic", "gemini", "ollama", "openai"])
@pytest.mark.anyio
async def test_real_adapters_stream_reset_before_any_event_is_retried(family: str) -> None:
    """Every adapter's stream runs inside the per-attempt timeout scope and is retried after a reset."""
    rec = Recorder()
    server = start_fake(family)
    provider = create_provider(config_for(family, server))
    try:
        server.faults.append(Fault(reset_after=0))
        server.turns.append(FakeTurn(text="first turn, never seen"))
        server.turns.append(FakeTurn(text="second try"))
        policy = RetryPolicy(max_attempts=2, base_delay=0, attempt_timeout=5)
        events = await collect(rec.model(FallbackTarget(provider), policy=policy).stream(request("fake-model-1")))
    finally:
        await provider.aclose()
        server.stop()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "second try"
    assert isinstance(events[-1], ResponseDone)
    assert [a.outcome for a in rec.attempts] == ["error", "ok"]
    assert rec.attempts[0].error in {"StreamInterrupted", "Unavailable"}
    assert rec.attempts[1].time_to_first_token is not None
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_real_adapter_stream_reset_after_text_propagates(openai_fake: FakeProviderServer) -> None:
    rec = Recorder()
    provider = create_provider(config_for("openai", openai_fake))
    seen: list[StreamEvent] = []
    try:
        openai_fake.turns.append(FakeTurn(text="Hello world! This is a longer answer."))
        openai_fake.faults.append(Fault(reset_after=3))
        with pytest.raises(StreamInterrupted) as caught:
            await collect(rec.model(FallbackTarget(provider)).stream(request("fake-model-1")), seen)
    finally:
        await provider.aclose()
    streamed = "".join(e.text for e in seen if isinstance(e, TextDelta))
    assert streamed
    assert caught.value.partial is not None
    assert caught.value.partial.text == streamed
    assert len(openai_fake.requests) == 1
    assert rec.outcomes == [("openai", "error", "StreamInterrupted")]
