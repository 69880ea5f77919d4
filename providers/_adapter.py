"""The adapter skeleton: the pipeline every provider call goes through, whatever the SDK.

:class:`Adapter` owns the steps; each SDK module (``anthropic.py``, ``openai.py``, ``gemini.py``,
``ollama.py``) subclasses it and supplies only its mapping, under the same names in every adapter:

=====================  ===================================================================================
``build_client``       the SDK client(s), from the config and the egress policy (called once, by __init__)
``to_wire``            a prepared :class:`Call` -> the SDK request (parameters, body or config)
``send``               the SDK's non-streaming call -> whatever ``from_wire`` reads
``from_wire``          the SDK's answer -> the normalized :class:`ModelResponse`
``open_stream``        the SDK's streaming call -> an async iterator of chunks (``close_stream`` closes it)
``stream_state``       a :class:`StreamState` for one stream; its ``stream_events`` maps chunk -> events
``map_error``          anything the SDK or its transport raised -> the :mod:`providers.errors` taxonomy
``fetch_models``       the SDK's model listing -> :class:`ModelInfo` list
=====================  ===================================================================================

The skeleton does the rest, once for all: resolve the model and its :class:`~providers.profiles.ModelProfile`
→ compile the tools (:func:`providers.schema.compile_tools`, the one cache) → normalize the history → the
call → map errors (with the one model-not-found path: list the models the key can use, best effort) →
assemble the stream (read chunks, hand them to the stream state, end with ``ResponseDone`` or raise
``StreamInterrupted`` with what arrived).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import anyio

from providers.base import ProviderConfig, check_by_listing_models
from providers.errors import ModelNotFound, ProviderError, RequestNotSent, StreamInterrupted, unsent_cause
from providers.history import normalize_history
from providers.profiles import ModelProfile, profile_for
from providers.schema import CompiledToolset, compile_tools
from providers.types import CheckResult, Message, ModelInfo, ModelRequest, ModelResponse, ResponseDone, StreamEvent

if TYPE_CHECKING:
    from providers.egress import EgressPolicy

__all__ = ["Adapter", "Call", "StreamState"]

# The models a key can use are looked up for a ModelNotFound message within this many seconds at most.
_MODEL_LOOKUP_TIMEOUT = 10.0


@dataclass(slots=True)
class Call:
    """One request, prepared: what every mapping step reads."""

    request: ModelRequest
    model: str
    profile: ModelProfile
    toolset: CompiledToolset
    history: list[Message]


class StreamState(ABC):
    """What one stream delivered so far. Each adapter subclasses it with its chunk mapping.

    ``stream_events(chunk)`` maps one SDK chunk to routekit events and records what arrived; ``finished``
    says the terminal chunk came; ``response()`` is the response as far as it arrived (final once finished).
    """

    # Why a stream that ended without its terminal chunk is interrupted (the StreamInterrupted message).
    unfinished: ClassVar[str] = "the stream ended before its final chunk"

    request_id: str | None = None

    @abstractmethod
    def stream_events(self, chunk: Any) -> list[StreamEvent]: ...

    @property
    @abstractmethod
    def finished(self) -> bool: ...

    @abstractmethod
    def response(self) -> ModelResponse: ...

    def partial(self, error: ProviderError) -> ModelResponse | None:
        """What a failure mid-stream carries as ``partial`` (default: everything that arrived)."""
        del error
        return self.response()

    def closing_events(self) -> list[StreamEvent]:
        """The events after the last chunk of a finished stream (ends with ``ResponseDone``)."""
        return [ResponseDone(response=self.response())]


class Adapter(ABC):
    """A :class:`~providers.base.Provider` built from one SDK's mapping (see the module doc)."""

    # What the SDK call (and a listing) may raise that map_error translates; anything else escapes as a bug.
    call_errors: ClassVar[tuple[type[BaseException], ...]] = (Exception,)
    # What reading a stream may raise that map_error translates (SDK, transport and decoding errors).
    stream_errors: ClassVar[tuple[type[BaseException], ...]] = (Exception,)
    # The tool schema form (Gemini's options.schema_form); None: the target's only form.
    schema_form: Literal["json_schema", "openapi"] | None = None

    def __init__(self, config: ProviderConfig, *, egress: EgressPolicy | None = None) -> None:
        self.config = config
        self.name = config.provider
        self.profile = config.profile
        self._secrets = config.secrets()
        self.build_client(egress)

    # ------------------------------------------------------------------ the mapping (per SDK)

    @abstractmethod
    def build_client(self, egress: EgressPolicy | None) -> None:
        """Make the SDK client(s). Under ``egress`` nothing may come from the process environment."""

    @abstractmethod
    def to_wire(self, call: Call, *, stream: bool) -> Any:
        """The SDK request for ``call``."""

    @abstractmethod
    async def send(self, wire: Any, call: Call) -> Any:
        """The non-streaming SDK call; its result goes to :meth:`from_wire`."""

    @abstractmethod
    def from_wire(self, answer: Any, call: Call) -> ModelResponse:
        """The SDK's answer as routekit's response (an answer that is not one raises ``Unavailable``)."""

    @abstractmethod
    async def open_stream(self, wire: Any, call: Call) -> AsyncIterator[Any]:
        """The streaming SDK call: the chunks, as an async iterator."""

    @abstractmethod
    def stream_state(self, call: Call, chunks: AsyncIterator[Any]) -> StreamState:
        """A fresh state for one stream (``chunks`` is what :meth:`open_stream` returned)."""

    @abstractmethod
    async def close_stream(self, chunks: AsyncIterator[Any]) -> None:
        """Release the stream's HTTP response (on every exit: end, error, consumer stopping early)."""

    @abstractmethod
    def map_error(self, exc: BaseException, *, model: str | None, streaming: bool, started: bool) -> ProviderError:
        """``exc`` as a taxonomy error (scrubbed). ``model`` is None for a model listing; ``streaming``: raised
        while reading a stream; ``started``: at least one chunk had arrived. (Routekit's own errors and requests
        the egress policy refused never get here: :meth:`failure` handles them.)"""

    @abstractmethod
    async def fetch_models(self) -> list[ModelInfo]:
        """The SDK's model listing (errors are mapped by :meth:`list_models`)."""

    @abstractmethod
    async def aclose(self) -> None: ...

    def streams_instead(self, wire: Any, call: Call) -> bool:
        """Whether :meth:`complete` must be made as a stream (a generation the API refuses without one)."""
        del wire, call
        return False

    # ------------------------------------------------------------------ the pipeline (shared)

    def prepare(self, request: ModelRequest) -> Call:
        """Model and profile, compiled tools (cached), normalized history."""
        model = self.config.resolve_model(request.model or None)
        toolset = compile_tools(request.tools, self.profile, strict=request.strict_tools, schema_form=self.schema_form)
        history = normalize_history(request.messages, self.profile)
        return Call(request, model, profile_for(self.name, model), toolset, history)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        call = self.prepare(request)
        wire = self.to_wire(call, stream=False)
        if self.streams_instead(wire, call):
            return await self._complete_by_streaming(request)
        try:
            answer = await self.send(wire, call)
        except self.call_errors as exc:  # every SDK error is translated; none escapes the adapter
            raise await self.failure(exc, call.model) from None
        return self.from_wire(answer, call)

    async def _complete_by_streaming(self, request: ModelRequest) -> ModelResponse:
        async for event in self.stream(request):
            if isinstance(event, ResponseDone):
                return event.response
        raise AssertionError("stream() ends with ResponseDone or raises")  # pragma: no cover

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Events as they arrive, then ``ResponseDone``; ``StreamInterrupted`` (with ``partial``) when the
        stream breaks or ends without its terminal chunk."""
        call = self.prepare(request)
        wire = self.to_wire(call, stream=True)
        try:
            chunks = await self.open_stream(wire, call)
        except self.call_errors as exc:
            raise await self.failure(exc, call.model) from None
        state = self.stream_state(call, chunks)
        errors = self.stream_errors
        started = False
        try:
            while True:
                try:
                    chunk = await chunks.__anext__()
                    started = True
                    events = state.stream_events(chunk)
                except StopAsyncIteration:
                    break
                except errors as exc:
                    error = await self.failure(exc, call.model, streaming=True, started=started)
                    error.partial = state.partial(error)
                    raise error from None
                for event in events:
                    yield event
        finally:
            with anyio.CancelScope(shield=True):
                await self.close_stream(chunks)
        if not state.finished:
            raise StreamInterrupted(
                state.unfinished,
                provider=self.name,
                model=call.model,
                request_id=state.request_id,
                partial=state.response(),
                secrets=self._secrets,
            )
        for event in state.closing_events():
            yield event

    async def list_models(self) -> list[ModelInfo]:
        try:
            return await self.fetch_models()
        except self.call_errors as exc:
            raise await self.failure(exc, None) from None

    async def check(self) -> CheckResult:
        """Validate the key by listing models (costs no tokens)."""
        return await check_by_listing_models(self)

    # ------------------------------------------------------------------ errors (shared)

    async def failure(
        self, exc: BaseException, model: str | None, *, streaming: bool = False, started: bool = False
    ) -> ProviderError:
        """The taxonomy error for ``exc``; a model that does not exist gets the list of those that do."""
        if isinstance(exc, ProviderError):
            error = exc
        elif (denied := unsent_cause(exc)) is not None:  # the egress policy refused it: nothing was sent
            error = RequestNotSent(str(denied), provider=self.name, model=model, secrets=self._secrets)
        else:
            error = self.map_error(exc, model=model, streaming=streaming, started=started)
        if isinstance(error, ModelNotFound) and model is not None and not error.available:
            available = await self._model_ids()
            if available:
                error = ModelNotFound(
                    error.detail,
                    available=available,
                    provider=self.name,
                    model=model,
                    status_code=error.status_code,
                    request_id=error.request_id,
                    retry_after=error.retry_after,
                    partial=error.partial,
                    secrets=self._secrets,
                )
        return error

    async def _model_ids(self) -> list[str]:
        """Best effort: the models this key can use, in the provider's order (for a ModelNotFound message)."""
        try:
            with anyio.fail_after(min(self.config.timeout, _MODEL_LOOKUP_TIMEOUT)):
                return [info.id for info in await self.list_models()]
        except (ProviderError, TimeoutError):
            return []
