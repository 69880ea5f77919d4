"""Fixtures for the MCP bridge tests: our fault server, the third-party reference servers, HTTP processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get("ROUTEKIT_MCP_CACHE", ROOT / ".cache" / "mcp-servers"))
NPM = CACHE / "npm" / "node_modules" / "@modelcontextprotocol"
EVERYTHING = NPM / "server-everything" / "dist" / "index.js"
FILESYSTEM = NPM / "server-filesystem" / "dist" / "index.js"
MEMORY = NPM / "server-memory" / "dist" / "index.js"
FAULT_SERVER = HERE / "fault_server.py"
NODE_LOCALHOST = HERE / "node_localhost.mjs"
PY = sys.executable


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope so a module can share one hub (server start-up dominates these tests' time)."""
    return "asyncio"


def _servers_present() -> bool:
    if not (EVERYTHING.exists() and FILESYSTEM.exists() and MEMORY.exists()):
        return False
    try:
        import mcp_server_git  # noqa: F401
        import mcp_server_time  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def reference_servers() -> None:
    """Install the third-party servers when missing (never skip: a missing server is a failure)."""
    if not _servers_present():
        subprocess.run(["bash", str(HERE / "install_servers.sh"), "servers"], check=True, timeout=600)
    assert _servers_present(), "install_servers.sh ran but the reference servers are still missing"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout}s")


@contextlib.contextmanager
def run_server(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process listening on 127.0.0.1:port for the duration of the block."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(args, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def everything_http(kind: str, port: int) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """server-everything over `streamableHttp` or `sse`, bound to 127.0.0.1 by the preload."""
    args = ["node", "--import", NODE_LOCALHOST.as_uri(), str(EVERYTHING), kind]
    return run_server(args, port, {"PORT": str(port), "GZIP_ALLOWED_DOMAINS": "127.0.0.1"})


def fault_http(port: int, state: Path | None = None) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    args = [PY, str(FAULT_SERVER), "--http", str(port)]
    if state is not None:
        args += ["--state", str(state)]
    return run_server(args, port)
