"""Slow clients are disconnected (OWASP API4, slowloris).

uvicorn's httptools protocol has a keep-alive timeout (idle between requests) but no limit on
how long one request may take to arrive: a client that sends a header byte every few seconds,
or its body a byte at a time, holds a connection (and its memory) for as long as it likes, and
any byte cancels the keep-alive timer. This protocol adds that limit: from the moment the
connection opens, or the previous response completes, the whole next request (headers and
body) must be read within `read_timeout_s`, else the connection is closed. The handler's own
time is not counted: the deadline is disarmed once the request is read.

`coalition serve --request-read-timeout S` sets it (default 20 s, enough for a 32 MiB upload
at about 2 MB/s); the value reaches the worker processes through the environment, like
DATABASE_URL does.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT_ENV = "COALITION_SERVE_REQUEST_READ_TIMEOUT_S"
READ_TIMEOUT_S_DEFAULT = 20.0
PROTOCOL = "gateway.slow_clients:DeadlineHttpToolsProtocol"  # for uvicorn's `http=`


def read_timeout_s() -> float:
    return float(os.environ.get(READ_TIMEOUT_ENV, READ_TIMEOUT_S_DEFAULT))


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout_s = read_timeout_s()
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        next_read = bool(self.pipeline)  # a pipelined request already read: nothing to wait for
        super().on_response_complete()
        if not next_read and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(self._read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _too_slow(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
