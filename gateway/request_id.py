"""A request id on every request, response and log line.

Litestar runs app middleware only for matched routes, so the id is created lazily by
`ensure()`: the middleware, the error renderer and the `before_send` hook all call it, and
unmatched paths (404, 405) get one too.
"""

from __future__ import annotations

import re
import uuid

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import request_id_var

HEADER = "x-request-id"
STATE_KEY = "request_id"
# A caller's id is echoed only when it is short and plain: ids land in logs.
ACCEPTED = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == HEADER.encode():
            text = value.decode("latin-1")
            return text if ACCEPTED.match(text) else None
    return None


def ensure(scope: Scope) -> str:
    """The request's id, created on first use."""
    state = scope.setdefault("state", {})
    request_id = state.get(STATE_KEY)
    if not isinstance(request_id, str):
        request_id = _incoming(scope) or uuid.uuid4().hex
        state[STATE_KEY] = request_id
        request_id_var.set(request_id)
    return request_id


async def before_send(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[HEADER] = ensure(scope)


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            request_id_var.set(ensure(scope))
        await app(scope, receive, send)

    return middleware
