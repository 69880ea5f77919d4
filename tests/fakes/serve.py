"""Run one fake provider server in its own process (for benchmarks and manual testing).

    python -m tests.fakes.serve openai [--port 0]

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
    args = parser.parse_args()
    server = start_fake(args.family)
    if args.port:
        server.stop()
        server = type(server)().start(args.port)
    print(f"READY {server.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
