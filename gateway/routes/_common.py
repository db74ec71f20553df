"""Plumbing shared by route modules: a transaction around one service call, the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter

from gateway import queries, rate_limit
from gateway.state import AppState
from infra.db import Conn

T = TypeVar("T")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# An integer id in a path: the database keys are bigint, so a value outside int64 is refused
# as a 400 validation problem instead of reaching asyncpg (which fails to encode it: a 500).
PathId = Annotated[int, PathParameter(ge=INT64_MIN, le=INT64_MAX)]


REPLAY_NOTE = (
    "A retry with the same Idempotency-Key and body answers the stored body again, with "
    "`Idempotency-Replayed: true`."
)


def documented(
    struct: type[msgspec.Struct], description: str, *statuses: int
) -> dict[int, ResponseSpec]:
    """`responses=` for a handler answering pre-encoded JSON (`Response[bytes]`).

    Litestar documents such a body as a bare string; this documents the Struct it encodes.
    """
    spec = ResponseSpec(data_container=struct, description=description, generate_examples=False)
    return {status: spec for status in statuses}


async def in_transaction(request: Request[Any, Any, Any], fn: Callable[[Conn], Awaitable[T]]) -> T:
    """Run one service call in its own transaction (reads get a consistent snapshot too).

    A signed partner call not admitted yet is admitted by the transaction's first statement
    (nonce and rate limit, gateway/rate_limit.py), and the call runs after a savepoint: a
    failing call is rolled back to it and the admission still commits. One checkout, one commit.
    """
    app_state: AppState = request.app.state.app
    admission = rate_limit.take_pending(request.scope)
    async with app_state.require_pool().acquire() as conn, conn.transaction():
        if admission is None:
            return await fn(conn)
        row = await conn.fetchrow(queries.ADMIT, *rate_limit.arguments(admission, None, None))
        assert row is not None, "gateway_admit returns one row"
        refusal = rate_limit.judge(request.scope, admission, row)
        failure: Exception | None = None
        if refusal is None:
            await conn.execute(queries.SAVEPOINT_EFFECT)
            try:
                result = await fn(conn)
            except Exception as exc:
                await conn.execute(queries.ROLLBACK_TO_EFFECT)
                failure = exc
    if refusal is not None:
        raise refusal
    if failure is not None:
        raise failure
    return result
