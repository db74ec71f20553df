"""Idempotent partner calls with Stripe semantics, stored in the effect's own transaction.

One transaction per call: take a try-lock on (partner, Idempotency-Key) -> a stored record?
replay it (same request) or refuse it (different request) -> else run the effect and store its
response -> commit. Effect and record commit together or not at all, so a crash between them
cannot leave an effect without its record. A failed call stores nothing: the client may retry
it with the same key, and the refusal changed nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response

from contracts.errors import ErrorCode
from gateway import metrics, queries
from gateway.auth.signatures import Caller
from gateway.errors import ApiError
from gateway.state import AppState
from infra.db import Conn

REPLAYED_HEADER = "Idempotency-Replayed"
JSON = "application/json"
IN_PROGRESS_RETRY_AFTER_S = 1
DEADLOCK_ATTEMPTS_MAX = 3

T = TypeVar("T", bound=msgspec.Struct)


def _fingerprint(request: Request[Any, Any, Any], body: bytes) -> bytes:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(body)
    return digest.digest()


async def run_once(
    request: Request[Any, Any, Any],
    caller: Caller,
    effect: Callable[[Conn], Awaitable[T]],
    *,
    status_code: int = 201,
    on_committed: Callable[[T], None] | None = None,
) -> Response[bytes]:
    """Run `effect` once per (partner, Idempotency-Key); replay its stored answer after."""
    key = caller.idempotency_key
    assert key is not None, "the signature guard requires the header on POST"
    fingerprint = _fingerprint(request, await request.body())
    app_state: AppState = request.app.state.app
    pool = app_state.require_pool()
    for attempt in range(1, DEADLOCK_ATTEMPTS_MAX + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval(queries.LOCK_IDEMPOTENCY_KEY, caller.partner_id, key):
                    raise ApiError(
                        409,
                        ErrorCode.IDEMPOTENCY_IN_PROGRESS,
                        "a request with this Idempotency-Key is still running",
                        headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER_S)},
                    )
                stored = await conn.fetchrow(queries.IDEMPOTENCY_RECORD, caller.partner_id, key)
                if stored is not None:
                    if bytes(stored["request_sha256"]) != fingerprint:
                        raise ApiError(
                            422,
                            ErrorCode.IDEMPOTENCY_MISMATCH,
                            "this Idempotency-Key was used with a different request",
                        )
                    metrics.IDEMPOTENT_REPLAYS.inc()
                    return Response(
                        bytes(stored["response_body"]),
                        status_code=stored["response_status"],
                        media_type=JSON,
                        headers={REPLAYED_HEADER: "true"},
                    )
                result = await effect(conn)
                body = msgspec.json.encode(result)
                await conn.execute(
                    queries.INSERT_IDEMPOTENCY_RECORD,
                    caller.partner_id,
                    key,
                    fingerprint,
                    status_code,
                    body,
                )
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_ATTEMPTS_MAX:
                raise
    if on_committed is not None:
        on_committed(result)
    return Response(body, status_code=status_code, media_type=JSON)
