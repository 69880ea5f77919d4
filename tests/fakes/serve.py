"""Run one fake provider server in its own process (for benchmarks and manual testing).

    python -m tests.fakes.serve openai [--port 0] [--latency SECONDS]

Prints ``READY <port>`` on stdout once listening, then serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from tests.providers.conftest import FAKE_CLASSES, start_fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("family", choices=sorted(FAKE_CLASSES))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every response waits (default 0)")
    args = parser.parse_args()
    server = start_fake(args.family)
    if args.port:
        server.stop()
        server = type(server)().start(args.port)
    server.latency = args.latency
    print(f"READY {server.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
