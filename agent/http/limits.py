"""Per-user request rate, failed sign-ins per client address, per-user concurrent runs, and the body size limit."""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TooManyRequests(Exception):
    """Answered as 429 with ``Retry-After`` (whole seconds)."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = max(1, math.ceil(retry_after))


class RateLimiter:
    """A sliding one-minute window per key: at most ``per_minute`` events in any 60 seconds.

    ``hit`` checks and counts in one step (requests of a user); ``check`` and ``record`` are the two halves,
    for events that are counted only once their outcome is known (failed sign-ins of a client address).
    The service runs in one event loop, so plain dictionaries are safe (no awaits in between).
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, *, what: str = "requests") -> None:
        self.per_minute = per_minute
        self.what = what
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> None:
        self.check(key)
        self.record(key)

    def check(self, key: str) -> None:
        """Raise TooManyRequests when ``key`` has used up its window; counts nothing."""
        now = self._clock()
        window = self._hits.get(key)
        if window is None:
            return
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) >= self.per_minute:
            raise TooManyRequests(
                f"rate limit reached: at most {self.per_minute} {self.what} per minute; retry later",
                window[0] + 60.0 - now,
            )

    def record(self, key: str) -> None:
        now = self._clock()
        if len(self._hits) > 10_000:  # forget idle keys (many client addresses guessing tokens)
            self._hits = {k: w for k, w in self._hits.items() if w and w[-1] > now - 60.0}
        self._hits.setdefault(key, deque()).append(now)


def client_key(host: str | None) -> str:
    """The key failed sign-ins are counted under: the client's address, an IPv6 client's /64 network.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it rotate freely.
    """
    if not host:
        return "ip:unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"ip:{host}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"


class RunSlots:
    """At most ``limit`` agent runs at once per user."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}

    def acquire(self, user_id: str) -> None:
        active = self._active.get(user_id, 0)
        if active >= self.limit:
            raise TooManyRequests(
                f"{active} runs are already in progress for this user (the limit is {self.limit}); "
                "wait for one to finish",
                1.0,
            )
        self._active[user_id] = active + 1

    def release(self, user_id: str) -> None:
        left = self._active.get(user_id, 0) - 1
        if left > 0:
            self._active[user_id] = left
        else:
            self._active.pop(user_id, None)

    def active(self, user_id: str) -> int:
        return self._active.get(user_id, 0)


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not ``Content-Length`` is sent.

    The body is read (up to the limit) before the application sees it, so an oversized chunked body is
    refused without the handler ever running.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body too large: the limit is {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
