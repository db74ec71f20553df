"""Idempotent partner calls with Stripe semantics, stored in the effect's own transaction.

One transaction per call, whose first statement also admits the signed call (nonce and rate
limit, gateway/rate_limit.py): take a try-lock on (partner, Idempotency-Key) -> a stored record?
replay it (same request) or refuse it (different request) -> else run the effect and store its
response -> commit. Effect and record commit together or not at all, so a crash between them
cannot leave an effect without its record. A failed call stores nothing: the effect is rolled
back to a savepoint taken after the admission, so the client may retry it with the same key
(signed again: its nonce was remembered), and the refusal changed nothing else.

Concurrent calls share that transaction (gateway/group_commit.py): each call runs after its own
savepoint in a group's transaction and is answered once the group has committed. A failing
effect is rolled back with the call's admission, which is then made again on its own, so the
answer and what commits are the same as for a call alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response

from contracts.errors import ErrorCode
from gateway import metrics, queries, rate_limit
from gateway.auth.signatures import Caller
from gateway.errors import ApiError
from gateway.group_commit import Job
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


@dataclass(frozen=True)
class _Stored(Generic[T]):
    """The effect ran and its response was stored beside it, to be answered after the commit
    (in a group: `record` is stored for the whole group just before the commit)."""

    result: T
    body: bytes
    record: tuple[int, str, bytes, int, bytes] | None = None  # INSERT_IDEMPOTENCY_RECORD's


async def _store_group(conn: Conn, outcomes: list[_Outcome[Any]]) -> None:
    """The records of a group's calls whose effect ran, in one pipelined round trip."""
    records = [o.record for o in outcomes if isinstance(o, _Stored) and o.record is not None]
    if records:
        await conn.executemany(queries.INSERT_IDEMPOTENCY_RECORD, records)


# What the transaction decided, answered only once it has committed: a refusal or the effect's
# failure (raised), a replayed answer, or the effect's stored response.
_Outcome = Exception | Response[bytes] | _Stored[T]


