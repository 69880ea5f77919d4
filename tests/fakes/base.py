"""A fake provider HTTP server on 127.0.0.1 that real SDKs talk to, with per-request fault injection.

Each provider fake (``tests/fakes/<provider>.py``) subclasses :class:`FakeProviderServer` and renders
provider-neutral :class:`FakeTurn` scripts into its exact wire format (JSON, SSE or NDJSON). The base
class owns the HTTP plumbing and the faults that are the same for every wire: HTTP error statuses,
delays, stalls, TCP resets, clean early ends, corrupt chunks and mid-stream provider errors.

Tests script the server with ``server.turns.append(FakeTurn(...))`` and ``server.faults.append(Fault(...))``
(each consumed by the next request that needs one) and inspect ``server.requests`` afterwards. Without a
scripted turn the server follows the usual decision rule: call the first offered tool when there is no
tool result yet, answer with text otherwise.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    # Gemini thought signature (base64 text) to attach to this functionCall part, if any.
    signature: str | None = None


@dataclass
class FakeUsage:
    input_tokens: int = 42
    output_tokens: int = 9
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class FakeTurn:
    """What the fake model says in one response, independent of wire format."""

    text: str = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    thinking: str | None = None
    thinking_signature: str | None = None
    usage: FakeUsage | None = field(default_factory=FakeUsage)  # None: the response carries no usage
    stop: str | None = None  # raw provider stop/finish reason override, e.g. "length"
    model: str | None = None  # override the echoed model name


@dataclass
class Fault:
    """A failure injected into the next request. Chunk positions count rendered stream events from 0."""

    status: int | None = None  # answer with this HTTP status and the provider's error envelope
    message: str = "injected failure"
    error_type: str | None = None  # provider error type/code in the envelope, when relevant
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"retry-after": "1"}
    delay: float = 0.0  # seconds to wait before sending headers
    stall_after: int | None = None  # send N chunks, then hang until the client gives up
    reset_after: int | None = None  # send N chunks, then reset the TCP connection
    end_after: int | None = None  # send N chunks, then end the body cleanly without the terminal event
    corrupt_at: int | None = None  # replace chunk N with bytes that are not valid JSON
    error_event_at: int | None = None  # replace chunk N (and the rest) with the provider's mid-stream error
    non_json: bool = False  # answer 200 with a body that is not JSON
    only_path_contains: str | None = None  # apply only to requests whose path contains this


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, or raw bytes when not JSON
    client_port: int = 0  # tells which TCP connection carried the request (keep-alive checks)

    @property
    def json(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), f"request body is not a JSON object: {self.body!r}"
        return self.body


@dataclass
class Rendered:
    """A response rendered by a provider fake."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # whole body; or
    chunks: list[bytes] | None = None  # stream events, sent one chunked-encoding chunk each
    content_type: str = "application/json"


