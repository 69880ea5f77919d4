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


def raw_calls(family: str, origin: str) -> Calls:
    """(complete, stream) closures on the raw SDK, SDK retries off, same timeout as routekit."""
    messages: Any
    if family == "anthropic":
        import anthropic

        a_client = anthropic.AsyncAnthropic(api_key=KEYS[family], base_url=origin, max_retries=0, timeout=30)
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

        o_client = openai.AsyncOpenAI(api_key=KEYS[family], base_url=origin + "/v1", max_retries=0, timeout=30)
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

        async def g_complete() -> Any:
            return await g_client.aio.models.generate_content(model=MODEL, contents="Weather in Paris?", config=config)

        async def g_stream() -> Any:
            stream = await g_client.aio.models.generate_content_stream(
                model=MODEL, contents="Weather in Paris?", config=config
            )
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


async def measure_pair(
    raw_fn: Callable[[], Awaitable[Any]], rk_fn: Callable[[], Awaitable[Any]], calls: int
) -> tuple[float, float]:
    """(raw, routekit) CPU µs per call, alternating the two call by call so machine noise hits both alike."""
    for _ in range(20):
        await raw_fn()
        await rk_fn()
    gc.collect()
    raw_cpu = rk_cpu = 0.0
    for _ in range(calls):
        t0 = time.process_time()
        await raw_fn()
        t1 = time.process_time()
        await rk_fn()
        t2 = time.process_time()
        raw_cpu += t1 - t0
        rk_cpu += t2 - t1
    return raw_cpu / calls * 1e6, rk_cpu / calls * 1e6


async def bench_family(family: str, origin: str, calls: int, rounds: int) -> list[tuple[str, float, float, float]]:
    raw_complete, raw_stream, raw_close = raw_calls(family, origin)
    rk_complete, rk_stream, rk_close = routekit_calls(family, origin)
    rows = []
    try:
        for mode, raw_fn, rk_fn in (("complete", raw_complete, rk_complete), ("stream", raw_stream, rk_stream)):
            results = [await measure_pair(raw_fn, rk_fn, calls) for _ in range(rounds)]
            raw = statistics.median(r[0] for r in results)
            rk = statistics.median(r[1] for r in results)
            rows.append((mode, raw, rk, rk / raw))
    finally:
        await raw_close()
        await rk_close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median of each side is kept")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="limit to these wires")
    args = parser.parse_args()
    print(f"{'provider':<10} {'mode':<9} {'raw CPU µs':>11} {'routekit µs':>12} {'ratio':>6}")
    for family in args.family or FAMILIES:
        with fake_server(family) as origin:
            for mode, raw, rk, ratio in asyncio.run(bench_family(family, origin, args.calls, args.rounds)):
                print(f"{family:<10} {mode:<9} {raw:>11.0f} {rk:>12.0f} {ratio:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
