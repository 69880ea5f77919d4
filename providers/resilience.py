"""Retries with backoff, per-attempt timeouts, fallback across provider configs, circuit breakers.

:class:`ResilientModel` wraps an ordered list of :class:`FallbackTarget` (an adapter plus an optional
model) and offers ``complete()`` and ``stream()`` like a provider. For each call it tries the first
target, retrying retryable errors there, then moves down the list. Every attempt, failed ones
included, is reported to ``on_attempt`` as an :class:`Attempt` (the usage ledger meters each one:
a failed attempt may have cost tokens), and retries and fallbacks are reported to ``on_event``.

Why a small loop and not tenacity (which is installed): the decisions here are not "retry this
function": a failure may mean retry the same target after the provider's ``retry-after``, move to the
next target (a different adapter and model), fail fast because a shared breaker is open, or stop
at once; a stream may only be retried before the caller has seen an event; and each attempt must be
metered, including cancelled ones. Expressed through tenacity's hooks, that logic would be spread
over callbacks around an opaque loop; written out, it is one screen of code that reads top to bottom.

Rules (each chosen on purpose):

* **Retry on the same target** only errors marked ``retryable`` (rate limits, overload, unavailable,
  timeouts, broken streams), at most ``max_attempts`` times per target. The wait is the provider's
  ``retry_after`` when it gave one; when that exceeds ``retry_after_cap`` the target is given up at
  once (waiting less than asked only earns another 429, and waiting longer blocks the user — a
  fallback, if configured, serves better). Otherwise exponential backoff with jitter.
* **Fall back** to the next target after retryable errors are exhausted, when its breaker is open,
  and after ``AuthenticationError``, ``PermissionDenied``, ``ModelNotFound`` and ``ContextTooLong``:
  another config has another key, model and context window, so it may succeed where this one cannot
  (none of these are retried on the same target: the answer would not change).
* **Stop** on ``BadRequest`` (other than ``ContextTooLong``) and any other non-retryable error: the
  request itself is wrong, the message says which part, and sending it to every target would spend
  money to hide the problem.
* **Streams** are retried or moved only before their first event reaches the caller. Usage reports
  are held back until the first content event (or the final response) so that a failure right after
  a usage-only preamble can still be retried. Once the caller has seen text or a tool call, a failure
  propagates as is (``StreamInterrupted`` with ``partial``): the caller may already have shown or acted
  on the partial answer, a second attempt would produce a different one, and only the caller (the
  agent loop) knows whether to keep the partial answer or run the step again.
* **Per-attempt timeout**: ``RetryPolicy.attempt_timeout`` or the target config's ``timeout``. For
  ``complete()`` it bounds the whole call (SDK read timeouts are per read, so a trickling server could
  keep a call alive forever); for streams it bounds the wait for the first event only, since a long
  answer may legitimately stream for minutes (the SDK's read timeout guards stalls after that).
* **Circuit breaker per endpoint and credential** (provider name + base URL + a digest of the configured
  key and header values, shared by every :class:`ResilientModel` given the same :class:`Breakers`; the
  service keeps one :class:`Breakers` per user): it counts consecutive endpoint failures (unavailable,
  overloaded, timeout, broken stream) — not rate limits (a quota of one key, with its own retry-after),
  not client errors (the endpoint answered) and not requests that never left (``RequestNotSent``: the
  egress policy refused them). When open, calls fail fast with ``Unavailable`` naming the
  endpoint and when it will be tried again; after ``reset_timeout`` one trial request is let through
  (half-open): success closes the breaker, failure opens it again.
* **Cancellation** (anyio cancel scopes, task cancellation) propagates at once and is never retried;
  the interrupted attempt is still reported, with outcome ``"cancelled"``.

Callback errors are logged and swallowed so that a metering bug never changes a call's outcome or
masks a cancellation.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypeVar
from urllib.parse import urlsplit

import anyio

from providers.base import Provider
from providers.errors import (
    AuthenticationError,
    ConfigError,
    ContextTooLong,
    ModelNotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    RequestNotSent,
    StreamInterrupted,
    Timeout,
    Unavailable,
    scrub,
)
from providers.types import (
    ModelRequest,
    ModelResponse,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallReady,
    Usage,
    UsageReport,
)

__all__ = [
    "FALLBACK_ERRORS",
    "Attempt",
    "BreakerState",
    "Breakers",
    "CircuitBreaker",
    "FallbackTarget",
    "FallingBack",
    "ResilienceEvent",
    "ResilientModel",
    "RetryPolicy",
    "Retrying",
    "endpoint_key",
]

logger = logging.getLogger("routekit.providers.resilience")

# Non-retryable errors after which the next target is tried (see the module docstring).
FALLBACK_ERRORS: tuple[type[ProviderError], ...] = (
    AuthenticationError,
    PermissionDenied,
    ModelNotFound,
    ContextTooLong,
)

_TOKEN_EVENTS = (TextDelta, ThinkingDelta, ToolCallDelta, ToolCallReady)
_CLOSE_GRACE = 5.0  # seconds allowed to close an abandoned stream, even while being cancelled


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one target.

    ``max_attempts`` counts the first attempt; ``None`` takes the target config's ``max_retries + 1``.
    ``jitter`` is the fraction of each backoff removed at random (0: none, 1: "full jitter").
    ``attempt_timeout`` ``None`` takes the target config's ``timeout``.
    """

    max_attempts: int | None = None
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_cap: float = 30.0
    jitter: float = 0.25
    attempt_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}")
        if min(self.base_delay, self.max_delay, self.retry_after_cap) < 0:
            raise ConfigError("RetryPolicy delays and caps must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"RetryPolicy.jitter must be between 0 and 1, got {self.jitter}")
        if self.attempt_timeout is not None and self.attempt_timeout <= 0:
            raise ConfigError(f"RetryPolicy.attempt_timeout must be positive, got {self.attempt_timeout}")

    def attempts_for(self, provider: Provider) -> int:
        return self.max_attempts if self.max_attempts is not None else provider.config.max_retries + 1

    def timeout_for(self, provider: Provider) -> float:
        return self.attempt_timeout if self.attempt_timeout is not None else provider.config.timeout

    def delay(self, failed_attempt: int, error: ProviderError) -> float | None:
        """Seconds to wait before retrying after attempt ``failed_attempt`` (1-based) failed with ``error``.

        ``None`` when the provider asked for a longer wait than ``retry_after_cap``.
        """
        if error.retry_after is not None:
            return None if error.retry_after > self.retry_after_cap else max(error.retry_after, 0.0)
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (failed_attempt - 1))
        return backoff * (1.0 - self.jitter * random.random())


