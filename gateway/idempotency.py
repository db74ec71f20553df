"""Idempotent partner calls with Stripe semantics, stored in the effect's own transaction.

One transaction per call, whose first statement also admits the signed call (nonce and rate
limit, gateway/rate_limit.py): take a try-lock on (partner, Idempotency-Key) -> a stored record?
replay it (same request) or refuse it (different request) -> else run the effect and store its
response -> commit. Effect and record commit together or not at all, so a crash between them
cannot leave an effect without its record. A failed call stores nothing: the effect is rolled
back to a savepoint taken after the admission, so the client may retry it with the same key
(signed again: its nonce was remembered), and the refusal changed nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response

from contracts.errors import ErrorCode
from gateway import metrics, queries, rate_limit
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
    """Run `effect` once per (partner, Idempotency-Key); replay its stored answer after.

    One pool checkout, one transaction, one commit: BEGIN; admit (nonce, rate limit, the key's
    claim and stored answer: one statement); SAVEPOINT; the effect; the record; COMMIT. Every
    outcome commits the admission; only the effect and its record depend on the outcome.
    """
    key = caller.idempotency_key
    assert key is not None, "the signature guard requires the header on POST"
    fingerprint = _fingerprint(request, await request.body())
    admission = rate_limit.take_pending(request.scope)
    app_state: AppState = request.app.state.app
    refusal: ApiError | None = None
    failure: Exception | None = None
    replay: Response[bytes] | None = None
    body = b""
    async with app_state.require_pool().acquire() as conn, conn.transaction():
        claim = await conn.fetchrow(
            queries.ADMIT, *rate_limit.arguments(admission, caller.partner_id, key)
        )
        assert claim is not None, "gateway_admit returns one row"
        refusal = rate_limit.judge(request.scope, admission, claim)
        if refusal is not None:
            pass  # commit what the admission wrote (the nonce, the counted call), then refuse
        elif not claim["locked"]:
            refusal = ApiError(
                409,
                ErrorCode.IDEMPOTENCY_IN_PROGRESS,
                "a request with this Idempotency-Key is still running",
                headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER_S)},
            )
        elif claim["request_sha256"] is not None:
            if bytes(claim["request_sha256"]) != fingerprint:
                refusal = ApiError(
                    422,
                    ErrorCode.IDEMPOTENCY_MISMATCH,
                    "this Idempotency-Key was used with a different request",
                )
            else:
                metrics.IDEMPOTENT_REPLAYS.inc()
                replay = Response(
                    bytes(claim["response_body"]),
                    status_code=claim["response_status"],
                    media_type=JSON,
                    headers={REPLAYED_HEADER: "true"},
                )
        else:
            await conn.execute(queries.SAVEPOINT_EFFECT)
            for attempt in range(1, DEADLOCK_ATTEMPTS_MAX + 1):
                try:
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
                except asyncpg.DeadlockDetectedError as exc:
                    # Rolling back to the savepoint releases the effect's row locks; the
                    # admission and the key's claim are kept for the next attempt.
                    await conn.execute(queries.ROLLBACK_TO_EFFECT)
                    if attempt == DEADLOCK_ATTEMPTS_MAX:
                        failure = exc
                except Exception as exc:  # a refused effect stores nothing; its call counted
                    await conn.execute(queries.ROLLBACK_TO_EFFECT)
                    failure = exc
                    break
    if refusal is not None:
        raise refusal
    if failure is not None:
        raise failure
    if replay is not None:
        return replay
    if on_committed is not None:
        on_committed(result)
    return Response(body, status_code=status_code, media_type=JSON)
