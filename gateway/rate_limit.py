"""Per-key rate limit: fixed one-second windows counted in PostgreSQL.

A counter row per (key, second) is upserted atomically, so any number of server processes
share one budget per key. Answers carry RateLimit-Limit / -Remaining / -Reset (and
Retry-After on 429), following the IETF RateLimit header fields draft.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from gateway import queries
from infra.db import Conn

STATE_KEY = "rate_limit"
WINDOW_S = 1


@dataclass(frozen=True)
class Decision:
    limit: int
    remaining: int
    reset_s: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        values = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            values["Retry-After"] = str(self.reset_s)
        return values


async def admit(conn: Conn, key_id: str, limit_per_s: int, now_s: float) -> Decision:
    window_s = int(now_s) // WINDOW_S
    requests: int = await conn.fetchval(queries.COUNT_REQUEST, key_id, window_s)
    if requests == 1:  # the first call of a window clears the key's past windows
        await conn.execute(queries.PRUNE_RATE_WINDOWS, key_id, window_s)
    reset_s = max(1, math.ceil((window_s + 1) * WINDOW_S - now_s))
    return Decision(
        limit=limit_per_s,
        remaining=max(0, limit_per_s - requests),
        reset_s=reset_s,
        allowed=requests <= limit_per_s,
    )


async def before_send(message: Message, scope: Scope) -> None:
    """Every answer to a counted call tells the caller its budget."""
    decision = scope.get("state", {}).get(STATE_KEY)
    if message["type"] == "http.response.start" and isinstance(decision, Decision):
        headers = MutableScopeHeaders.from_message(message)
        for name, value in decision.headers().items():
            headers[name] = value