# --------------------------------------------------------------------------- circuit breaker

BreakerState: TypeAlias = Literal["closed", "open", "half_open"]


def endpoint_key(provider: Provider) -> str:
    """``"<provider> at <base url>"`` without credentials or query (the breaker key and its name)."""
    url = provider.config.base_url or provider.config.profile.default_base_url
    if not url:
        return f"{provider.name} at its default endpoint"
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{provider.name} at {parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _counts_against_endpoint(error: ProviderError) -> bool:
    """Endpoint health failures: retryable errors other than a key's rate limit."""
    return error.retryable and not isinstance(error, RateLimited)


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after ``reset_timeout``.

    Half-open lets exactly one trial attempt through; its success closes the breaker, its failure
    opens it again. Not thread-safe; meant for one event loop (every method is synchronous).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout < 0:
            raise ConfigError("CircuitBreaker needs failure_threshold >= 1 and reset_timeout >= 0")
        self.endpoint = endpoint
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.endpoint!r}, state={self.state!r}, failures={self._failures})"

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_timeout:
            return "half_open"
        return self._state

    def before_attempt(self, *, provider: str, model: str | None = None) -> None:
        """Admit an attempt or raise ``Unavailable`` (fast, nothing is sent) naming when to retry."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probe_in_flight:
            self._state, self._probe_in_flight = "half_open", True
            return
        if state == "half_open":
            wait, why = 0.0, "a trial request to it is in flight"
        else:
            wait = max(0.0, self._opened_at + self.reset_timeout - self._clock())
            why = f"it failed {self._failures} times in a row; routekit tries it again in {wait:.1f} s"
        raise Unavailable(
            f"circuit breaker open for {self.endpoint}: {why}. Configure a fallback provider to keep working",
            provider=provider,
            model=model,
            retry_after=wait,
        )

    def record_success(self) -> None:
        self._state, self._failures, self._probe_in_flight = "closed", 0, False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.failure_threshold:
            self._state, self._opened_at = "open", self._clock()
        self._probe_in_flight = False

    def release(self) -> None:
        """The attempt ended without a verdict on the endpoint (cancelled, client error)."""
        self._probe_in_flight = False

    def record(self, error: BaseException | None) -> None:
        """Account for an attempt that ended with ``error`` (``None``: success)."""
        if error is None:
            self.record_success()
        elif isinstance(error, RequestNotSent):
            self.release()  # nothing reached the endpoint: no verdict on it
        elif isinstance(error, ProviderError) and _counts_against_endpoint(error):
            self.record_failure()
        elif isinstance(error, ProviderError):
            self.record_success()  # the endpoint answered; the request or the key was the problem
        else:
            self.release()


def _credential_digest(provider: Provider) -> str:
    """Which credential a provider's requests carry (its configured key, key variable and header values),
    as a short digest: breakers are kept per endpoint *and* credential, so one user's failing key or
    misconfigured headers never trip the breaker of another user's calls to the same endpoint."""
    config = provider.config
    key = config.api_key.get_secret_value() if config.api_key is not None else ""
    headers = sorted(config.header_values().items())
    text = "\0".join([key, config.api_key_env or "", *(f"{name}:{value}" for name, value in headers)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Breakers:
    """The circuit breakers of a process, one per endpoint and credential; share one instance between models."""

    def __init__(
        self, *, failure_threshold: int = 5, reset_timeout: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = (failure_threshold, reset_timeout, clock)
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_provider(self, provider: Provider) -> CircuitBreaker:
        endpoint = endpoint_key(provider)
        key = f"{endpoint}#{_credential_digest(provider)}"
        breaker = self._breakers.get(key)
        if breaker is None:
            threshold, reset, clock = self._settings
            breaker = CircuitBreaker(endpoint, failure_threshold=threshold, reset_timeout=reset, clock=clock)
            self._breakers[key] = breaker
        return breaker


# --------------------------------------------------------------------------- records and events


@dataclass(frozen=True, slots=True)
class FallbackTarget:
    """One entry of a fallback chain: an adapter and the model to ask it for (default: see ResilientModel)."""

    provider: Provider
    model: str | None = None

    @property
    def label(self) -> str:
        return self.provider.config.label or self.provider.name


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request sent to a provider (or interrupted while being sent), for metering and diagnostics.

    ``number`` counts attempts of the whole call from 1; ``target_index`` is the position in the
    fallback chain. ``usage`` is the provider's count, partial for failed or cancelled attempts,
    ``None`` when nothing is known. Times are seconds; ``started_at`` is wall-clock (``time.time()``).
    """

    provider: str
    config_label: str | None
    model: str
    number: int
    target_index: int
    streamed: bool
    started_at: float
    latency: float
    time_to_first_token: float | None
    outcome: Literal["ok", "error", "cancelled"]
    error: str | None = None
    detail: str | None = None
    usage: Usage | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Retrying:
    """The same target is tried again after ``delay`` seconds because attempt ``attempt`` failed."""

    provider: str
    config_label: str | None
    model: str
    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, slots=True)
class FallingBack:
    """The call moves to the next target of the chain; ``reason`` is the error class that ended the last one."""

    from_provider: str
    from_label: str | None
    from_model: str
    to_provider: str
    to_label: str | None
    to_model: str
    reason: str


ResilienceEvent: TypeAlias = Retrying | FallingBack


_T = TypeVar("_T")


def _deliver(callback: Callable[[_T], None] | None, item: _T) -> None:
    if callback is None:
        return
    try:
        callback(item)
    except Exception:
        logger.exception("resilience callback %r failed on %s", callback, type(item).__name__)


class _Clock:
    """Times one attempt and turns it into an :class:`Attempt` record."""

    __slots__ = ("_t0", "index", "model", "number", "started_at", "streamed", "target", "ttft", "usage")

    def __init__(self, target: FallbackTarget, index: int, model: str, number: int, streamed: bool) -> None:
        self.target, self.index, self.model, self.number, self.streamed = target, index, model, number, streamed
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.ttft: float | None = None
        self.usage: Usage | None = None  # the latest usage report seen (streams)

    def saw(self, event: StreamEvent) -> None:
        if isinstance(event, UsageReport):
            self.usage = event.usage
        elif self.ttft is None and isinstance(event, _TOKEN_EVENTS):
            self.ttft = time.perf_counter() - self._t0

    def record(
        self,
        outcome: Literal["ok", "error", "cancelled"],
        error: BaseException | None = None,
        response: ModelResponse | None = None,
    ) -> Attempt:
        usage, request_id = self.usage, None
        if response is not None:
            usage, request_id = response.usage, response.request_id
        if isinstance(error, RequestNotSent):
            usage = _NOTHING_SENT
        elif isinstance(error, ProviderError):
            usage, request_id = error.partial_usage or usage, error.request_id
        return Attempt(
            provider=self.target.provider.name,
            config_label=self.target.provider.config.label,
            model=self.model,
            number=self.number,
            target_index=self.index,
            streamed=self.streamed,
            started_at=self.started_at,
            latency=time.perf_counter() - self._t0,
            time_to_first_token=self.ttft,
            outcome=outcome,
            error=type(error).__name__ if error is not None else None,
            detail=_detail(error),
            usage=usage,
            request_id=request_id,
        )


# The usage of a request refused before it was sent: known, and zero.
_NOTHING_SENT = Usage(input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0)


def _detail(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return error.detail if isinstance(error, ProviderError) else scrub(str(error))


# --------------------------------------------------------------------------- the model


class ResilientModel:
    """A fallback chain of providers with retries, timeouts and circuit breakers (see the module doc).

    The model asked of each target: the target's ``model``; else, for the first target, the request's
    model; else the target config's ``default_model``. Fallback targets need one of the two (checked
    here, so a misconfigured chain fails when it is built, not during an outage).
    """

    def __init__(
        self,
        targets: Sequence[FallbackTarget],
        policy: RetryPolicy | None = None,
        breakers: Breakers | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        on_event: Callable[[ResilienceEvent], None] | None = None,
    ) -> None:
        if not targets:
            raise ConfigError("ResilientModel needs at least one target")
        for target in targets[1:]:
            if not (target.model or target.provider.config.default_model):
                raise ConfigError(
                    f"fallback target {target.label!r} has no model: set FallbackTarget.model or the config's "
                    "default_model"
                )
        self.targets = list(targets)
        self.policy = policy or RetryPolicy()
        self.breakers = breakers or Breakers()
        self._on_attempt = on_attempt
        self._on_event = on_event

    # ----------------------------------------------------------------- shared decisions

    def _request_for(self, index: int, target: FallbackTarget, request: ModelRequest) -> ModelRequest:
        model = target.model or (request.model if index == 0 else None) or target.provider.config.default_model
        if not model:
            raise ConfigError(f"no model for {target.label!r}: pass request.model or set the config's default_model")
        return request if model == request.model else request.model_copy(update={"model": model})

    def _emit(self, event: ResilienceEvent) -> None:
        _deliver(self._on_event, event)

    def _report(self, attempt: Attempt) -> None:
        _deliver(self._on_attempt, attempt)

    def _announce_fallback(
        self, index: int, request: ModelRequest, previous: ModelRequest | None, reason: ProviderError | None
    ) -> None:
        if index == 0 or previous is None:
            return
        before, after = self.targets[index - 1], self.targets[index]
        self._emit(
            FallingBack(
                from_provider=before.provider.name,
                from_label=before.provider.config.label,
                from_model=previous.model,
                to_provider=after.provider.name,
                to_label=after.provider.config.label,
                to_model=request.model,
                reason=type(reason).__name__ if reason is not None else "unknown",
            )
        )

    def _after_failure(self, error: ProviderError, clock: _Clock, attempt: int) -> float | None:
        """Seconds to wait before retrying this target, ``None`` to move on; raises when the call must stop."""
        if not error.retryable:
            if isinstance(error, FALLBACK_ERRORS):
                return None
            raise error  # BadRequest and anything unknown: the request itself is wrong
        if attempt >= self.policy.attempts_for(clock.target.provider):
            return None
        delay = self.policy.delay(attempt, error)
        if delay is not None:
            self._emit(
                Retrying(
                    provider=clock.target.provider.name,
                    config_label=clock.target.provider.config.label,
                    model=clock.model,
                    attempt=attempt,
                    delay=delay,
                    error=type(error).__name__,
                )
            )
        return delay

    @staticmethod
    def _exhausted(errors: list[ProviderError]) -> ProviderError:
        last = errors[-1]
        if len(errors) > 1:
            for earlier in errors[:-1]:
                last.add_note(f"earlier attempt: {type(earlier).__name__}: {earlier}")
        return last

    def _chain(
        self, request: ModelRequest, errors: list[ProviderError]
    ) -> Iterator[tuple[int, FallbackTarget, ModelRequest, CircuitBreaker, float]]:
        """The targets in order, each with its request, breaker and per-attempt timeout; announces fallbacks
        (with the error that caused them, the last one in ``errors``) as it moves along the chain."""
        previous: ModelRequest | None = None
        for index, target in enumerate(self.targets):
            req = self._request_for(index, target, request)
            self._announce_fallback(index, req, previous, errors[-1] if errors else None)
            previous = req
            yield (
                index,
                target,
                req,
                self.breakers.for_provider(target.provider),
                self.policy.timeout_for(target.provider),
            )

    def _failed(
        self, error: ProviderError, breaker: CircuitBreaker, clock: _Clock, attempt: int, errors: list[ProviderError]
    ) -> float | None:
        """Meter and record a failed attempt; the delay before retrying the same target, or None to move on."""
        breaker.record(error)
        self._report(clock.record("error", error))
        errors.append(error)
        return self._after_failure(error, clock, attempt)

    # ----------------------------------------------------------------- complete

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The first successful response along the chain; raises the last error when every target failed."""
        errors: list[ProviderError] = []
        number = 0
        for index, target, req, breaker, timeout in self._chain(request, errors):
            attempt = 0
            while True:
                attempt += 1
                try:
                    breaker.before_attempt(provider=target.provider.name, model=req.model)
                except Unavailable as error:
                    errors.append(error)
                    break
                number += 1
                clock = _Clock(target, index, req.model, number, streamed=False)
                try:
                    response = await self._complete_once(target.provider, req, timeout)
                except ProviderError as error:
                    delay = self._failed(error, breaker, clock, attempt, errors)
                    if delay is None:
                        break
                    await anyio.sleep(delay)
                    continue
                except Exception as error:
                    breaker.release()
                    self._report(clock.record("error", error))
                    raise
                except BaseException:
                    breaker.release()
                    self._report(clock.record("cancelled"))
                    raise
                breaker.record_success()
                self._report(clock.record("ok", response=response))
                return response
        raise self._exhausted(errors)

    @staticmethod
    async def _complete_once(provider: Provider, request: ModelRequest, seconds: float) -> ModelResponse:
        try:
            with anyio.fail_after(seconds):
                return await provider.complete(request)
        except TimeoutError:
            raise Timeout(
                f"no response within {seconds:g} s (routekit's per-attempt timeout)",
                provider=provider.name,
                model=request.model,
            ) from None

    # ----------------------------------------------------------------- stream

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream from the first target that produces an event; see the module doc for the rules."""
        errors: list[ProviderError] = []
        number = 0
        for index, target, req, breaker, timeout in self._chain(request, errors):
            attempt = 0
            while True:
                attempt += 1
                try:
                    breaker.before_attempt(provider=target.provider.name, model=req.model)
                except Unavailable as error:
                    errors.append(error)
                    break
                number += 1
                clock = _Clock(target, index, req.model, number, streamed=True)
                events = target.provider.stream(req)
                try:
                    opening = await self._open_stream(events, clock, target.provider, req, timeout)
                except ProviderError as error:
                    await _close(events)
                    delay = self._failed(error, breaker, clock, attempt, errors)
                    if delay is None:
                        break
                    await anyio.sleep(delay)
                    continue
                except BaseException as error:
                    await _close(events)
                    breaker.release()
                    cancelled = not isinstance(error, Exception)
                    self._report(clock.record("cancelled") if cancelled else clock.record("error", error))
                    raise
                async with aclosing(self._relay(events, opening, clock, breaker)) as relay:
                    async for event in relay:
                        yield event
                return
        raise self._exhausted(errors)

    @staticmethod
    async def _open_stream(
        events: AsyncIterator[StreamEvent], clock: _Clock, provider: Provider, request: ModelRequest, seconds: float
    ) -> list[StreamEvent]:
        """Read up to the first event that is not a usage report (the commit point), within ``seconds``."""
        held: list[StreamEvent] = []
        try:
            with anyio.fail_after(seconds):
                while True:
                    event = await anext(events, None)
                    if event is None:
                        raise StreamInterrupted(
                            "the stream ended before any content or final response",
                            provider=provider.name,
                            model=request.model,
                        )
                    clock.saw(event)
                    held.append(event)
                    if not isinstance(event, UsageReport):
                        return held
        except TimeoutError:
            raise Timeout(
                f"no stream event within {seconds:g} s (routekit's per-attempt timeout)",
                provider=provider.name,
                model=request.model,
            ) from None

    async def _relay(
        self, events: AsyncIterator[StreamEvent], opening: list[StreamEvent], clock: _Clock, breaker: CircuitBreaker
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield the committed stream to the caller; failures from here on propagate (no retry)."""
        final: ModelResponse | None = None
        try:
            for event in opening:
                if isinstance(event, ResponseDone):
                    final = event.response
                yield event
            if final is None:
                async for event in events:
                    clock.saw(event)
                    if isinstance(event, ResponseDone):
                        final = event.response
                    yield event
                    if final is not None:
                        break
            if final is None:
                raise StreamInterrupted(
                    "the stream ended without its final response",
                    provider=clock.target.provider.name,
                    model=clock.model,
                )
        except ProviderError as error:
            breaker.record(error)
            self._report(clock.record("error", error))
            raise
        except Exception as error:
            breaker.release()
            self._report(clock.record("error", error))
            raise
        except BaseException:
            # The endpoint answered; the caller stopped listening (after the final response: a success).
            breaker.record_success()
            self._report(clock.record("ok", response=final) if final is not None else clock.record("cancelled"))
            raise
        finally:
            await _close(events)
        breaker.record_success()
        self._report(clock.record("ok", response=final))


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    """Close an adapter's stream (and its HTTP response), even while the caller is being cancelled."""
    close = getattr(events, "aclose", None)
    if close is None:
        return
    with anyio.move_on_after(_CLOSE_GRACE, shield=True):
        await close()
