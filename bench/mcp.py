"""McpHub.call_tool against the raw mcp SDK ``ClientSession.call_tool``, on the same MCP server.

    .venv/bin/python -m bench.mcp [--quick] [--transport stdio|http] [--protocol auto|legacy] [--tool echo|add]
                                  [--calls N] [--bursts N] [--pin CPU] [--verbose]

The server is ``bench._mcp_server`` (the mcp SDK's own server with two no-op tools), in another process: over stdio
each side spawns its own copy, over streamable HTTP both sides hold a session on one server on 127.0.0.1. Both
sides negotiate the same protocol era (the SDK's ``negotiate_auto``, as the hub does, or the legacy handshake),
list the tools once (the SDK validates structured results against the listed output schema, the hub checks them
too) and send the same call with the same per-call timeout (the hub's default ``call_timeout``).

Both sides stay connected for the whole run and take turns, so noise from other processes lands on both alike:

- sequential: one call at a time, raw and hub alternating call by call (who goes first alternates too), each
  call timed, with its client CPU;
- concurrent: bursts of 50 callers at once, each making its calls back to back, each call timed (queueing
  included); raw and hub alternate burst by burst.

Printed: median and p99 latency in µs, client CPU µs per call (``time.process_time`` of this process; the server
runs in another process and is not counted), calls per second, and the ratios hub / raw. The hub's figures include
turning the MCP result into a ``ToolResultPart``. Target: hub median ≤ 1.10 × raw median.

On a shared machine latency is mostly other processes' scheduling: ``--pin CPU`` puts this process and the
servers on one CPU (one run queue, so neither side's server is scheduled better than the other's; client and
server then take turns on that CPU), and ``--verbose`` shows the ratio per chunk and burst, i.e. the noise. The
client CPU per call is the steadiest figure for the hub's own cost. After warm-up the heap is frozen
(``gc.freeze``) so a full collection of the SDK's import-time objects (tens of ms) does not land on one side.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
SERVER_MODULE = "bench._mcp_server"
SERVER_NAME = "bench"
WORKERS = 50
TARGET = 1.10  # hub median latency / raw SDK median latency
ARGUMENTS: dict[str, dict[str, Any]] = {"echo": {"text": "hello, routekit"}, "add": {"a": 2, "b": 40}}
EXPECTED = {"echo": "hello, routekit", "add": "42"}

Call = Callable[[], Awaitable[Any]]


SIDES = ("raw", "hub")
CHUNK = 50  # sequential pairs per reported chunk (the per-chunk ratios show the noise)


@dataclass(frozen=True)
class Plan:
    sequential: int  # sequential calls per side, alternating with the other side call by call
    bursts: int  # concurrent bursts per side, alternating with the other side burst by burst
    per_worker: int  # calls each of the WORKERS callers makes per burst
    warmup: int  # sequential calls per side before measuring


# Fine-grained alternation: noise from other processes on the machine lands on both sides alike.
FULL = Plan(sequential=500, bursts=20, per_worker=1, warmup=100)  # 500 sequential, 50 x 20 concurrent per side
QUICK = Plan(sequential=100, bursts=6, per_worker=1, warmup=30)


@dataclass
class Sample:
    """Latencies (ns), client CPU seconds and wall seconds, accumulated."""

    latencies: list[int] = field(default_factory=list)
    cpu: float = 0.0
    wall: float = 0.0

    def add(self, latencies: list[int], cpu: float, wall: float) -> None:
        self.latencies.extend(latencies)
        self.cpu += cpu
        self.wall += wall

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in µs."""
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1] / 1000

    def cpu_per_call(self) -> float:
        return self.cpu / len(self.latencies) * 1e6

    def calls_per_second(self) -> float:
        return len(self.latencies) / self.wall