class FakeProviderServer:
    """Base class; subclasses implement :meth:`handle` and the render hooks."""

    provider = "fake"
    stream_content_type = "text/event-stream"
    stall_seconds = 60.0
    # Seconds every response waits before its headers (a model's think time, for load benchmarks); 0 = none.
    latency = 0.0

    def __init__(self) -> None:
        self.turns: deque[FakeTurn] = deque()
        self.faults: deque[Fault] = deque()
        self.requests: list[RecordedRequest] = []
        self.models: list[str] = ["fake-model-1", "fake-model-2"]
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.lock = threading.Lock()
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most answered at once since the last reset of this counter

    # ------------------------------------------------------------------ lifecycle

    def start(self, port: int = 0) -> FakeProviderServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _Server(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name=f"fake-{self.provider}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ scripting

    def next_turn(self, request: RecordedRequest) -> FakeTurn:
        with self.lock:
            if self.turns:
                return self.turns.popleft()
        return self.default_turn(request)

    def next_fault(self, request: RecordedRequest) -> Fault | None:
        with self.lock:
            if self.faults:
                fault = self.faults[0]
                if fault.only_path_contains and fault.only_path_contains not in request.path:
                    return None
                return self.faults.popleft()
        return None

    # ------------------------------------------------------------------ hooks for subclasses

    def handle(self, request: RecordedRequest) -> Rendered | None:
        """Route a request to a rendered response (``None`` -> 404). Subclasses override."""
        raise NotImplementedError

    def default_turn(self, request: RecordedRequest) -> FakeTurn:
        """The decision rule used when no turn is scripted. Subclasses override."""
        return FakeTurn(text="ok")

    def render_error(self, fault: Fault) -> Rendered:
        """An HTTP error response in the provider's envelope."""
        body = json.dumps({"error": {"message": fault.message, "type": fault.error_type or "error"}})
        return Rendered(status=fault.status or 500, body=body.encode())

    def render_stream_error(self, fault: Fault) -> bytes:
        """The provider's mid-stream error event."""
        return b'data: {"error": {"message": "' + fault.message.encode() + b'"}}\n\n'

    def corrupt_chunk(self) -> bytes:
        return b"data: {not json\n\n"

    def not_found(self, request: RecordedRequest) -> Rendered:
        return Rendered(status=404, body=b'{"error": {"message": "no such route"}}')


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # socketserver's default backlog of 5 refuses bursts of concurrent clients

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):  # clients hang up
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProviderServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def setup(self) -> None:
        super().setup()
        # Headers, body and each stream chunk are separate writes: without TCP_NODELAY, Nagle's
        # algorithm meets the client's delayed ACK and every response waits ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_request(self) -> RecordedRequest:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = raw
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        parts = urlsplit(self.path)
        return RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_port=self.client_address[1],
        )

    def _serve(self) -> None:
        fake = self.fake
        request = self._read_request()
        with fake.lock:
            fake.requests.append(request)
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._answer(request)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def _answer(self, request: RecordedRequest) -> None:
        fake = self.fake
        fault = fake.next_fault(request)
        extra_headers: dict[str, str] = {}
        if fault is not None and fault.status is not None:
            rendered: Rendered | None = fake.render_error(fault)
            extra_headers = fault.headers
        elif fault is not None and fault.non_json:
            rendered = Rendered(status=200, body=b"<html>upstream proxy error</html>")
        else:
            # Rendered before any delay, so the request consumes its own scripted turn even if its
            # client gives up waiting (the turn must not leak to the next request).
            rendered = fake.handle(request)
        if rendered is None:
            rendered = fake.not_found(request)
        if fault is not None and fault.delay:
            fake._stop.wait(fault.delay)
        if fake.latency:
            fake._stop.wait(fake.latency)
        if rendered.chunks is None:
            self._send_whole(rendered, extra_headers=extra_headers)
        else:
            self._send_stream(rendered, fault)

    def _send_whole(self, rendered: Rendered, extra_headers: dict[str, str] | None = None) -> None:
        body = rendered.body or b""
        try:
            self._send_head(rendered, body, extra_headers)
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. a delay fault)
            self.close_connection = True

    def _send_head(self, rendered: Rendered, body: bytes, extra_headers: dict[str, str] | None) -> None:
        self.send_response(rendered.status)
        self.send_header("content-type", rendered.content_type)
        self.send_header("content-length", str(len(body)))
        for key, value in {**rendered.headers, **(extra_headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()

    def _send_stream(self, rendered: Rendered, fault: Fault | None) -> None:
        fake = self.fake
        self.send_response(rendered.status)
        self.send_header("content-type", rendered.content_type)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        for key, value in rendered.headers.items():
            self.send_header(key, value)
        self.end_headers()
        chunks = list(rendered.chunks or [])
        try:
            for position, chunk in enumerate(chunks):
                if fault is not None:
                    if fault.stall_after == position:
                        fake._stop.wait(fake.stall_seconds)
                        self.close_connection = True
                        return
                    if fault.reset_after == position:
                        self._reset()
                        return
                    if fault.end_after == position:
                        break
                    if fault.corrupt_at == position:
                        chunk = fake.corrupt_chunk()
                    if fault.error_event_at == position:
                        self._write_chunk(fake.render_stream_error(fault))
                        break
                self._write_chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed proxy would."""
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE event (``event:`` line optional), terminated by a blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def ndjson(data: Any) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


def split_text(text: str, pieces: int = 3) -> list[str]:
    """Split text into ``pieces`` parts (at least one), cutting inside words and JSON strings on purpose."""
    if not text:
        return [""]
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def now() -> int:
    return int(time.time())
