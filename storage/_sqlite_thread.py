"""The SQLite writer's own thread: runs functions on its connection, one at a time, for the event loop.

Why not aiosqlite's thread: a whole write transaction (BEGIN, the batch's statements, COMMIT) is run as ONE
function in the connection's thread, one trip from the event loop and back instead of one per statement, and
aiosqlite has no public way to run a function in its thread. The mechanism is the same as aiosqlite's (a queue
of jobs, results handed back with ``call_soon_threadsafe``), on public asyncio and threading APIs only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple["asyncio.Future[Any]", Callable[[], Any]]


class ConnectionThread:
    """A daemon thread serving :meth:`run` calls in order (a process that exits without closing the
    database is not held up by it; every commit it made is on disk already)."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in this thread; its result or exception. A caller cancelled while it runs does not
        stop it (the caller of a transaction shields it)."""
        if not self._thread.is_alive():
            raise RuntimeError("the SQLite connection thread has stopped")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, functools.partial(fn, *args)))
        return await future

    def stop(self) -> None:
        """End the thread once the jobs queued before this have run."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn = job
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                _hand_back(future, None, exc)
            else:
                _hand_back(future, result, None)


def _hand_back(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is waiting any more
        future.get_loop().call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
