"""A pool of open MCP hubs, so that a run does not reconnect its MCP servers every time.

Opening a hub (connect, initialize, list tools) costs about as much CPU as the rest of a one-tool run. The
pool keeps hubs open between runs, keyed by user, server names and a digest of the resolved configs (secrets
included, so an edited server gets a new hub). A hub is leased to one run at a time: its sampling and
elicitation requests then reach that run's session only. Idle hubs close after ``idle_seconds``; at most
``max_idle`` stay open. Each hub lives in its own task of the pool's task group (anyio requires the task
that enters a hub's task group to leave it), which the app's lifespan provides; without one (an app run
without lifespan events) runs open a hub of their own, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc

from mcp_bridge.config import McpConfig
from mcp_bridge.hub import McpHub
from providers.egress import EgressPolicy

_log = logging.getLogger("agent.http")


def config_key(user_id: str, config: McpConfig, egress: Mapping[str, EgressPolicy] | None = None) -> str:
    """Who and what: the user, a digest of every resolved server config (secrets included) and which servers
    are held to an egress policy."""
    data = {name: server.model_dump(mode="json") for name, server in sorted(config.servers.items())}
    for name, server in config.servers.items():
        data[name]["env"] = server.env_values()
        data[name]["headers"] = server.header_values()
        policy = (egress or {}).get(name)
        data[name]["egress"] = None if policy is None else [policy.allow_private_networks, sorted(policy.allowed_hosts)]
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return f"{user_id}:{digest}"


@dataclass(eq=False)
class _Pooled:
    key: str
    user_id: str
    hub: McpHub
    close: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)
    idle_since: float = 0.0

    def healthy(self) -> bool:
        return all(status.state in ("ready", "connecting", "restarting") for status in self.hub.status().values())


class HubPool:
    def __init__(self, idle_seconds: float = 300.0, max_idle: int = 32) -> None:
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self._idle: dict[str, list[_Pooled]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.opened = 0  # hubs opened so far (for tests and metrics)

    @property
    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Own the pool's hubs for the app's lifetime (used by the app's lifespan)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._reaper)
            try:
                yield
            finally:
                self._tg = None
                for pooled in [p for items in self._idle.values() for p in items]:
                    pooled.close.set()
                self._idle.clear()
                tg.cancel_scope.cancel()

    @asynccontextmanager
    async def lease(
        self, user_id: str, config: McpConfig, *, egress: Mapping[str, EgressPolicy] | None = None
    ) -> AsyncIterator[McpHub | None]:
        """A hub for this run (None when the pool is not running: the run then opens its own). ``egress``:
        the servers whose connections are held to a policy (see :class:`~mcp_bridge.hub.McpHub`)."""
        if self._tg is None:
            yield None
            return
        key = config_key(user_id, config, egress)
        pooled = self._take(key) or await self._open(key, user_id, config, egress)
        keep = False
        try:
            yield pooled.hub
            keep = True
        finally:
            if keep and self._tg is not None and pooled.healthy():
                pooled.idle_since = anyio.current_time()
                self._idle.setdefault(key, []).append(pooled)
                self._trim()
            else:
                pooled.close.set()

    def purge(self, user_id: str | None = None) -> None:
        """Close idle hubs (of one user, or all) after a server config changed."""
        for key in list(self._idle):
            items = self._idle[key]
            if user_id is None or (items and items[0].user_id == user_id):
                for pooled in self._idle.pop(key):
                    pooled.close.set()

    def _take(self, key: str) -> _Pooled | None:
        items = self._idle.get(key)
        while items:
            pooled = items.pop()
            if not items:
                self._idle.pop(key, None)
            if pooled.healthy():
                return pooled
            pooled.close.set()
        return None

    async def _open(
        self, key: str, user_id: str, config: McpConfig, egress: Mapping[str, EgressPolicy] | None
    ) -> _Pooled:
        from agent.session import SamplingRouter

        router = SamplingRouter()
        hub = McpHub(config, sampling=router, elicitation=router.elicit, egress=egress)
        pooled = _Pooled(key, user_id, hub)
        ready = anyio.Event()
        failure: list[BaseException] = []
        opening = anyio.CancelScope()

        async def own() -> None:
            try:
                with opening:
                    async with pooled.hub:
                        ready.set()
                        await pooled.close.wait()
            except Exception as exc:
                failure.append(exc)
            finally:
                ready.set()
                pooled.closed.set()

        assert self._tg is not None
        self._tg.start_soon(own, name=f"mcp-hub-{key[:12]}")
        try:
            await ready.wait()
        except BaseException:
            # The run that asked went away (its client disconnected) while the hub was opening: stop opening,
            # and the hub closes what it started (its servers' processes), rather than idling unowned.
            opening.cancel()
            pooled.close.set()
            raise
        if failure:
            raise failure[0]
        self.opened += 1
        return pooled

    def _trim(self) -> None:
        everything = sorted((p for items in self._idle.values() for p in items), key=lambda p: p.idle_since)
        for pooled in everything[: max(0, len(everything) - self.max_idle)]:
            self._idle[pooled.key].remove(pooled)
            if not self._idle[pooled.key]:
                del self._idle[pooled.key]
            pooled.close.set()

    async def _reaper(self) -> None:
        while True:
            await anyio.sleep(min(30.0, self.idle_seconds))
            cutoff = anyio.current_time() - self.idle_seconds
            for key in list(self._idle):
                keep = [p for p in self._idle[key] if p.idle_since >= cutoff]
                for pooled in self._idle[key]:
                    if pooled.idle_since < cutoff:
                        pooled.close.set()
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