# --------------------------------------------------------------------------- servers and clients


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    """The benchmark server on streamable HTTP in a subprocess; yields its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", SERVER_MODULE, "--http", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the benchmark MCP server exited with {proc.returncode} before listening")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark MCP server did not listen on 127.0.0.1:{port} within 30s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def raw_side(url: str | None, protocol: str, tool: str, timeout: float) -> AsyncIterator[tuple[Call, str]]:
    """A raw ``ClientSession`` (negotiated by ``mcp.Client``, the SDK's public way); yields (one call,
    negotiated protocol version)."""
    from mcp import Client

    arguments = ARGUMENTS[tool]
    async with contextlib.AsyncExitStack() as stack:
        transport: Any
        if url is None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            errlog = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115 - opened once, not per call
            params = StdioServerParameters(command=sys.executable, args=["-m", SERVER_MODULE], cwd=ROOT)
            transport = stdio_client(params, errlog=errlog)
        else:
            from mcp.client.streamable_http import streamable_http_client

            transport = streamable_http_client(url)
        client = await stack.enter_async_context(Client(transport, mode=protocol, cache=None))
        session = client.session
        await session.list_tools()

        async def call() -> Any:
            return await session.call_tool(tool, arguments, read_timeout_seconds=timeout)

        result = await call()
        text = getattr(result.content[0], "text", None)
        if result.is_error or text != EXPECTED[tool]:
            raise RuntimeError(f"raw call of {tool!r} returned an unexpected result: {result!r}")
        yield call, str(session.protocol_version)


@contextlib.asynccontextmanager
async def hub_side(url: str | None, protocol: str, tool: str) -> AsyncIterator[tuple[Call, str, float]]:
    """An ``McpHub`` with one server; yields (one call, negotiated protocol version, call timeout)."""
    from mcp_bridge import McpHub, parse_config
    from providers.types import TextPart

    entry: dict[str, Any] = {"protocol": protocol}
    if url is None:
        entry.update(command=sys.executable, args=["-m", SERVER_MODULE], cwd=str(ROOT))
    else:
        entry.update(type="http", url=url)
    config = parse_config({"mcpServers": {SERVER_NAME: entry}})
    server = config.servers[SERVER_NAME]
    name, arguments = f"{SERVER_NAME}.{tool}", ARGUMENTS[tool]
    async with McpHub(config) as hub:
        status = hub.status()[SERVER_NAME]
        if status.state != "ready":
            raise RuntimeError(f"the hub could not connect to the benchmark server: {status.error}")

        async def call() -> Any:
            return await hub.call_tool(name, arguments)

        part = await call()
        text = part.content[0].text if part.content and isinstance(part.content[0], TextPart) else None
        if part.is_error or text != EXPECTED[tool]:
            raise RuntimeError(f"hub call of {name!r} returned an unexpected result: {part!r}")
        yield call, str(status.protocol_version), float(server.call_timeout or 0)


# --------------------------------------------------------------------------- measuring


async def timed_call(call: Call, sample: Sample) -> None:
    """One call with its latency and client CPU (nothing else runs on this loop meanwhile)."""
    cpu0, start = time.process_time(), time.perf_counter_ns()
    await call()
    elapsed = time.perf_counter_ns() - start
    sample.add([elapsed], time.process_time() - cpu0, elapsed / 1e9)


async def run_sequential(sides: dict[str, Call], pairs: int, samples: dict[str, Sample]) -> None:
    """``pairs`` calls per side, raw and hub alternating call by call (who goes first alternates too)."""
    gc.collect()
    for index in range(pairs):
        for side in SIDES if index % 2 == 0 else SIDES[::-1]:
            await timed_call(sides[side], samples[side])


async def run_burst(call: Call, workers: int, per_worker: int, sample: Sample) -> None:
    """``workers`` callers at once, each making ``per_worker`` calls back to back."""
    latencies: list[int] = []
    clock = time.perf_counter_ns

    async def worker() -> None:
        for _ in range(per_worker):
            start = clock()
            await call()
            latencies.append(clock() - start)

    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    sample.add(latencies, time.process_time() - cpu0, time.perf_counter() - wall0)


@dataclass
class Results:
    transport: str
    protocol: str
    samples: dict[str, dict[str, Sample]] = field(default_factory=dict)  # mode -> side -> sample
    chunks: dict[str, list[float]] = field(default_factory=dict)  # mode -> hub/raw median ratio per chunk

    def side(self, mode: str) -> dict[str, Sample]:
        return self.samples.setdefault(mode, {side: Sample() for side in SIDES})

    def add_chunk(self, mode: str, chunk: dict[str, Sample]) -> None:
        total = self.side(mode)
        for side, sample in chunk.items():
            total[side].add(sample.latencies, sample.cpu, sample.wall)
        self.chunks.setdefault(mode, []).append(chunk["hub"].percentile(50) / chunk["raw"].percentile(50))


SEQUENTIAL, CONCURRENT = "sequential", f"{WORKERS} concurrent"


async def bench_transport(transport: str, url: str | None, protocol: str, tool: str, plan: Plan) -> Results:
    async with contextlib.AsyncExitStack() as stack:
        hub_call, hub_version, timeout = await stack.enter_async_context(hub_side(url, protocol, tool))
        raw_call, raw_version = await stack.enter_async_context(raw_side(url, protocol, tool, timeout))
        if raw_version != hub_version:
            raise RuntimeError(f"raw side negotiated {raw_version}, the hub {hub_version}: not comparable")
        sides = {"raw": raw_call, "hub": hub_call}
        # Warm-up: caches, connection pools, the server's own paths.
        await run_sequential(sides, plan.warmup, {side: Sample() for side in SIDES})
        for call in sides.values():
            await run_burst(call, WORKERS, 2, Sample())
        # The SDK's import leaves a large heap whose full collections take tens of ms; frozen, they no longer land
        # on whichever side happens to be running (young-generation collections still count, for both sides).
        gc.collect()
        gc.freeze()
        results = Results(transport, hub_version)
        for _ in range(plan.sequential // CHUNK):
            chunk = {side: Sample() for side in SIDES}
            await run_sequential(sides, CHUNK, chunk)
            results.add_chunk(SEQUENTIAL, chunk)
        for index in range(plan.bursts):
            chunk = {side: Sample() for side in SIDES}
            for side in SIDES if index % 2 == 0 else SIDES[::-1]:
                await run_burst(sides[side], WORKERS, plan.per_worker, chunk[side])
            results.add_chunk(CONCURRENT, chunk)
        gc.unfreeze()
        return results


# --------------------------------------------------------------------------- report

HEADER = (
    f"{'transport':<9} {'mode':<13} {'calls':>5} │ {'p50 raw':>8} {'hub':>8} {'×':>5} │ "
    f"{'p99 raw':>8} {'hub':>8} {'×':>5} │ {'CPU raw':>8} {'hub':>8} {'×':>5} │ {'calls/s raw':>11} {'hub':>7}"
)


def print_results(results: Results, verbose: bool) -> list[float]:
    """Print one transport's rows; return its hub/raw median ratios."""
    ratios = []
    for mode in (SEQUENTIAL, CONCURRENT):
        raw, hub = results.side(mode)["raw"], results.side(mode)["hub"]
        p50 = (raw.percentile(50), hub.percentile(50))
        p99 = (raw.percentile(99), hub.percentile(99))
        cpu = (raw.cpu_per_call(), hub.cpu_per_call())
        ratios.append(p50[1] / p50[0])
        print(
            f"{results.transport:<9} {mode:<13} {len(hub.latencies):>5} │ "
            f"{p50[0]:>8.0f} {p50[1]:>8.0f} {p50[1] / p50[0]:>5.2f} │ "
            f"{p99[0]:>8.0f} {p99[1]:>8.0f} {p99[1] / p99[0]:>5.2f} │ "
            f"{cpu[0]:>8.0f} {cpu[1]:>8.0f} {cpu[1] / cpu[0]:>5.2f} │ "
            f"{raw.calls_per_second():>11.0f} {hub.calls_per_second():>7.0f}",
            flush=True,
        )
        if verbose:
            chunks = " ".join(f"{ratio:.2f}" for ratio in results.chunks[mode])
            unit = f"{CHUNK} pairs" if mode == SEQUENTIAL else "burst"
            middle = statistics.median(results.chunks[mode])
            print(f"{'':<9} {'':<13} p50 ratio per {unit} (median {middle:.2f}): {chunks}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (fewer calls and bursts)")
    parser.add_argument("--transport", action="append", choices=("stdio", "http"), help="limit to these transports")
    parser.add_argument("--protocol", choices=("auto", "legacy"), default="auto", help="protocol era (default auto)")
    parser.add_argument("--tool", choices=tuple(ARGUMENTS), default="echo", help="the tool called (default echo)")
    parser.add_argument("--calls", type=int, help=f"sequential calls per side (a multiple of {CHUNK})")
    parser.add_argument("--bursts", type=int, help=f"concurrent bursts ({WORKERS} callers) per side")
    parser.add_argument("--verbose", action="store_true", help="also print the median ratio per chunk and burst")
    parser.add_argument(
        "--pin",
        type=int,
        metavar="CPU",
        help="run this process and the servers it starts on one CPU (same run queue for both sides' servers)",
    )
    args = parser.parse_args()
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})  # inherited by the server processes started below
    plan = QUICK if args.quick else FULL
    plan = Plan(
        sequential=max(CHUNK, args.calls or plan.sequential),
        bursts=max(1, args.bursts or plan.bursts),
        per_worker=plan.per_worker,
        warmup=plan.warmup,
    )
    print(
        f"tool {args.tool!r}; per side: {plan.sequential // CHUNK * CHUNK} sequential calls (alternating call by call) "
        f"and {plan.bursts} bursts of {WORKERS} callers × {plan.per_worker} calls (alternating burst by burst)\n"
        "latency µs, client CPU µs per call (this process only); × = hub / raw",
        flush=True,
    )
    print(HEADER)
    worst, protocols = 0.0, set()
    for transport in args.transport or ("stdio", "http"):
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(http_server()) if transport == "http" else None
            results = anyio.run(bench_transport, transport, url, args.protocol, args.tool, plan)
        worst = max(worst, *print_results(results, args.verbose))
        protocols.add(results.protocol)
    verdict = "met" if worst <= TARGET else "NOT met"
    print(
        f"protocol {', '.join(sorted(protocols))}; worst hub/raw median {worst:.3f} (target ≤ {TARGET:.2f}: {verdict})"
    )


if __name__ == "__main__":
    main()
