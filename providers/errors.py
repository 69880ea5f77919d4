"""One error taxonomy for every provider SDK.

Adapters translate whatever their SDK raises (its own status errors, and the raw transport and
JSON errors some SDKs let through while streaming) into these classes. Each error says which
provider and model, what happened, whether retrying can help, and what to do — and never contains
a secret: messages pass through :func:`scrub` before they are stored on the exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from providers.types import ModelResponse, Usage


# Things that look like credentials in provider error texts (OpenAI echoes part of a bad key, URLs can
# carry ?key=..., headers can be echoed back). A pattern's group "keep", when present, is kept in place
# so the message still reads naturally ("Bearer [redacted]").
_SECRET_PATTERNS = [
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*]{6,}"),  # OpenAI-style and sk-ant-... keys, masked or not
    re.compile(r"\bAIza[0-9A-Za-z_\-]{10,}"),  # Google API keys
    re.compile(r"\b(?:gsk|xai|csk|nvapi|hf)_[A-Za-z0-9_\-*]{6,}"),  # Groq, xAI, Cerebras, NVIDIA, HF
    re.compile(r"(?i)(?P<keep>bearer\s+)[A-Za-z0-9._\-~+/=*]{8,}"),
    re.compile(r"(?i)(?P<keep>[?&](?:key|api[_-]?key|access_token|token)=)[^&\s\"']+"),
    re.compile(
        r"(?i)(?P<keep>(?:x-api-key|x-goog-api-key|api-key|authorization)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',}]+"
    ),
]


def _redact_match(match: re.Match[str]) -> str:
    keep = match.groupdict().get("keep") or ""
    return keep + "[redacted]"


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove known secrets and anything shaped like a credential from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_redact_match, text)
    return text


class RoutekitError(Exception):
    """Base of every error routekit raises on purpose."""


class ConfigError(RoutekitError, ValueError):
    """A provider configuration is unusable: unknown provider, missing key, malformed option."""


class EgressDenied(ConfigError):
    """The service's egress policy forbids this destination (see :mod:`providers.egress`); nothing was sent."""


def unsent_cause(exc: BaseException) -> EgressDenied | None:
    """The :class:`EgressDenied` somewhere in ``exc``'s cause chain (SDKs and transports wrap it), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressDenied):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class ToolSchemaError(RoutekitError, ValueError):
    """A tool's input schema cannot be expressed for a provider. Raised at translation time."""

    def __init__(self, tool: str, provider: str, keyword: str, detail: str) -> None:
        self.tool, self.provider, self.keyword, self.detail = tool, provider, keyword, detail
        super().__init__(
            f"tool {tool!r} cannot be offered to {provider}: {detail} (keyword {keyword!r}). "
            "Simplify the tool's inputSchema, or exclude this tool for this provider."
        )


class ProviderError(RoutekitError):
    """A model call failed. ``retryable`` says whether the same request may succeed later."""

    retryable: ClassVar[bool] = False
    hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        partial: ModelResponse | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.partial = partial  # what arrived before the failure (text, calls, usage), if anything
        self.detail = scrub(message, secrets)
        where = provider if not model else f"{provider} model {model!r}"
        status = f" (HTTP {status_code})" if status_code else ""
        text = f"{where}: {self.detail}{status}"
        if self.hint:
            text += f". {self.hint}"
        super().__init__(text)

    @property
    def partial_usage(self) -> Usage | None:
        return self.partial.usage if self.partial is not None else None

    def __reduce__(self) -> tuple[object, ...]:  # keep errors picklable across processes
        # The third item is state restored onto the rebuilt error: the partial response (its usage is
        # metered), ModelNotFound's model list and any notes.
        state = {key: self.__dict__[key] for key in ("partial", "available", "__notes__") if key in self.__dict__}
        return (
            _rebuild,
            (type(self), self.detail, self.provider, self.model, self.status_code, self.request_id, self.retry_after),
            state,
        )


def _rebuild(
    cls: type[ProviderError],
    detail: str,
    provider: str,
    model: str | None,
    status: int | None,
    request_id: str | None,
    retry_after: float | None,
) -> ProviderError:
    return cls(
        detail, provider=provider, model=model, status_code=status, request_id=request_id, retry_after=retry_after
    )


class AuthenticationError(ProviderError):
    hint = "Check the API key configured for this provider (it may be wrong, revoked or for another account)."


class PermissionDenied(ProviderError):
    hint = "The key is valid but not allowed to do this (model access, region, billing or organization)."


class RateLimited(ProviderError):
    retryable = True
    hint = "Too many requests or tokens for this key; routekit retries after the provider's retry-after."


class Overloaded(ProviderError):
    retryable = True
    hint = "The provider is overloaded; retry later or configure a fallback provider."


class Unavailable(ProviderError):
    retryable = True
    hint = "The provider or endpoint is unavailable (server error or connection failure); retry later."


class RequestNotSent(ProviderError):
    """The request was refused before it left routekit (the service's egress policy); nothing reached the
    provider, so it says nothing about the endpoint's health and costs nothing."""

    hint = "Nothing was sent to the provider."


class BadRequest(ProviderError):
    hint = "The provider rejected the request; the message above says which part."


class ContextTooLong(BadRequest):
    hint = "The conversation exceeds the model's context window; shorten it or pick a larger-context model."


class ModelNotFound(ProviderError):
    hint = "Check the model name; `routekit` can list the models this key can use."

    def __init__(self, message: str, *, available: Iterable[str] = (), **kwargs: object) -> None:
        self.available = list(available)
        if self.available:
            shown = ", ".join(self.available[:20]) + (" ..." if len(self.available) > 20 else "")
            message = f"{message}. Available models: {shown}"
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class Timeout(ProviderError):
    retryable = True
    hint = "The provider did not answer in time; retry, or raise the timeout for this provider config."


class StreamInterrupted(ProviderError):
    """The stream ended before its terminal event (dropped connection, truncation, corrupt chunk,
    or an error event mid-stream). ``partial`` holds what arrived, including any usage seen."""

    retryable = True
    hint = "The response stream broke off before it finished; the partial answer was discarded."


_CONTEXT_MARKERS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "exceeds the maximum",
    "token count",
    "reduce the length",
)


def looks_like_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _CONTEXT_MARKERS)


def error_for_status(status: int, message: str, *, model_missing: bool = False) -> type[ProviderError]:
    """The taxonomy class for an HTTP status (shared by every adapter's error mapping)."""
    if status in (400, 413, 422):
        return ContextTooLong if looks_like_context_overflow(message) or status == 413 else BadRequest
    if status == 401:
        return AuthenticationError
    if status in (402, 403):
        return PermissionDenied
    if status == 404:
        return ModelNotFound if model_missing or "model" in message.lower() else BadRequest
    if status == 408:
        return Timeout
    if status == 429:
        return RateLimited
    if status == 529:
        return Overloaded
    if status == 503:
        return Overloaded if "overload" in message.lower() else Unavailable
    if status == 504:
        return Timeout
    if status >= 500:
        return Unavailable
    return BadRequest


def parse_retry_after(headers: object, *, cap: float = 60.0) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), capped."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    value: float | None = None
    raw_ms = get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = None
    if value is None:
        raw = get("retry-after")
        if raw:
            try:
                value = float(raw)
            except ValueError:
                from email.utils import parsedate_to_datetime

                try:
                    import time

                    value = parsedate_to_datetime(raw).timestamp() - time.time()
                except (TypeError, ValueError):
                    value = None
    if value is None or value < 0:
        return None
    return min(value, cap)