async def run_once(
    request: Request[Any, Any, Any],
    caller: Caller,
    effect: Callable[[Conn], Awaitable[T]],
    *,
    status_code: int = 201,
    on_committed: Callable[[T], None] | None = None,
    grouped: bool = True,
) -> Response[bytes]:
    """Run `effect` once per (partner, Idempotency-Key); replay its stored answer after.

    grouped: the call shares its transaction and commit with concurrent calls
    (gateway/group_commit.py); False for a call that is a batch of its own (a file upload),
    which would hold its neighbours' answers for the length of the whole file.
    """
    key = caller.idempotency_key
    assert key is not None, "the signature guard requires the header on POST"
    call = _Call(
        request=request,
        partner_id=caller.partner_id,
        key=key,
        fingerprint=_fingerprint(request, await request.body()),
        admission=rate_limit.take_pending(request.scope),
        effect=effect,
        status_code=status_code,
    )
    app_state: AppState = request.app.state.app
    committer = app_state.group_commit
    if grouped and committer is not None:
        job = Job(
            call.work,
            call.undone,
            call.alone,
            finish=_store_group,
            exclusive=(call.partner_id, key),  # its record is written at the group's end
        )
        outcome = await committer.run(job)
    else:
        outcome = await call.alone()
    return _answer(outcome, status_code, on_committed)


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One idempotent call, runnable alone or as part of a group commit."""

    request: Request[Any, Any, Any]
    partner_id: int
    key: str
    fingerprint: bytes
    admission: rate_limit.Admission | None
    effect: Callable[[Conn], Awaitable[T]]
    status_code: int

    async def alone(self) -> _Outcome[T]:
        """One pool checkout, one transaction, one commit: BEGIN; admit (nonce, rate limit,
        the key's claim and stored answer: one statement); SAVEPOINT; the effect; the record;
        COMMIT. Every outcome commits the admission; only the effect and its record depend
        on the outcome."""
        app_state: AppState = self.request.app.state.app
        async with app_state.require_pool().acquire() as conn, conn.transaction():
            answered = await self._admitted(conn)
            if answered is not None:
                return answered
            return await _run_effect_and_store(
                conn,
                self.partner_id,
                self.key,
                self.fingerprint,
                self.effect,
                self.status_code,
            )

    async def work(self, conn: Conn) -> _Outcome[T]:
        """In a group's transaction, after the call's savepoint: admit, then the effect; its
        record is written with the group's (`_store_group`) before the group commits. A
        failing effect raises, and the group rolls the whole call back."""
        answered = await self._admitted(conn)
        if answered is not None:
            return answered
        result = await self.effect(conn)
        body = msgspec.json.encode(result)
        record = (self.partner_id, self.key, self.fingerprint, self.status_code, body)
        return _Stored(result, body, record)

    async def undone(self, conn: Conn, failure: Exception) -> _Outcome[T]:
        """After the group rolled the call back: admit it again, without the key's claim (its
        nonce and its count commit whatever the outcome), and answer the failure."""
        if self.admission is not None:
            await rate_limit.admit_again(conn, self.admission)
        return failure

    async def _admitted(self, conn: Conn) -> ApiError | Response[bytes] | None:
        """Admit the call and claim its key: a refusal or a stored answer, or None to run."""
        claim = await _admit(conn, self.admission, self.partner_id, self.key)
        refusal = rate_limit.judge(self.request.scope, self.admission, claim)
        # A refusal commits what the admission wrote (the nonce, the counted call), then refuses.
        return refusal if refusal is not None else _claimed(claim, self.fingerprint)


async def _admit(
    conn: Conn, admission: rate_limit.Admission | None, partner_id: int, key: str
) -> asyncpg.Record:
    """The transaction's first statement: the nonce, the rate limit, the key's claim (an
    advisory try-lock) and its stored answer, if any."""
    claim = await conn.fetchrow(queries.ADMIT, *rate_limit.arguments(admission, partner_id, key))
    assert claim is not None, "gateway_admit returns one row"
    return claim


def _claimed(claim: asyncpg.Record, fingerprint: bytes) -> ApiError | Response[bytes] | None:
    """What the key's claim answers on its own: still running elsewhere (409), used with a
    different request (422), or a stored response to replay; None when the effect is to run."""
    if not claim["locked"]:
        return ApiError(
            409,
            ErrorCode.IDEMPOTENCY_IN_PROGRESS,
            "a request with this Idempotency-Key is still running",
            headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER_S)},
        )
    if claim["request_sha256"] is None:
        return None
    if bytes(claim["request_sha256"]) != fingerprint:
        return ApiError(
            422,
            ErrorCode.IDEMPOTENCY_MISMATCH,
            "this Idempotency-Key was used with a different request",
        )
    metrics.IDEMPOTENT_REPLAYS.inc()
    return Response(
        bytes(claim["response_body"]),
        status_code=claim["response_status"],
        media_type=JSON,
        headers={REPLAYED_HEADER: "true"},
    )


async def _run_effect_and_store(
    conn: Conn,
    partner_id: int,
    key: str,
    fingerprint: bytes,
    effect: Callable[[Conn], Awaitable[T]],
    status_code: int,
) -> Exception | _Stored[T]:
    """After a savepoint, the effect and its record; a failure rolls back to the savepoint and
    is returned, to be raised once the admission has committed."""
    await conn.execute(queries.SAVEPOINT_EFFECT)
    for attempt in range(1, DEADLOCK_ATTEMPTS_MAX + 1):
        try:
            result = await effect(conn)
            body = msgspec.json.encode(result)
            await _store(conn, partner_id, key, fingerprint, status_code, body)
            return _Stored(result, body)
        except asyncpg.DeadlockDetectedError as exc:
            # Rolling back to the savepoint releases the effect's row locks; the
            # admission and the key's claim are kept for the next attempt.
            await conn.execute(queries.ROLLBACK_TO_EFFECT)
            if attempt == DEADLOCK_ATTEMPTS_MAX:
                return exc
        except Exception as exc:  # a refused effect stores nothing; its call counted
            await conn.execute(queries.ROLLBACK_TO_EFFECT)
            return exc
    raise AssertionError("the last attempt always returns")


async def _store(
    conn: Conn, partner_id: int, key: str, fingerprint: bytes, status_code: int, body: bytes
) -> None:
    """The record a retry with this key replays, committed with the effect it answers for."""
    await conn.execute(
        queries.INSERT_IDEMPOTENCY_RECORD, partner_id, key, fingerprint, status_code, body
    )


def _answer(
    outcome: _Outcome[T], status_code: int, on_committed: Callable[[T], None] | None
) -> Response[bytes]:
    if isinstance(outcome, Exception):
        raise outcome
    if isinstance(outcome, Response):
        return outcome
    if on_committed is not None:
        on_committed(outcome.result)
    return Response(outcome.body, status_code=status_code, media_type=JSON)
