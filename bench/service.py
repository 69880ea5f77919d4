"""The HTTP service under load: ``POST /api/sessions/{id}/messages`` for a one-tool run.

    .venv/bin/python -m bench.service [--quick] [--clients 1 50 200] [--seconds S] [--mcp http|stdio]

One run: the user's message, a model call that asks for one tool (the fake's default script), the tool call
over MCP, and a second model call that answers; the client reads the SSE stream to its ``final`` event.
Processes: the fake OpenAI server (zero latency) and the benchmark MCP server (``bench._mcp_server``, over
streamable HTTP by default) each run in their own process; the service is one ``routekit serve`` process;
the clients (httpx, one new session per run, created outside the timed part) run in this process.

Reported per concurrency level: completed runs per second, p50 / p99 of the run's latency as the client sees
it, failures. "Added latency" compares the service's p50 at one client with the same run done in-process
through ``agent.Session`` (same store kind, same provider config, same MCP server on one hub kept open, as
the service's hub pool does), so it is the cost of HTTP, auth, rate limiting, SSE and the service's own bookkeeping.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-0123456789abcdef"
ADMIN = "rka_bench-admin-token-0123456789"
MODEL = "fake-model-1"
PROMPT = "Use the tool once, then answer."


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def fake_openai() -> Iterator[str]:
    with _process([sys.executable, "-m", "tests.fakes.serve", "openai", "--latency", "0"]) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError("the fake OpenAI server did not start")
        yield f"http://127.0.0.1:{line[1]}"


@contextlib.contextmanager
def mcp_server(kind: str) -> Iterator[dict[str, Any]]:
    """The catalogue entry for the benchmark MCP server (its HTTP process is started here)."""
    if kind == "stdio":
        yield {"command": sys.executable, "args": ["-m", "bench._mcp_server"], "cwd": str(ROOT)}
        return
    port = _free_port()
    with _process([sys.executable, "-m", "bench._mcp_server", "--http", str(port)]):
        _wait_http(f"http://127.0.0.1:{port}/mcp")
        yield {"url": f"http://127.0.0.1:{port}/mcp"}


@contextlib.contextmanager
def service(home: Path, fake_origin: str) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = dict(os.environ, ROUTEKIT_HOME=str(home), ROUTEKIT_ADMIN_TOKEN=ADMIN)
    fake_host = fake_origin.removeprefix("http://")
    args = [
        str(Path(sys.executable).parent / "routekit"), "serve", "--port", str(port), "--log-level", "warning",
        "--max-runs", "1000", "--requests-per-minute", "100000000", "--allow-host", fake_host, "--max-idle-hubs", "256",
    ]  # fmt: skip
    with _process(args, env) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/healthz")
        yield url, proc.pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report the service's CPU per run."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setup_user(url: str, fake_origin: str, entry: dict[str, Any]) -> tuple[str, str]:
    """A user with a key for the fake and the benchmark server in the catalogue; (token, config id)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    httpx.put(f"{url}/api/admin/mcp-servers/bench", json=entry, headers=admin).raise_for_status()
    created = httpx.post(f"{url}/api/admin/users", json={"name": f"bench-{time.time_ns()}"}, headers=admin)
    created.raise_for_status()
    token = created.json()["token"]
    config = httpx.post(
        f"{url}/api/user/llm-config",
        json={"provider": "openai", "api_key": KEY, "base_url": fake_origin + "/v1", "default_model": MODEL},
        headers={"Authorization": f"Bearer {token}"},
    )
    config.raise_for_status()
    return token, config.json()["id"]


async def one_run(client: httpx.AsyncClient) -> float:
    session = await client.post("/api/sessions", json={"mcp_servers": ["bench"]})
    session.raise_for_status()
    session_id = session.json()["id"]
    started = time.perf_counter()
    final: dict[str, Any] | None = None
    async with client.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": PROMPT}) as answer:
        if answer.status_code != 200:
            await answer.aread()
            raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
        kind = ""
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind in ("final", "error"):
                final = {"kind": kind, **json.loads(line[6:])}
    elapsed = time.perf_counter() - started
    if final is None or final["kind"] != "final":
        raise RuntimeError(f"run did not finish: {final}")
    result = final["result"]
    if result["stop_reason"] != "end_turn" or len(result["tool_calls"]) != 1:
        raise RuntimeError(f"unexpected run: {result['stop_reason']} {result['tool_calls']}")
    return elapsed


