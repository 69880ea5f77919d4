"""A full routekit agent run against a hand-written loop on the raw SDKs, on the same fake and MCP server.

    .venv/bin/python -m bench.agent [--quick] [--family anthropic ...] [--runs N] [--sessions N] [--latency S]

One run: a user prompt, a model call that asks for one tool, the tool call over MCP stdio, and a second model
call that answers (the fake's default script). Both sides talk to the same fake provider (its own process, so
its CPU is not counted) and to the same kind of MCP server (``bench._mcp_server`` over stdio: each side spawns
its own copy and keeps it connected for the whole benchmark, as a service would).

* raw (the naive loop): the official SDK client with its default transport (created once), a raw mcp
  ``ClientSession``; call model, call tool, call model; no persistence, no events, no metering.
* raw+aiohttp: the same loop with the SDK's ``DefaultAioHttpClient`` (for reference: the transport alone;
  google-genai already uses aiohttp by default; Ollama: its httpx client on ``httpx_aiohttp``'s transport).
* routekit: ``Session.open`` (a shared store and hub, as the HTTP service has) → ``session.run(prompt,
  on_event=...)`` → ``aclose``: persisted to SQLite in a temporary ``ROUTEKIT_HOME`` (the default durability:
  each step's commit fsynced, see ``agent.loop``), metered, usage and budget checked, every event delivered
  (each response's text as one chunk: ``run`` calls the model without streaming, as the raw loop does);
  default adapter options.
* routekit-deltas: the same with ``deltas=True``: the model streams and text events arrive as generated
  (what ``Session.stream``, ``routekit run`` and the HTTP service do).
* routekit-nosync: ``routekit`` on a store opened with ``durable=False`` (WAL, synchronous=NORMAL: every step
  survives the process dying, the last commits may not survive a power cut), to show what the fsyncs cost.

Part 1 (zero latency): client CPU µs per run (``time.process_time`` of this process) and wall ms per run; the
sides take turns run by run so noise from other processes lands on all alike; ratio = routekit / raw.

Part 2 (load): ``--sessions`` runs in flight at once with ``--latency`` seconds per model response, each side in
its own process (so its peak RSS is its own): total wall time against the ideal (two model latencies; the
tool is a no-op), client CPU for the whole burst, and peak RSS (VmHWM). Each side bursts ``--rounds`` times,
the sides taking turns; the median burst (by CPU) is printed with the range.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("anthropic", "openai", "gemini", "ollama")
KEYS = {"anthropic": "sk-ant-bench", "openai": "sk-bench", "gemini": "AIza-bench", "ollama": None}
MODEL = "fake-model-1"
PROMPT = "Echo something, then tell me what came back."
MCP_MODULE = "bench._mcp_server"
SIDES = ("raw", "raw+aiohttp", "routekit", "routekit-deltas", "routekit-nosync")
LOAD_SIDES = ("raw", "raw+aiohttp", "routekit", "routekit-deltas")

Run = Callable[[], Awaitable[None]]


# --------------------------------------------------------------------------- processes


@contextlib.contextmanager
def fake_server(family: str, latency: float = 0.0) -> Iterator[str]:
    """The fake provider in its own process; yields its origin."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.serve", family, "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"fake {family} server did not start")
    try:
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def base_url(family: str, origin: str) -> str:
    return origin + "/v1" if family == "openai" else origin


# --------------------------------------------------------------------------- the raw loop


