"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 in a thread.

It keeps every request (headers, body), answers with the status `respond` chooses for the
n-th request of a webhook-id, and can hold requests until `release()` (a slow endpoint),
counting how many it held at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_TIMEOUT_S = 60.0  # a held request answers by then even if the test forgot to release it


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    host_header: str

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


def always_ok(_: int) -> int:
    return 200


@dataclass
class Receiver:
    host: str
    port: int
    respond: Callable[[int], int] = always_ok  # status for the n-th (1-based) try of an id
    requests: list[Received] = field(default_factory=list)
    holding: bool = False
    held_now: int = 0
    held_max: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def hold(self) -> None:
        self.holding = True
        self._released.clear()

    def release(self) -> None:
        self.holding = False
        self._released.set()

    def ids(self) -> list[str]:
        with self._lock:
            return [request.webhook_id for request in self.requests]

    def _handle(self, received: Received) -> int:
        with self._lock:
            self.requests.append(received)
            tries = sum(1 for r in self.requests if r.webhook_id == received.webhook_id)
            holding = self.holding
            if holding:
                self.held_now += 1
                self.held_max = max(self.held_max, self.held_now)
        if holding:
            self._released.wait(HOLD_TIMEOUT_S)
            with self._lock:
                self.held_now -= 1
        return self.respond(tries)


@contextmanager
def receiving(
    respond: Callable[[int], int] = always_ok, *, host: str = "127.0.0.1"
) -> Iterator[Receiver]:
    receiver: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            assert receiver is not None
            status = receiver._handle(Received(headers, body, self.headers.get("Host", "")))
            answer = b'{"ok": true}' if 200 <= status < 300 else b'{"error": "try again"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test asserts on what was received

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(host=host, port=server.server_address[1], respond=respond)
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
