"""The schema compiler's cold compile time (cache cleared each round), per target.

    .venv/bin/python -m bench.schema [--rounds 20] [--copies 10]

Toolsets: the 54 real MCP tools of tests/fixtures/real_tool_schemas.json, and ``copies`` renamed copies of
them under other server names (a large toolset; names are assigned for the whole set, so this also
measures the name assignment). Printed: CPU milliseconds of this process per compile (the fastest of the rounds: the
machine's other load only ever adds) and microseconds per tool.
Adapters only hit this path on a cache miss (a new or changed toolset).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from providers.profiles import get_profile
from providers.schema import clear_cache, compile_tools
from providers.types import ToolSpec

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_tool_schemas.json"
TARGETS: tuple[tuple[str, bool | None, str | None], ...] = (
    ("anthropic", None, None),
    ("openai", None, None),
    ("openai", True, None),
    ("gemini", None, "json_schema"),
    ("gemini", None, "openapi"),
    ("ollama", None, None),
)


def real_tools(copies: int) -> list[ToolSpec]:
    data = json.loads(FIXTURE.read_text())
    specs: list[ToolSpec] = []
    for copy in range(copies):
        for server, tools in data.items():
            name = server if copy == 0 else f"{server}{copy}"
            for tool in tools:
                schema = tool.get("inputSchema")
                specs.append(ToolSpec(name=f"{name}.{tool['name']}", description="", input_schema=schema))
    return specs


def measure(specs: list[ToolSpec], profile: str, strict: bool | None, form: str | None, rounds: int) -> float:
    times: list[float] = []
    for _ in range(rounds):
        clear_cache()
        start = time.process_time()
        compile_tools(specs, get_profile(profile), strict=strict, schema_form=form)  # type: ignore[arg-type]
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    for label, specs in (("54 real tools", real_tools(1)), (f"{54 * args.copies} tools", real_tools(args.copies))):
        print(f"{label}:")
        for profile, strict, form in TARGETS:
            seconds = measure(specs, profile, strict, form, args.rounds)
            name = f"{profile}{'-strict' if strict else ''}{'-' + form if form else ''}"
            print(f"  {name:<20} {seconds * 1e3:8.2f} ms   {seconds / len(specs) * 1e6:7.1f} us/tool")


if __name__ == "__main__":
    main()
