"""2026-07-28 multi-round requests (SEP-2322): answer a server's embedded input requests and retry.

A server may answer ``tools/call`` with an ``InputRequiredResult``: input requests (sampling, elicitation, roots)
to fulfil, and an opaque ``request_state`` to echo. The client answers them through its callbacks and sends the
request again with the responses, until a final result arrives.

The ``mcp`` SDK drives this loop only inside ``mcp.Client.call_tool`` (its driver lives in the private
``mcp.client._input_required``), which validates structured content and lists tools on its own; the hub sends
``tools/call`` itself (see :mod:`mcp_bridge.hub`), so it drives the loop here with the SDK's public session
pieces: ``ClientSession.dispatch_input_request`` (the same callback table that serves handshake-era server
requests) and ``InputRequiredRoundsExceededError``. The SDK's ``Client`` docs name this manual path
(``session.call_tool(..., allow_input_required=True)``); no upstream issue asks for the driver to be public.
The rules are the SDK's (and the TypeScript and Go SDKs'): at most 10 rounds; the requests of a round run
concurrently and the first refusal ends the call; a round that carries only ``request_state`` is retried after a
pause (50 ms, doubling to 250 ms, reset by a round with requests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

__all__ = ["MAX_ROUNDS", "drive_input_required"]

MAX_ROUNDS = 10
_FIRST_PAUSE = 0.05
_MAX_PAUSE = 0.25

Retry = Callable[[Any, "str | None"], Awaitable[Any]]
"""Sends the request again with ``(input_responses, request_state)``; returns its result."""


async def drive_input_required(
    session: ClientSession, first: Any, retry: Retry, *, max_rounds: int = MAX_ROUNDS
) -> Any:
    """The final result of a request whose first answer was ``first`` (returned as is when it is final).

    Raises ``InputRequiredRoundsExceededError`` after ``max_rounds`` rounds and ``MCPError`` when a callback
    refused an input request.
    """
    import mcp_types as types
    from mcp.client import InputRequiredRoundsExceededError

    current = first
    rounds = 0
    pause = _FIRST_PAUSE
    while isinstance(current, types.InputRequiredResult):
        rounds += 1
        if rounds > max_rounds:
            raise InputRequiredRoundsExceededError(max_rounds)
        responses: dict[str, Any] | None = None
        if current.input_requests:
            pause = _FIRST_PAUSE
            responses = await _answer_all(session, current.input_requests)
        else:
            await anyio.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)
        current = await retry(responses, current.request_state)
    return current


async def _answer_all(session: ClientSession, requests: dict[str, Any]) -> dict[str, Any]:
    """Every request through the session's callbacks, concurrently; the first refusal cancels the others."""
    import mcp_types as types
    from mcp.client import ClientRequestContext
    from mcp.shared.exceptions import MCPError

    responses: dict[str, Any] = {}
    refused: list[Any] = []

    async def answer(tg: anyio.abc.TaskGroup, key: str, request: Any) -> None:
        context = ClientRequestContext(
            session=session, request_id=key, meta=request.params.meta if request.params else None
        )
        response = await session.dispatch_input_request(context, request)
        if isinstance(response, types.ErrorData):
            refused.append(response)
            tg.cancel_scope.cancel()
        else:
            responses[key] = response

    async with anyio.create_task_group() as tg:
        for key, request in requests.items():
            tg.start_soon(answer, tg, key, request)
    if refused:
        raise MCPError.from_error_data(refused[0])
    return responses
