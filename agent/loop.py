"""The agent loop: one step at a time — model call, tool calls (parallel, bounded), results — until done.

Durability (what a crash can lose: nothing that finished):

* The user's prompt is written before the first model call (a crash while the model answers keeps it);
  a new session's row is created in that same transaction (a session is stored on its first write).
* After every model response, the step's messages (the previous tool results, and the new assistant
  message), the usage rows of every attempt of that call and the start records of the tool calls that
  are about to run are written in ONE transaction (``Store.record_step``), before any tool runs. (When a
  call needs a person's approval, the step is written first and the starts after the decision.)
* Every tool call is recorded as started before it runs (above) and finished (with its result) right
  after, before the next model call, so a resumed session knows which calls completed. The tool-result
  message itself is written with the next step's transaction; on resume it is rebuilt from the records.
* Text deltas are never written one by one (a step is the unit of persistence).
* Synced and unsynced commits: every commit above is written before the loop goes on, so a process that
  dies loses nothing. The prompt and the tool-call ends are committed without waiting for an fsync
  (``sync=False``): the model response that follows them is committed with one, and the write-ahead log
  is written in order, so that fsync makes them durable too. Only a power cut (or a PostgreSQL server
  crash) in between can lose them, and then nothing is wrong, only less is known: a lost prompt had no
  answer yet, and a call whose end was lost reads as started, which resume treats as possibly run (not
  repeated unless the tool is read-only or idempotent). This halves the fsyncs of a tool-using run.

* Model calls in flight: the commit that precedes a model call also records it as an open attempt (the
  prompt's commit, or the end of the step's last tool call; a commit of its own only when none precedes
  it, e.g. after calls that were all refused), and the step's commit that writes the call's usage removes
  it. An open attempt that a killed process leaves behind becomes an ``interrupted`` usage row when the
  session is resumed or the store opened (:mod:`storage.attempts`): spend is never silently missing.

Resuming (:meth:`Run.settle_pending`): when the stored history ends with an assistant message whose
tool calls have no results, each call is settled from its record — finished: the stored result; never
started: validated, approved and run now; started but unfinished (the process died): run again only when
the tool is annotated read-only or idempotent, otherwise answered with an "interrupted" error so the
model can decide. No tool call without a result ever reaches a provider.

Cancellation and limits: the run stops at a safe point with a stop reason; cancellation (the caller's
or :meth:`Session.cancel`) interrupts a model stream or running tools, and a shielded cleanup writes what
is known: the partial answer, "interrupted" results for running calls, and every attempt's usage.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio

from agent.approval import ApprovalRequest, Approve, Deny, EditArguments
from agent.events import (
    ApprovalRequested,
    FallbackUsed,
    RetryScheduled,
    TextChunk,
    ThinkingChunk,
    ToolCallFinished,
    ToolCallStarted,
    ToolProgress,
    UsageUpdated,
)
from agent.limits import LimitReason, LimitTracker
from agent.metering import meter
from providers.history import INTERRUPTED_RESULT_TEXT
from providers.resilience import Attempt, FallingBack, ResilienceEvent, Retrying
from providers.types import (
    Message,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)

if TYPE_CHECKING:
    from agent.events import AgentEvent
    from agent.session import Session, ToolCallSummary, _Tool
    from mcp_bridge.callbacks import ProgressEvent
    from storage.attempts import OpenAttempt
    from storage.repositories import ToolStart
    from storage.usage import UsageEntry

__all__ = ["Run"]

_MODEL_STOP = {
    "end_turn": "end_turn",
    "tool_use": "end_turn",
    "stop_sequence": "end_turn",
    "pause": "end_turn",
    "other": "end_turn",
    "max_tokens": "max_tokens",
    "context_exceeded": "max_tokens",
    "content_filter": "refusal",
    "refusal": "refusal",
    "error": "error",
}

_CLEANUP_GRACE = 10.0


def _error_result(call: ToolCallPart, text: str) -> ToolResultPart:
    return ToolResultPart(call_id=call.id, name=call.name, content=[TextPart(text=text)], is_error=True)


class Run:
    """One ``Session.run`` / ``stream`` / ``resume``: the state the loop needs between steps."""

    def __init__(
        self,
        session: Session,
        *,
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        tracker: LimitTracker,
        emit: Callable[[AgentEvent], None] | None,
        deltas: bool = False,
    ) -> None:
        self.session = session
        self.deltas = deltas  # stream model calls and deliver text as it arrives (else one call, one chunk)
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.tracker = tracker
        self._emit = emit
        self.pending_messages: list[Message] = []
        self.pending_usage: list[UsageEntry] = []
        self.tool_summaries: list[ToolCallSummary] = []
        self.stop_reason: str | None = None
        self.last_response: ModelResponse | None = None
        self.partial_text: list[str] = []
        self.usage_unknown = False
        # The tool phase in progress (for cleanup after cancellation).
        self._step_calls: list[ToolCallPart] = []
        self._step_results: list[ToolResultPart | None] = []
        self._running: dict[str, ToolCallPart] = {}
        # The open attempt in the database for the next (or current) model call, and where that call is:
        # "written" (not made yet), "called" (in flight), "done" (its usage awaits the step's commit).
        self._attempt: OpenAttempt | None = None
        self._attempt_state = "written"
        self._tools_left = 0  # tool calls of this step still to end (the last one's commit opens the next call)
        self._model_follows = False  # no stop is due after this step's tools (the next call may be opened)

    def emit(self, event: AgentEvent) -> None:
        if self._emit is not None:
            self._emit(event)

    # ----------------------------------------------------------------- metering (ResilientModel callbacks)

    def on_attempt(self, attempt: Attempt) -> None:
        session = self.session
        metered = meter(attempt, user_id=session.user_id, session_id=session.session_id, config_ids=session.config_ids)
        usage = attempt.usage
        if metered.unknown:
            self.usage_unknown = True
        self.pending_usage.append(metered.entry)  # written with the step (flush), never on its own
        if metered.counted is not None:
            self.tracker.add_usage(metered.counted, metered.cost)
        if attempt.outcome == "ok" and usage is not None:
            self.emit(UsageUpdated(step=usage, total=self.total_usage(), cost_usd=self.cost_usd()))

    def on_resilience(self, event: ResilienceEvent) -> None:
        if isinstance(event, Retrying):
            self.emit(RetryScheduled(event.provider, event.model, event.attempt, event.delay, event.error))
        elif isinstance(event, FallingBack):
            self.emit(
                FallbackUsed(event.from_provider, event.from_model, event.to_provider, event.to_model, event.reason)
            )

    def total_usage(self) -> Usage:
        """The run's usage so far: each field summed over its calls, None when any call left it unknown."""
        return self.tracker.usage

    def cost_usd(self) -> float | None:
        if not self.tracker.cost_known or self.usage_unknown:
            return None
        return float(self.tracker.cost_usd)

    def cost_decimal(self) -> Decimal | None:
        return None if self.cost_usd() is None else self.tracker.cost_usd

    # ----------------------------------------------------------------- persistence

    def add_message(self, message: Message) -> None:
        self.session.history.append(message)
        self.pending_messages.append(message)

    async def flush(
        self, tool_starts: list[ToolStart] | None = None, *, sync: bool = True, open_next: bool = False
    ) -> None:
        """Write the pending messages and usage rows (and ``tool_starts``) in one transaction; a session
        opened but not yet stored is created in the same transaction, a finished model call's open attempt
        is closed in it, and with ``open_next`` the next model call is recorded as open. ``sync=False``: see
        the module doc."""
        close = self._attempt if self._attempt is not None and self._attempt_state == "done" else None
        opened = self._new_attempt() if open_next and (self._attempt is None or close is not None) else None
        if not self.pending_messages and not self.pending_usage and not tool_starts and not close and not opened:
            return
        session = self.session
        messages, usage = self.pending_messages, self.pending_usage
        self.pending_messages, self.pending_usage = [], []
        await session.store.record_step(
            session.session_id,
            messages,
            usage,
            tool_starts=tool_starts or (),
            new_session=session.unsaved_record,
            sync=sync,
            close_attempt=close.id if close is not None else None,
            open_attempt=opened,
        )
        session.unsaved_record = None
        if close is not None:
            self._attempt = None
        if opened is not None:
            self._attempt, self._attempt_state = opened, "written"

    def _new_attempt(self) -> OpenAttempt:
        return self.session.next_open_attempt(self.model, streamed=self.deltas)

    async def _open_call(self) -> None:
        """Before a model call: its open attempt is in the database (a commit of its own if none carried it)."""
        store = self.session.store
        if self._attempt is not None and self._attempt_state == "done":  # (a call whose step was not written)
            await store.open_attempts.close(self._attempt.id)
            self._attempt = None
        if self._attempt is None:
            attempt = self._new_attempt()
            await store.open_attempts.open(attempt)
            self._attempt = attempt
        self._attempt_state = "called"

    async def drop_unused_attempt(self) -> None:
        """At the end of the run: remove an open attempt whose call was never made (the run stopped first)."""
        if self._attempt is not None and self._attempt_state == "written":
            attempt, self._attempt = self._attempt, None
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):  # else it is settled later
                await self.session.store.open_attempts.close(attempt.id)

    # ----------------------------------------------------------------- the loop

    async def loop(self, prompt: str | None) -> None:
        await self.settle_pending()
        if prompt is not None:
            self.add_message(Message.user(prompt))
            # Written before the first model call: a crash while the model thinks must not lose the prompt
            # (settled tool results from a resume go in the same transaction), and the call is recorded as
            # open in it. Without an fsync of its own: the step's synced commit covers it (module doc).
            await self.flush(sync=False, open_next=self.tracker.before_model_call() is None)
        while True:
            reason = self.tracker.before_model_call()
            if reason is not None:
                self.stop_reason = reason
                return
            response = await self.model_step()
            message = self.session.unique_call_ids(response.message)
            self.tracker.turns += 1
            self.add_message(message)
            calls = message.tool_calls
            if not calls:
                await self.flush()
                self.stop_reason = _MODEL_STOP.get(response.stop_reason, "end_turn")
                return
            # The tool phase writes this step (message and usage) together with the calls' starts.
            stop = await self.tool_phase(calls, {})
            if stop is not None:
                self.stop_reason = stop
                return

    async def model_step(self) -> ModelResponse:
        session = self.session
        tools = session.tool_specs()
        # Every input is already a validated model or plain value: no re-validation of the whole history.
        request = ModelRequest.model_construct(
            model=self.model,
            messages=list(session.history),
            system=session.system,
            tools=tools,
            temperature=None if self.temperature is None else float(self.temperature),
            max_tokens=self.max_tokens,
            metadata={},  # given: model_construct's default_factory path inspects the factory on every call
        )
        await self._open_call()
        with session.tracer.chat(session.provider_name, self.model, session.session_id) as span:
            try:
                if self.deltas:
                    final = await self._streamed(request)
                else:
                    final = await session.model.complete(request)
            finally:
                self._attempt_state = "done"  # its usage (whatever the outcome) goes with the next commit
            if not self.deltas:
                self._emit_whole(final)
            span.set_attribute("gen_ai.response.model", final.model)
            span.set_attribute("gen_ai.response.finish_reasons", [final.stop_reason])
            span.set_attribute("gen_ai.usage.input_tokens", final.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", final.usage.output_tokens)
        self.last_response = final
        return final

    async def _streamed(self, request: ModelRequest) -> ModelResponse:
        """One model call as a stream: text and thinking delivered as they arrive (kept for a cancelled run)."""
        final: ModelResponse | None = None
        self.partial_text = []
        emit = self._emit
        async for event in self.session.model.stream(request):
            kind = type(event)
            if kind is TextDelta:
                assert isinstance(event, TextDelta)
                self.partial_text.append(event.text)
                if emit is not None:
                    emit(TextChunk(event.text))
            elif kind is ThinkingDelta:
                assert isinstance(event, ThinkingDelta)
                if emit is not None:
                    emit(ThinkingChunk(event.text))
            elif kind is ResponseDone:
                assert isinstance(event, ResponseDone)
                final = event.response
        assert final is not None, "ResilientModel.stream ends with ResponseDone or raises"
        self.partial_text = []
        return final

    def _emit_whole(self, response: ModelResponse) -> None:
        """The text and thinking of a response made without streaming, one chunk each, in part order."""
        if self._emit is None:
            return
        for part in response.message.parts:
            if isinstance(part, TextPart) and part.text:
                self._emit(TextChunk(part.text))
            elif isinstance(part, ThinkingPart) and part.text:
                self._emit(ThinkingChunk(part.text))

    # ----------------------------------------------------------------- tools

    async def tool_phase(self, calls: list[ToolCallPart], settled: dict[str, ToolResultPart]) -> LimitReason | None:
        """Validate, approve and run one assistant message's calls; append the tool message (call order)."""
        session = self.session
        self._step_calls = calls
        results: list[ToolResultPart | None] = [settled.get(call.id) for call in calls]
        self._step_results = results
        runnable: list[tuple[int, ToolCallPart, _Tool, dict[str, Any], str | None]] = []
        invalid = False
        for index, call in enumerate(calls):
            if results[index] is not None:
                continue
            tool = session.tool(call.name)
            problem = self._check(call, tool)
            if problem is not None:
                invalid = True
                results[index] = self._refuse(call, call.arguments, problem)
                continue
            assert tool is not None
            decision = await self._approve(call, tool)
            if isinstance(decision, str):
                results[index] = self._refuse(call, call.arguments, decision)
                continue
            arguments, note = decision
            runnable.append((index, call, tool, arguments, note))
        stop: LimitReason | None = None
        allowed = self.tracker.tool_calls_allowed(len(runnable))
        if allowed < len(runnable):
            stop = "max_tool_calls"
            for index, call, _, arguments, _ in runnable[allowed:]:
                text = f"not run: the run reached its limit of {self.tracker.limits.max_tool_calls} tool calls"
                results[index] = self._refuse(call, arguments, text)
            runnable = runnable[:allowed]
        self.tracker.tool_calls += len(runnable)
        self.tracker.invalid_steps = self.tracker.invalid_steps + 1 if invalid else 0
        # Whether a model call is due after the tools (the last tool's commit then records it as open).
        self._model_follows = stop is None and self.tracker.invalid_steps < self.tracker.limits.max_invalid_steps
        self._tools_left = len(runnable)
        from storage.repositories import ToolStart

        # One transaction: the step that asked for the calls (unless already written before asking for an
        # approval) and every call's start, durable before any of them runs.
        await self.flush([ToolStart(call.id, call.name, arguments) for _, call, _, arguments, _ in runnable])
        for _, call, _, _, _ in runnable:
            self._running[call.id] = call
        if len(runnable) == 1:
            index, call, tool, arguments, note = runnable[0]
            results[index] = await self._execute(call, tool, arguments, note, None, recorded=True)
        elif runnable:
            limiter = anyio.CapacityLimiter(self.tracker.limits.max_parallel_tools)

            async def run_one(
                index: int, call: ToolCallPart, tool: _Tool, arguments: dict[str, Any], note: str | None
            ) -> None:
                results[index] = await self._execute(call, tool, arguments, note, limiter, recorded=True)

            async with anyio.create_task_group() as tg:
                for item in runnable:
                    tg.start_soon(run_one, *item)
        self._close_step()
        if stop is None and self.tracker.invalid_steps >= self.tracker.limits.max_invalid_steps:
            stop = "invalid_tool_calls"
        return stop

    def _close_step(self, interrupted: bool = False) -> None:
        """Append the tool message for the current step (interrupted results for calls without one)."""
        if not self._step_calls:
            return
        parts: list[Any] = []
        for call, result in zip(self._step_calls, self._step_results, strict=True):
            if result is None:
                result = _error_result(call, INTERRUPTED_RESULT_TEXT if interrupted else "not run")
            parts.append(result)
        self._step_calls, self._step_results = [], []
        self.add_message(Message.model_construct(role="tool", parts=parts))

    def _check(self, call: ToolCallPart, tool: _Tool | None) -> str | None:
        """Why the call cannot run as sent (unknown tool, unparseable or invalid arguments), or None."""
        if tool is None:
            known = ", ".join(sorted(self.session.tool_names())) or "none"
            return f"unknown tool {call.name!r}. Available tools: {known}. Call one of these by its exact name."
        if call.raw_arguments is not None:
            shown = call.raw_arguments[:500]
            return (
                f"the arguments for {call.name!r} are not a valid JSON object: {shown!r}. "
                "Send the arguments again as one JSON object matching the tool's input schema."
            )
        problem = tool.validate(call.arguments)
        if problem is not None:
            return (
                f"the arguments for {call.name!r} do not match its input schema: {problem}. "
                "Fix the arguments and call the tool again."
            )
        return None

    def _refuse(self, call: ToolCallPart, arguments: dict[str, Any], text: str) -> ToolResultPart:
        result = _error_result(call, text)
        self.emit(ToolCallFinished(call.id, call.name, arguments, 0.0, True, text, executed=False))
        self._summarize(call.name, arguments, True, 0.0, executed=False)
        return result

    def _summarize(self, name: str, arguments: dict[str, Any], is_error: bool, duration: float, executed: bool) -> None:
        from agent.session import ToolCallSummary

        self.tool_summaries.append(ToolCallSummary(name, arguments, is_error, duration, executed))

    async def _approve(self, call: ToolCallPart, tool: _Tool) -> tuple[dict[str, Any], str | None] | str:
        """(arguments to run with, note for the model) or the refusal text."""
        policy = self.session.approval
        verdict, why = policy.verdict(tool.spec, call.name, server_auto=tool.server_auto)
        if verdict == "auto":
            return call.arguments, None
        if verdict == "deny":
            return f"denied by the approval policy: {why}"
        if policy.callback is None:
            return (
                f"not run: {call.name!r} needs the user's approval ({why}) and no one can be asked in this session. "
                "The user can allow it with an auto-approve rule or 'trust': 'auto' in the MCP config."
            )
        # The model's response is durable before waiting on a person (who may take minutes).
        await self.flush()
        self.emit(ApprovalRequested(call.id, call.name, call.arguments, why))
        request = ApprovalRequest("tool", call.name, call.arguments, call.id, tool.spec, why)
        decision = await policy.callback(request)
        if isinstance(decision, Approve):
            return call.arguments, None
        if isinstance(decision, Deny):
            return f"the user denied this call: {decision.reason}"
        if not isinstance(decision, EditArguments):  # a callback that ignored its type hints
            return f"the approval callback returned {decision!r}, which is not a decision; the call was not run"  # type: ignore[unreachable]
        problem = tool.validate(decision.arguments)
        if problem is not None:
            return f"the user's edited arguments do not match the input schema: {problem}"
        note = f"[the user edited the arguments before the call ran; it ran with: {json.dumps(decision.arguments)}]"
        return decision.arguments, note

    async def _execute(
        self,
        call: ToolCallPart,
        tool: _Tool,
        arguments: dict[str, Any],
        note: str | None,
        limiter: anyio.CapacityLimiter | None,
        *,
        recorded: bool = False,
    ) -> ToolResultPart:
        session = self.session
        if limiter is not None:
            await limiter.acquire()
        try:
            if not recorded:
                await session.store.tool_calls.start(session.session_id, call.id, call.name, arguments)
            self._running[call.id] = call
            self.emit(ToolCallStarted(call.id, call.name, arguments))
            started = time.perf_counter()
            progress = self._progress_callback(call) if self._emit is not None else None
            with session.tracer.tool(call.name, call.id) as span:
                result = await session.call_tool(call, arguments, progress)
                span.set_attribute("error.type", "tool_error" if result.is_error else None)
            if note is not None:
                result = result.model_copy(update={"content": [TextPart(text=note), *result.content]})
            opened = self._attempt_after_tools()
            await session.store.tool_calls.finish(session.session_id, call.id, result, sync=False, open_attempt=opened)
            if opened is not None:
                self._attempt, self._attempt_state = opened, "written"
            del self._running[call.id]
            duration = time.perf_counter() - started
        finally:
            if limiter is not None:
                limiter.release()
        if self._emit is not None:
            self.emit(ToolCallFinished(call.id, call.name, arguments, duration, result.is_error, result.text()))
        self._summarize(call.name, arguments, result.is_error, duration, executed=True)
        return result

    def _attempt_after_tools(self) -> OpenAttempt | None:
        """For the commit of a tool call's end: the next model call to record as open, when this is the
        step's last tool to end and the loop will call the model next (limits are checked as the loop will)."""
        if self._tools_left <= 0:  # (a call re-run on resume: not part of a tool phase's count)
            return None
        self._tools_left -= 1
        if self._tools_left or not self._model_follows or self._attempt is not None:
            return None
        return self._new_attempt() if self.tracker.before_model_call() is None else None

    def _progress_callback(self, call: ToolCallPart) -> Callable[[ProgressEvent], Any]:
        async def on_progress(event: ProgressEvent) -> None:
            self.emit(ToolProgress(call.id, call.name, event.progress, event.total, event.message))

        return on_progress

    # ----------------------------------------------------------------- resume

    async def settle_pending(self) -> None:
        """Answer the calls of a trailing assistant message that has no results (after a crash)."""
        session = self.session
        history = session.history
        if not history or history[-1].role != "assistant" or not history[-1].tool_calls:
            return
        calls = history[-1].tool_calls
        records = {r.call_id: r for r in await session.store.tool_calls.list(session.session_id)}
        settled: dict[str, ToolResultPart] = {}
        rerun: list[tuple[int, ToolCallPart]] = []
        for index, call in enumerate(calls):
            record = records.get(call.id)
            if record is None:
                continue  # never started: the tool phase validates, approves and runs it
            if record.status == "finished" and record.result is not None:
                settled[call.id] = record.result
                continue
            tool = session.tool(call.name)
            if record.status == "started" and tool is not None and tool.retry_safe:
                rerun.append((index, call))
                settled[call.id] = _error_result(call, INTERRUPTED_RESULT_TEXT)  # placeholder, replaced below
                continue
            result = record.result or _error_result(
                call,
                f"tool call {call.name!r} was interrupted (the agent stopped while it ran) and was not repeated, "
                "because the tool is not marked read-only or idempotent: it may or may not have taken effect. "
                "Check its effect before calling it again.",
            )
            if record.status == "started":
                await session.store.tool_calls.interrupt(session.session_id, call.id, result)
            settled[call.id] = result
        for _, call in rerun:
            tool = session.tool(call.name)
            assert tool is not None
            record = records[call.id]
            settled[call.id] = await self._execute(call, tool, record.arguments, None, None, recorded=True)
        await self.tool_phase(calls, settled)

    # ----------------------------------------------------------------- cleanup

    async def save_partial(self, *, cancelled: bool) -> None:
        """After cancellation or an error: record interrupted calls, the partial answer and all usage."""
        session = self.session
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_GRACE):
            for call_id, call in list(self._running.items()):
                result = _error_result(call, INTERRUPTED_RESULT_TEXT)
                # Best effort: the call may not have been recorded as started yet.
                with contextlib.suppress(Exception):
                    await session.store.tool_calls.interrupt(session.session_id, call_id, result)
            self._running.clear()
            self._close_step(interrupted=True)
            if cancelled and self.partial_text:
                self.add_message(Message.assistant("".join(self.partial_text)))
                self.partial_text = []
            await self.flush()
