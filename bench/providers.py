"""routekit's client-side cost per model call over the raw SDK call, against the same zero-latency fake.

    .venv/bin/python -m bench.providers [--calls 300] [--family anthropic ...]

For each provider wire, a fake server runs in its own process (so its CPU is not counted) and the
same request — one user message and one offered tool, answered by a tool call — is sent N times
through the raw official SDK and N times through routekit's adapter, non-streaming and streaming.
Printed: client CPU microseconds per call (process time of this process) and the ratio
routekit / raw. The raw baseline builds the request dicts by hand once and reads the SDK's objects;
routekit compiles the tool schema, normalizes history, and returns normalized types.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from typing import Any

from providers.base import ProviderConfig, create_provider
from providers.types import Message, ModelRequest, ToolSpec

FAMILIES = ("anthropic", "openai", "gemini", "ollama")
KEYS = {"anthropic": "sk-ant-bench", "openai": "sk-bench", "gemini": "AIza-bench", "ollama": None}
MODEL = "fake-model-1"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL = ToolSpec(name="weather.get_weather", description="Current weather for a city.", input_schema=SCHEMA)
WIRE_NAME = "get_weather"  # what the raw clients offer (the raw loop needs no name mapping)


@contextmanager
def fake_server(family: str) -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.serve", family],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
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


Calls = tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]


def raw_calls(family: str, origin: str, *, aiohttp: bool = False) -> Calls:
    """(complete, stream) closures on the raw SDK, SDK retries off, same timeout as routekit."""
    messages: Any
    if family == "anthropic":
        import anthropic

        a_http: Any = {"http_client": anthropic.DefaultAioHttpClient()} if aiohttp else {}
        a_client = anthropic.AsyncAnthropic(api_key=KEYS[family], base_url=origin, max_retries=0, timeout=30, **a_http)
        a_tools: Any = [{"name": WIRE_NAME, "description": TOOL.description, "input_schema": SCHEMA}]
        messages = [{"role": "user", "content": "Weather in Paris?"}]

        async def a_complete() -> Any:
            return await a_client.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=a_tools)

        async def a_stream() -> Any:
            stream = await a_client.messages.create(
                model=MODEL, max_tokens=1024, messages=messages, tools=a_tools, stream=True
            )
            return [event async for event in stream]

        return a_complete, a_stream, a_client.close
    if family == "openai":
        import openai

        o_http: Any = {"http_client": openai.DefaultAioHttpClient()} if aiohttp else {}
        o_client = openai.AsyncOpenAI(
            api_key=KEYS[family], base_url=origin + "/v1", max_retries=0, timeout=30, **o_http
        )
        o_tools: Any = [
            {"type": "function", "function": {"name": WIRE_NAME, "description": TOOL.description, "parameters": SCHEMA}}
        ]
        messages = [{"role": "user", "content": "Weather in Paris?"}]

        async def o_complete() -> Any:
            return await o_client.chat.completions.create(model=MODEL, messages=messages, tools=o_tools)

        async def o_stream() -> Any:
            stream = await o_client.chat.completions.create(
                model=MODEL, messages=messages, tools=o_tools, stream=True, stream_options={"include_usage": True}
            )
            return [chunk async for chunk in stream]

        return o_complete, o_stream, o_client.close
    if family == "gemini":
        from google import genai
        from google.genai import types

        g_client = genai.Client(
            api_key=KEYS[family], http_options=types.HttpOptions(base_url=origin, api_version="v1beta", timeout=30_000)
        )
        config = types.GenerateContentConfig(
            tools=[
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=WIRE_NAME, description=TOOL.description, parameters_json_schema=SCHEMA
                        )
                    ]
                )
            ]
        )

        # A loop keeps a history, so contents is a list of turns (as routekit sends), not a bare string.
        g_contents: Any = [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]

        async def g_complete() -> Any:
            return await g_client.aio.models.generate_content(model=MODEL, contents=g_contents, config=config)

        async def g_stream() -> Any:
            stream = await g_client.aio.models.generate_content_stream(model=MODEL, contents=g_contents, config=config)
            return [chunk async for chunk in stream]

        return g_complete, g_stream, g_client.aio.aclose
    import ollama

    l_client = ollama.AsyncClient(host=origin, timeout=30)
    l_tools: Any = [
        {"type": "function", "function": {"name": WIRE_NAME, "description": TOOL.description, "parameters": SCHEMA}}
    ]
    messages = [{"role": "user", "content": "Weather in Paris?"}]

    async def l_complete() -> Any:
        return await l_client.chat(model=MODEL, messages=messages, tools=l_tools, stream=False)

    async def l_stream() -> Any:
        stream = await l_client.chat(model=MODEL, messages=messages, tools=l_tools, stream=True)
        return [chunk async for chunk in stream]

    async def l_close() -> None:
        await l_client._client.aclose()

    return l_complete, l_stream, l_close


def routekit_calls(family: str, origin: str) -> Calls:
    base_url = origin + "/v1" if family == "openai" else origin
    config = ProviderConfig(
        provider=family, api_key=KEYS[family], base_url=base_url, default_model=MODEL, timeout=30, max_retries=0
    )
    provider = create_provider(config)
    request = ModelRequest(model=MODEL, messages=[Message.user("Weather in Paris?")], tools=[TOOL])

    async def complete() -> Any:
        return await provider.complete(request)

    async def stream() -> Any:
        return [event async for event in provider.stream(request)]

    return complete, stream, provider.aclose


async def measure(fns: list[Callable[[], Awaitable[Any]]], calls: int) -> list[float]:
    """CPU µs per call of each function, interleaved call by call so machine noise hits all alike."""
    for _ in range(20):
        for fn in fns:
            await fn()
    gc.collect()
    totals = [0.0] * len(fns)
    order = list(range(len(fns)))
    for _ in range(calls):
        random.shuffle(order)  # no function always runs first (or right after another)
        for i in order:
            t0 = time.process_time()
            await fns[i]()
            totals[i] += time.process_time() - t0
    return [total / calls * 1e6 for total in totals]


# The Stainless SDKs default to httpx; routekit's adapters use their aiohttp transport (less CPU per call).
# The adapter's own cost is routekit against the raw SDK on the same transport; the default raw call is shown too.
SAME_TRANSPORT_AS_ROUTEKIT = {"anthropic": True, "openai": True, "gemini": False, "ollama": False}


async def bench_family(
    family: str, origin: str, calls: int, rounds: int
) -> list[tuple[str, float, float, float, float]]:
    raw_default = raw_calls(family, origin)
    raw_same = raw_calls(family, origin, aiohttp=True) if SAME_TRANSPORT_AS_ROUTEKIT[family] else raw_default
    routekit = routekit_calls(family, origin)
    rows = []
    try:
        for index, mode in ((0, "complete"), (1, "stream")):
            fns = [raw_default[index], raw_same[index], routekit[index]]
            results = [await measure(fns, calls) for _ in range(rounds)]
            default, same, rk = (statistics.median(r[i] for r in results) for i in range(3))
            rows.append((mode, default, same, rk, rk / same))
    finally:
        closers = [raw_default[2], routekit[2]] + ([raw_same[2]] if raw_same is not raw_default else [])
        for closer in closers:
            await closer()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median of each side is kept")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="limit to these wires")
    args = parser.parse_args()
    header = ("provider", "mode", "raw (SDK default)", "raw (same transport)", "routekit", "ratio")
    print(f"{header[0]:<10} {header[1]:<9} {header[2]:>18} {header[3]:>21} {header[4]:>9} {header[5]:>6}")
    for family in args.family or FAMILIES:
        with fake_server(family) as origin:
            for mode, default, same, rk, ratio in asyncio.run(bench_family(family, origin, args.calls, args.rounds)):
                print(f"{family:<10} {mode:<9} {default:>18.0f} {same:>21.0f} {rk:>9.0f} {ratio:>6.2f}", flush=True)
    print("CPU µs per call in this process (the fake runs in another); ratio = routekit / raw on the same transport")


if __name__ == "__main__":
    main()
