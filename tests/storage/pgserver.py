"""A throwaway PostgreSQL server in a temporary directory, on 127.0.0.1 (tests and bench).

Finds Debian's binaries (``/usr/lib/postgresql/<ver>/bin``) or ``pg_config --bindir``; installs the
``postgresql`` package with apt-get when missing and running as root (CI); otherwise fails with a clear
message. PostgreSQL refuses to run as root, so as root initdb/postgres run as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def _candidates() -> list[Path]:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )
    found.reverse()
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            found.append(Path(out))
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(initdb).parent)
    return [p for p in found if (p / "initdb").exists() and (p / "postgres").exists()]


def find_bindir() -> Path:
    """The PostgreSQL bin directory; installs the Debian package first if missing and running as root."""
    found = _candidates()
    if found:
        return found[0]
    if os.geteuid() != 0:
        raise RuntimeError(
            "PostgreSQL is not installed and this process is not root, so it cannot install it. "
            "Install it (Debian/Ubuntu: sudo apt-get install -y postgresql) and run the tests again."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "postgresql"], check=True, env=env, capture_output=True)
    found = _candidates()
    if not found:
        raise RuntimeError("apt-get installed postgresql but no initdb/postgres binaries were found")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    root: Path
    bindir: Path
    port: int
    process: subprocess.Popen[bytes]
    prefix: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def createdb(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*self.prefix, str(self.bindir / tool), *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()}")

    def stop(self) -> None:
        pid_file = self.root / "data" / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGINT)  # fast shutdown
        except (OSError, ValueError, IndexError):
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start(*, fsync: bool = False) -> PgServer:
    """Start a server; ``fsync=False`` for tests (process crashes still lose nothing committed)."""
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="routekit-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    (root / "sock").mkdir()
    if prefix:
        shutil.chown(root / "sock", "postgres", "postgres")
    init = subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(root / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            *prefix,
            str(bindir / "postgres"),
            "-D",
            str(root / "data"),
            "-p",
            str(port),
            "-k",
            str(root / "sock"),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"fsync={'on' if fsync else 'off'}",
            "-c",
            "max_connections=300",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = PgServer(root, bindir, port, process, prefix)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (root / "server.log").read_text(errors="replace")
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"postgres exited at start-up: {text[-2000:]}")
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
        )
        if ready.returncode == 0:
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("postgres did not become ready within 60 s")