@contextlib.asynccontextmanager
async def raw_mcp() -> AsyncIterator[tuple[Any, list[Any]]]:
    """A raw mcp ClientSession on the benchmark server over stdio; yields (session, listed tools)."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async with contextlib.AsyncExitStack() as stack:
        errlog = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115 - one per benchmark
        params = StdioServerParameters(command=sys.executable, args=["-m", MCP_MODULE], cwd=ROOT)
        # mode="auto": the protocol era the hub negotiates too
        client = await stack.enter_async_context(Client(stdio_client(params, errlog=errlog), mode="auto", cache=None))
        session = client.session
        tools = (await session.list_tools()).tools
        yield session, tools


def _tool_text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@contextlib.asynccontextmanager
async def raw_side(family: str, origin: str, aiohttp: bool) -> AsyncIterator[Run]:
    """One run of the naive loop: model → tool → model, non-streaming, on one SDK client made once."""
    async with raw_mcp() as (mcp, tools), contextlib.AsyncExitStack() as stack:
        if family == "anthropic":
            yield await _raw_anthropic(stack, origin, aiohttp, mcp, tools)
        elif family == "openai":
            yield await _raw_openai(stack, origin, aiohttp, mcp, tools)
        elif family == "gemini":
            yield await _raw_gemini(stack, origin, aiohttp, mcp, tools)
        else:
            yield await _raw_ollama(stack, origin, aiohttp, mcp, tools)


async def _raw_anthropic(stack: contextlib.AsyncExitStack, origin: str, aiohttp: bool, mcp: Any, tools: Any) -> Run:
    import anthropic

    extra: dict[str, Any] = {"http_client": anthropic.DefaultAioHttpClient()} if aiohttp else {}
    client = anthropic.AsyncAnthropic(api_key=KEYS["anthropic"], base_url=origin, **extra)
    stack.push_async_callback(client.close)
    offered: Any = [{"name": t.name, "description": t.description or "", "input_schema": t.input_schema} for t in tools]

    async def run() -> None:
        messages: list[Any] = [{"role": "user", "content": PROMPT}]
        while True:
            reply = await client.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=offered)
            messages.append({"role": "assistant", "content": reply.content})
            calls = [block for block in reply.content if block.type == "tool_use"]
            if not calls:
                return
            results = []
            for call in calls:
                result = await mcp.call_tool(call.name, call.input)
                results.append({"type": "tool_result", "tool_use_id": call.id, "content": _tool_text(result)})
            messages.append({"role": "user", "content": results})

    return run


async def _raw_openai(stack: contextlib.AsyncExitStack, origin: str, aiohttp: bool, mcp: Any, tools: Any) -> Run:
    import openai

    extra: dict[str, Any] = {"http_client": openai.DefaultAioHttpClient()} if aiohttp else {}
    client = openai.AsyncOpenAI(api_key=KEYS["openai"], base_url=origin + "/v1", **extra)
    stack.push_async_callback(client.close)
    offered: Any = [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description or "", "parameters": t.input_schema},
        }
        for t in tools
    ]

    async def run() -> None:
        messages: list[Any] = [{"role": "user", "content": PROMPT}]
        while True:
            reply = await client.chat.completions.create(model=MODEL, messages=messages, tools=offered)
            message = reply.choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            tool_calls: Any = message.tool_calls
            if not tool_calls:
                return
            for call in tool_calls:
                result = await mcp.call_tool(call.function.name, json.loads(call.function.arguments or "{}"))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": _tool_text(result)})

    return run


async def _raw_gemini(stack: contextlib.AsyncExitStack, origin: str, aiohttp: bool, mcp: Any, tools: Any) -> Run:
    from google import genai
    from google.genai import types

    # google-genai's default async transport already is aiohttp when installed (it is here): both raw columns
    # are the SDK default. The ollama SDK has only httpx.
    options = types.HttpOptions(base_url=origin, api_version="v1beta")
    client = genai.Client(api_key=KEYS["gemini"], http_options=options)
    stack.push_async_callback(client.aio.aclose)
    declarations = [
        types.FunctionDeclaration(name=t.name, description=t.description or "", parameters_json_schema=t.input_schema)
        for t in tools
    ]
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=declarations)],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )

    async def run() -> None:
        contents: list[Any] = [types.Content(role="user", parts=[types.Part(text=PROMPT)])]
        while True:
            reply = await client.aio.models.generate_content(model=MODEL, contents=contents, config=config)
            content = reply.candidates[0].content if reply.candidates else None
            if content is None:
                return
            contents.append(content)
            calls = [part.function_call for part in content.parts or [] if part.function_call is not None]
            if not calls:
                return
            parts = []
            for call in calls:
                result = await mcp.call_tool(call.name or "", dict(call.args or {}))
                parts.append(
                    types.Part.from_function_response(name=call.name or "", response={"result": _tool_text(result)})
                )
            contents.append(types.Content(role="user", parts=parts))

    return run


async def _raw_ollama(stack: contextlib.AsyncExitStack, origin: str, aiohttp: bool, mcp: Any, tools: Any) -> Run:
    import ollama

    extra: dict[str, Any] = {}
    if aiohttp:  # the SDK has no aiohttp client of its own: its httpx client on httpx-aiohttp's transport
        from httpx_aiohttp import AiohttpTransport

        extra["transport"] = AiohttpTransport()
    client = ollama.AsyncClient(host=origin, **extra)
    stack.push_async_callback(client._client.aclose)
    offered: Any = [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description or "", "parameters": t.input_schema},
        }
        for t in tools
    ]

    async def run() -> None:
        messages: list[Any] = [{"role": "user", "content": PROMPT}]
        while True:
            reply = await client.chat(model=MODEL, messages=messages, tools=offered)
            messages.append(reply.message)
            if not reply.message.tool_calls:
                return
            for call in reply.message.tool_calls:
                result = await mcp.call_tool(call.function.name, dict(call.function.arguments))
                messages.append({"role": "tool", "tool_name": call.function.name, "content": _tool_text(result)})

    return run


# --------------------------------------------------------------------------- routekit


@contextlib.asynccontextmanager
async def routekit_side(
    family: str, origin: str, options: dict[str, Any], durable: bool = True, deltas: bool = False
) -> AsyncIterator[Run]:
    """One routekit run: open a session (shared store and hub), run the prompt with events, close it."""
    from agent import Session
    from mcp_bridge import McpHub, parse_config
    from providers.base import ProviderConfig
    from storage import open_store

    with tempfile.TemporaryDirectory(prefix="routekit-bench-") as home:
        os.environ["ROUTEKIT_HOME"] = home
        # The embedded default: $ROUTEKIT_HOME/routekit.db with durable commits (an fsync each); durable=False is
        # WAL with synchronous=NORMAL: safe when the process dies, may lose the last commits on power loss.
        store = await open_store(durable=durable)
        entry = {"command": sys.executable, "args": ["-m", MCP_MODULE], "cwd": str(ROOT)}
        config = parse_config({"mcpServers": {"bench": entry}})
        provider = ProviderConfig(
            provider=family,
            api_key=KEYS[family],
            base_url=base_url(family, origin),
            default_model=MODEL,
            options=options,
        )
        try:
            async with McpHub(config) as hub:
                status = hub.status()["bench"]
                if status.state != "ready":
                    raise RuntimeError(f"the hub could not start the benchmark MCP server: {status.error}")
                events: list[Any] = []

                async def run() -> None:
                    session = await Session.open(provider=provider, store=store, hub=hub)
                    async with session:
                        result = await session.run(PROMPT, on_event=events.append, deltas=deltas)
                    if result.stop_reason != "end_turn" or len(result.tool_calls) != 1:
                        raise RuntimeError(f"unexpected routekit run: {result.stop_reason} {result.tool_calls}")
                    events.clear()

                yield run
        finally:
            await store.close()


# --------------------------------------------------------------------------- part 1: one run at a time


@dataclass
class Sample:
    cpu: list[float]
    wall: list[float]


async def measure(family: str, origin: str, runs: int, rounds: int, options: dict[str, Any]) -> dict[str, Sample]:
    samples = {side: Sample([], []) for side in SIDES}
    async with contextlib.AsyncExitStack() as stack:
        sides: dict[str, Run] = {
            "raw": await stack.enter_async_context(raw_side(family, origin, aiohttp=False)),
            "raw+aiohttp": await stack.enter_async_context(raw_side(family, origin, aiohttp=True)),
            "routekit": await stack.enter_async_context(routekit_side(family, origin, options)),
            "routekit-deltas": await stack.enter_async_context(routekit_side(family, origin, options, deltas=True)),
            "routekit-nosync": await stack.enter_async_context(routekit_side(family, origin, options, durable=False)),
        }
        for _ in range(max(10, runs // 10)):  # warm-up: imports, pools, caches, the servers' own paths
            for run in sides.values():
                await run()
        gc.collect()
        gc.freeze()  # the SDKs' import-time heap: its full collections would land on whichever side runs
        try:
            for _ in range(rounds):
                totals = {side: [0.0, 0.0] for side in SIDES}
                for index in range(runs):
                    order = SIDES if index % 2 == 0 else SIDES[::-1]
                    for side in order:
                        cpu0, wall0 = time.process_time(), time.perf_counter()
                        await sides[side]()
                        totals[side][0] += time.process_time() - cpu0
                        totals[side][1] += time.perf_counter() - wall0
                for side, (cpu, wall) in totals.items():
                    samples[side].cpu.append(cpu / runs)
                    samples[side].wall.append(wall / runs)
        finally:
            gc.unfreeze()
    return samples


# --------------------------------------------------------------------------- part 2: many sessions in flight


async def load_worker(side: str, family: str, origin: str, sessions: int, options: dict[str, Any]) -> dict[str, Any]:
    """Runs in its own process: ``sessions`` runs at once; returns wall, CPU, peak RSS."""
    async with contextlib.AsyncExitStack() as stack:
        if side.startswith("routekit"):
            run = await stack.enter_async_context(
                routekit_side(family, origin, options, deltas=side.endswith("deltas"))
            )
        else:
            run = await stack.enter_async_context(raw_side(family, origin, aiohttp=side == "raw+aiohttp"))
        for _ in range(3):
            await run()
        gc.collect()
        failures: list[BaseException] = []

        async def one() -> None:
            try:
                await run()
            except Exception as error:  # counted and reported, not fatal to the burst
                failures.append(error)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(sessions):
                tg.start_soon(one)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "failures": len(failures),
        "first_failure": repr(failures[0])[:300] if failures else None,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size. ``/proc/self/status`` VmHWM is the peak of this program's own
    memory; ``ru_maxrss`` is not usable here: Linux carries it over ``execve``, so a worker started by a
    parent of 150 MB reports at least that much whatever it uses itself."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def run_load(side: str, family: str, origin: str, sessions: int, options: dict[str, Any]) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.agent", "--load-worker", side, "--origin", origin, "--family", family]
    args += ["--sessions", str(sessions), "--options", json.dumps(options)]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"load worker {side} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs and sessions (a smoke test of the figures)")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="limit to these providers")
    parser.add_argument("--runs", type=int, default=None, help="runs per side per round (part 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is kept")
    parser.add_argument("--sessions", type=int, default=None, help="runs in flight at once (part 2)")
    parser.add_argument("--latency", type=float, default=0.1, help="fake latency per response in part 2 (seconds)")
    parser.add_argument("--skip-load", action="store_true", help="part 1 only")
    parser.add_argument("--load-only", action="store_true", help="part 2 only")
    parser.add_argument("--options", default="{}", help="ProviderConfig.options for routekit, as JSON")
    parser.add_argument("--load-worker", choices=LOAD_SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--origin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = json.loads(args.options)
    if args.load_worker:
        family = (args.family or ["anthropic"])[0]
        result = anyio.run(load_worker, args.load_worker, family, args.origin, args.sessions, options)
        print(json.dumps(result))
        return
    runs = args.runs or (40 if args.quick else 200)
    rounds = 1 if args.quick else args.rounds
    sessions = args.sessions or (100 if args.quick else 500)
    families = args.family or (["anthropic", "openai"] if args.quick else list(FAMILIES))

    if not args.load_only:
        part_one(families, runs, rounds, options)
    if not args.skip_load:
        part_two(families, sessions, rounds, args.latency, options)


def part_one(families: list[str], runs: int, rounds: int, options: dict[str, Any]) -> None:
    print(f"part 1: one run = 2 model calls + 1 MCP stdio tool call, zero-latency fake; {runs} runs x {rounds}")
    print(f"{'provider':<10} {'side':<16} {'CPU µs/run':>11} {'wall ms/run':>12} {'CPU ratio':>10} {'wall ratio':>11}")
    for family in families:
        with fake_server(family) as origin:
            samples = anyio.run(measure, family, origin, runs, rounds, options)
        raw_cpu = statistics.median(samples["raw"].cpu)
        raw_wall = statistics.median(samples["raw"].wall)
        for side in SIDES:
            cpu, wall = statistics.median(samples[side].cpu), statistics.median(samples[side].wall)
            print(
                f"{family:<10} {side:<16} {cpu * 1e6:>11.0f} {wall * 1e3:>12.2f} {cpu / raw_cpu:>9.2f}x "
                f"{wall / raw_wall:>10.2f}x",
                flush=True,
            )


def part_two(families: list[str], sessions: int, rounds: int, latency: float, options: dict[str, Any]) -> None:
    """Each side's burst ``rounds`` times, the sides taking turns (one burst is at the mercy of whatever else
    the machine does in those seconds); the median burst by CPU is printed, with the CPU range."""
    ideal = 2 * latency
    print(f"\npart 2: {sessions} runs in flight, fake latency {latency * 1e3:.0f} ms; ideal {ideal:.2f} s", end="")
    print(f"; median of {rounds} bursts")
    print(
        f"{'provider':<10} {'side':<16} {'wall s':>7} {'x ideal':>8} {'CPU s':>6} {'CPU range':>11} "
        f"{'CPU ratio':>10} {'peak RSS MB':>12} {'failed':>7}"
    )
    for family in families:
        with fake_server(family, latency) as origin:
            bursts: dict[str, list[dict[str, Any]]] = {side: [] for side in LOAD_SIDES}
            for index in range(rounds):
                for side in LOAD_SIDES if index % 2 == 0 else LOAD_SIDES[::-1]:
                    bursts[side].append(run_load(side, family, origin, sessions, options))
        raw_cpu = statistics.median(b["cpu"] for b in bursts["raw"])
        for side in LOAD_SIDES:
            ordered = sorted(bursts[side], key=lambda b: b["cpu"])
            r = ordered[len(ordered) // 2]
            failures = sum(b["failures"] for b in ordered)
            print(
                f"{family:<10} {side:<16} {r['wall']:>7.2f} {r['wall'] / ideal:>7.1f}x {r['cpu']:>6.2f} "
                f"{ordered[0]['cpu']:>5.2f}-{ordered[-1]['cpu']:<5.2f} {r['cpu'] / raw_cpu:>9.2f}x "
                f"{max(b['peak_rss_mb'] for b in ordered):>12.0f} {failures:>7}",
                flush=True,
            )
            for burst in ordered:
                if burst["first_failure"]:
                    print(f"    first failure: {burst['first_failure']}")
                    break


if __name__ == "__main__":
    main()