async def load(url: str, pid: int, token: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120, limits=limits
    ) as client:
        await one_run(client)  # warm-up: imports, pools, first MCP connection
        stop_at = time.perf_counter() + seconds
        started = time.perf_counter()
        cpu_before = cpu_seconds(pid)

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                try:
                    latencies.append(await one_run(client))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(worker)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
    return {
        "cpu_ms_per_run": cpu / max(len(latencies), 1) * 1e3,
        "clients": clients,
        "runs": len(latencies),
        "rps": len(latencies) / wall,
        "p50": _percentile(latencies, 50),
        "p99": _percentile(latencies, 99),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
    }


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def direct(fake_origin: str, entry: dict[str, Any], runs: int) -> float:
    """p50 of the same run in-process through agent.Session, on one MCP hub kept open (as the service's pool)."""
    from agent.session import SamplingRouter
    from mcp_bridge import McpHub
    from mcp_bridge.config import McpConfig, parse_server
    from providers.base import ProviderConfig
    from storage import open_store

    with tempfile.TemporaryDirectory(prefix="routekit-bench-direct-") as home:
        store = await open_store(f"sqlite:///{home}/routekit.db", key_dir=Path(home))
        config = ProviderConfig(provider="openai", api_key=KEY, base_url=fake_origin + "/v1", default_model=MODEL)
        mcp = McpConfig(servers={"bench": parse_server("bench", entry, {})})
        user = await store.users.create("direct")
        times: list[float] = []
        router = SamplingRouter()
        try:
            async with McpHub(mcp, sampling=router, elicitation=router.elicit) as hub:
                times = await _direct_runs(store, config, user.id, hub, runs + 3)
        finally:
            await store.close()
    return statistics.median(times[3:])


async def _direct_runs(store: Any, config: Any, user_id: str, hub: Any, runs: int) -> list[float]:
    from agent import Session
    from agent.limits import Limits

    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        session = await Session.open(provider=config, store=store, user=user_id, hub=hub, limits=Limits())
        try:
            result = await session.run(PROMPT, on_event=lambda _event: None)
        finally:
            await session.aclose()
        if result.stop_reason != "end_turn":
            raise RuntimeError(f"direct run ended with {result.stop_reason}")
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the figures)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--seconds", type=float, default=None, help="measuring time per level (default 15, quick 4)")
    parser.add_argument("--mcp", choices=["http", "stdio"], default="http", help="transport of the MCP server")
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 15.0)
    with fake_openai() as fake, mcp_server(args.mcp) as entry, tempfile.TemporaryDirectory() as home:
        baseline = anyio.run(direct, fake, entry, 5 if args.quick else 20)
        with service(Path(home), fake) as (url, pid):
            token, _ = setup_user(url, fake, entry)
            print(
                f"one-tool run, zero-latency fake, MCP over {args.mcp}; {seconds:.0f} s per level; one service process"
            )
            print(f"in-process agent.Session run (one open hub): p50 {baseline * 1e3:.1f} ms")
            print(
                f"{'clients':>7} {'runs':>6} {'runs/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                f"{'added p50 ms':>13} {'service CPU ms/run':>19} {'failed':>7}"
            )
            for clients in args.clients:
                r = anyio.run(load, url, pid, token, clients, seconds)
                print(
                    f"{r['clients']:>7} {r['runs']:>6} {r['rps']:>8.1f} {r['p50'] * 1e3:>8.1f} {r['p99'] * 1e3:>8.1f} "
                    f"{(r['p50'] - baseline) * 1e3:>13.1f} {r['cpu_ms_per_run']:>19.1f} {r['failures']:>7}",
                    flush=True,
                )
                if r["first_failure"]:
                    print(f"    first failure: {r['first_failure']}")


if __name__ == "__main__":
    main()
