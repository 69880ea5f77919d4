"""Child processes by a tag in their command line (read from /proc; psutil is not a dependency)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def processes_with(tag: str) -> list[int]:
    """Pids of the live (not zombie) processes whose command line contains ``tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # it exited while we looked
            continue
        if tag.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(tag: str, timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for every process tagged ``tag`` to exit; the pids still alive."""
    deadline = time.monotonic() + timeout
    alive = processes_with(tag)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = processes_with(tag)
    return alive
