"""Egress test helpers: two tiny HTTP servers on 127.0.0.1 — one that redirects every request elsewhere, one
that stands for an internal service (it answers anything with a JSON model list and counts its hits) — and a
resolver that answers from a table (an EgressPolicy's resolver, no real DNS)."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def table_resolver(table: dict[str, list[str]]) -> Callable[[str], Awaitable[list[str]]]:
    """A resolver for an EgressPolicy that knows only ``table``'s names (others do not resolve)."""

    async def resolve(host: str) -> list[str]:
        if host in table:
            return table[host]
        raise OSError(f"test resolver: unknown host {host}")

    return resolve


class _Server:
    def __init__(self) -> None:
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                return None

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner.hits.append(self.path)
                owner.answer(self)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def start(self) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class InternalService(_Server):
    """What must stay out of reach: answers every request 200 with a model list an SDK would accept."""

    SECRET = "internal-only-model-list"

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps(
            {"object": "list", "data": [{"id": self.SECRET, "object": "model", "created": 0, "owned_by": "x"}]}
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class Redirector(_Server):
    """Answers every request with ``status`` and ``Location: <target><path>``."""

    def __init__(self, target: str, status: int = 307) -> None:
        super().__init__()
        self.target = target.rstrip("/")
        self.status = status

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(self.status)
        handler.send_header("Location", self.target + handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
