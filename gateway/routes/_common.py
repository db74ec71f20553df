"""Plumbing shared by route modules: a transaction around one service call, the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar import Request
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter

from gateway import queries, rate_limit
from gateway.group_commit import Job
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
    (nonce and rate limit, gateway/rate_limit.py), and its transaction is shared with concurrent
    calls (gateway/group_commit.py): a failing call is rolled back and admitted again on its
    own, so its admission still commits. One commit per group of calls.
    """
    app_state: AppState = request.app.state.app
    admission = rate_limit.take_pending(request.scope)
    if admission is None:
        async with app_state.require_pool().acquire() as conn, conn.transaction():
            return await fn(conn)
    call = _AdmittedCall(request, admission, fn)
    committer = app_state.group_commit
    if committer is not None:
        outcome = await committer.run(Job(call.work, call.undone, call.alone))
    else:
        outcome = await call.alone()
    if isinstance(outcome, _Raised):
        raise outcome.error
    return outcome


@dataclass(frozen=True)
class _Raised:
    """A call's failure, raised once what it committed (its admission) has committed."""

    error: Exception


@dataclass(frozen=True)
class _AdmittedCall(Generic[T]):
    request: Request[Any, Any, Any]
    admission: rate_limit.Admission
    fn: Callable[[Conn], Awaitable[T]]

    async def alone(self) -> T | _Raised:
        """Admit; a savepoint; the call (rolled back to the savepoint if it fails); commit."""
        app_state: AppState = self.request.app.state.app
        async with app_state.require_pool().acquire() as conn, conn.transaction():
            refusal = await self._admit(conn)
            if refusal is not None:
                return _Raised(refusal)
            await conn.execute(queries.SAVEPOINT_EFFECT)
            try:
                return await self.fn(conn)
            except Exception as exc:
                await conn.execute(queries.ROLLBACK_TO_EFFECT)
                return _Raised(exc)

    async def work(self, conn: Conn) -> T | _Raised:
        """In a group's transaction: admit, then the call; a failing call raises."""
        refusal = await self._admit(conn)
        if refusal is not None:
            return _Raised(refusal)
        return await self.fn(conn)

    async def undone(self, conn: Conn, failure: Exception) -> T | _Raised:
        """The call was rolled back with its admission: admit it again, answer the failure."""
        await rate_limit.admit_again(conn, self.admission)
        return _Raised(failure)

    async def _admit(self, conn: Conn) -> Exception | None:
        return await rate_limit.admit_alone(conn, self.request.scope, self.admission)


async def read_only(request: Request[Any, Any, Any], fn: Callable[[Conn], Awaitable[T]]) -> T:
    """A read for display (balances, history, insights, analytics, statements listing): on the
    read replica while it is within its lag bound (gateway/replica.py), else as in_transaction.

    Nothing that decides money reads here. A signed partner call is admitted on the primary
    first (its nonce and rate-limit count are writes), then reads in a read-only snapshot.
    """
    app_state: AppState = request.app.state.app
    replica_pool = app_state.read_pool()
    if replica_pool is None:
        return await in_transaction(request, fn)
    if rate_limit.has_pending(request.scope):
        await in_transaction(request, _admitted_only)
    async with (
        replica_pool.acquire() as conn,
        conn.transaction(readonly=True, isolation="repeatable_read"),
    ):
        return await fn(conn)


async def _admitted_only(conn: Conn) -> None:
    """The effect of a call whose read runs elsewhere: nothing beyond its admission."""
