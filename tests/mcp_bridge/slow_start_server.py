"""An MCP stdio server that is slow to start (as one loading an index or a model is).

``python slow_start_server.py SECONDS READY_FILE TAG``: writes its pid to READY_FILE at once, sleeps SECONDS,
then serves the fault server's tools over stdio. TAG only marks the command line, so tests can find it in /proc.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_server import build


def main() -> None:
    seconds, ready = float(sys.argv[1]), Path(sys.argv[2])
    ready.write_text(str(os.getpid()))
    time.sleep(seconds)
    build(None).run("stdio")


if __name__ == "__main__":
    main()
