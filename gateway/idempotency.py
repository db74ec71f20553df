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

A group's idempotent calls run together (`group_commit.Together`): one statement admits them
all; a route whose effect has a set-based form (`Many`, e.g. purchases) makes what it can of
its calls in one step; each other call runs its own effect after a savepoint, exactly as
`alone` does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response

from contracts.errors import ErrorCode
from gateway import metrics, queries, rate_limit
from gateway.auth.signatures import Caller
from gateway.errors import ApiError
from gateway.group_commit import AfterCommit, Job, Together
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
    record: tuple[int, str, bytes, int, bytes] | None = None  # INSERT_IDEMPOTENCY_RECORDS' row


async def _store_group(conn: Conn, outcomes: list[_Outcome[Any]]) -> None:
    """The records of a group's calls whose effect ran, in one statement."""
    records = [o.record for o in outcomes if isinstance(o, _Stored) and o.record is not None]
    if records:
        await _insert_records(conn, records)


async def _insert_records(conn: Conn, records: list[tuple[int, str, bytes, int, bytes]]) -> None:
    await conn.execute(queries.INSERT_IDEMPOTENCY_RECORDS, *_columns(records))


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of arguments as one array per column (for the statements that `unnest` them)."""
    assert rows, "a statement over no rows is never sent"
    return [list(column) for column in zip(*rows, strict=True)]


# What the transaction decided, answered only once it has committed: a refusal or the effect's
# failure (raised), a replayed answer, or the effect's stored response.
_Outcome = Exception | Response[bytes] | _Stored[T]


@dataclass(frozen=True)
class Many(Generic[T]):
    """The set-based form of a route's effect, for the calls of one group.

    run: the same function for every call of the route; takes (handle, item) for the group's
        admitted calls, makes the effects it can (in the group's transaction) and answers
        those by handle; every other call's own effect then runs by itself, after them.
    item: what `run` needs of this call.
    card_number: the card whose shopper's wallet the effect locks, if the call names one: a
        group with more than one step locks all these wallets first, in one order (see
        `_lock_wallets`).
    """

    run: Callable[[Conn, list[tuple[int, Any]]], Awaitable[dict[int, T]]]
    item: Any
    card_number: str | None = None


async def run_once(
    request: Request[Any, Any, Any],
    caller: Caller,
    effect: Callable[[Conn], Awaitable[T]],
    *,
    status_code: int = 201,
    on_committed: Callable[[T], None] | None = None,
    grouped: bool = True,
    many: Many[T] | None = None,
    locks_ref: str | None = None,
) -> Response[bytes]:
    """Run `effect` once per (partner, Idempotency-Key); replay its stored answer after.

    grouped: the call shares its transaction and commit with concurrent calls
    (gateway/group_commit.py); False for a call that is a batch of its own (a file upload),
    which would hold its neighbours' answers for the length of the whole file.
    many: the effect's set-based form, for a group's calls of the same route.
    locks_ref: the partner_ref of an earlier transaction of this partner whose shopper's wallet
        the effect locks (a refund's original), taken with the group's cards' (`_lock_wallets`).
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
        locks_ref=locks_ref,
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
            together=Together(_IDEMPOTENT_CALLS, _run_together, (call, many)),
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
    locks_ref: str | None = None

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
            return await self.effect_after_savepoint(conn)

    async def work(self, conn: Conn) -> _Outcome[T]:
        """In a group's transaction, after the call's savepoint: admit, then the effect; its
        record is written with the group's (`_store_group`) before the group commits. A
        failing effect raises, and the group rolls the whole call back."""
        answered = await self._admitted(conn)
        if answered is not None:
            return answered
        return self.stored(await self.effect(conn))

    async def undone(self, conn: Conn, failure: Exception) -> _Outcome[T]:
        """After the group rolled the call back: admit it again, without the key's claim (its
        nonce and its count commit whatever the outcome), and answer the failure."""
        if self.admission is not None:
            await rate_limit.admit_again(conn, self.admission)
        return failure

    def stored(self, result: T) -> _Stored[T]:
        """The effect's result with the record to write for it at the group's end."""
        body = msgspec.json.encode(result)
        record = (self.partner_id, self.key, self.fingerprint, self.status_code, body)
        return _Stored(result, body, record)

    async def _admitted(self, conn: Conn) -> ApiError | Response[bytes] | None:
        """Admit the call and claim its key: a refusal or a stored answer, or None to run."""
        return self.judged(await _admit(conn, self.admission, self.partner_id, self.key))

    def judged(self, claim: asyncpg.Record) -> ApiError | Response[bytes] | None:
        """What the admission's row answers: a refusal or a stored answer, or None to run."""
        refusal = rate_limit.judge(self.request.scope, self.admission, claim)
        # A refusal commits what the admission wrote (the nonce, the counted call), then refuses.
        return refusal if refusal is not None else _claimed(claim, self.fingerprint)

    async def effect_after_savepoint(self, conn: Conn) -> Exception | _Stored[T]:
        """After a savepoint, the effect and its record; a failure rolls back to the savepoint
        and is returned, to be raised once the admission has committed."""
        await conn.execute(queries.SAVEPOINT_EFFECT)
        for attempt in range(1, DEADLOCK_ATTEMPTS_MAX + 1):
            try:
                stored = self.stored(await self.effect(conn))
                assert stored.record is not None
                await _insert_records(conn, [stored.record])
                return _Stored(stored.result, stored.body)
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

    async def effect_in_group(self, conn: Conn) -> _Outcome[T] | AfterCommit[_Outcome[T]]:
        """The effect of an admitted call of a set-based step, after a savepoint; its record
        is left for the group's end. A lock conflict with a neighbour is not the call's fault
        and the group holds many locks: the effect then runs on its own after the commit
        (`effect_alone`), the admission being made already."""
        await conn.execute(queries.SAVEPOINT_EFFECT)
        try:
            return self.stored(await self.effect(conn))
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            await conn.execute(queries.ROLLBACK_TO_EFFECT)
            return AfterCommit(self.effect_alone)
        except Exception as exc:  # a refused effect stores nothing; its call counted
            await conn.execute(queries.ROLLBACK_TO_EFFECT)
            return exc

    async def effect_alone(self) -> _Outcome[T]:
        """The effect in a transaction of its own, for a call admitted by a group that has
        committed: the key is claimed again (a record stored meanwhile is answered), the nonce
        and the count are not taken twice."""
        app_state: AppState = self.request.app.state.app
        async with app_state.require_pool().acquire() as conn, conn.transaction():
            claim = await _admit(conn, None, self.partner_id, self.key)
            answered = _claimed(claim, self.fingerprint)
            if answered is not None:
                return answered
            return await self.effect_after_savepoint(conn)


_IDEMPOTENT_CALLS = "run_once"  # the `Together` kind of every grouped idempotent call


async def _run_together(conn: Conn, items: list[tuple[_Call[Any], Many[Any] | None]]) -> list[Any]:
    """A group's idempotent calls, together (`Together.run`): one statement admits them all;
    each route's set-based effect (`Many`) makes what it can of its admitted calls; every
    other admitted call runs its own effect after a savepoint. Answers each call's outcome,
    in order."""
    calls = [call for call, _ in items]
    rows = [rate_limit.arguments(c.admission, c.partner_id, c.key) for c in calls]
    claims = await conn.fetch(queries.ADMIT_MANY, *_columns(rows))
    assert len(claims) == len(calls), "a row per call"
    outcomes: list[_Outcome[Any] | AfterCommit[Any] | None] = [
        call.judged(claim) for call, claim in zip(calls, claims, strict=True)
    ]
    admitted = [handle for handle, outcome in enumerate(outcomes) if outcome is None]
    routes: dict[Callable[..., Awaitable[dict[int, Any]]], list[tuple[int, Any]]] = {}
    for handle in admitted:
        many = items[handle][1]
        if many is not None:
            routes.setdefault(many.run, []).append((handle, many.item))
    await _lock_wallets(conn, items, admitted, steps=len(routes) + _singles(items, admitted))
    for run, handled_items in routes.items():
        for handle, result in (await run(conn, handled_items)).items():
            outcomes[handle] = calls[handle].stored(result)
    for handle in admitted:
        if outcomes[handle] is None:
            outcomes[handle] = await calls[handle].effect_in_group(conn)
    return outcomes


def _singles(items: list[tuple[_Call[Any], Many[Any] | None]], admitted: list[int]) -> int:
    """The admitted calls whose effect runs by itself (no set-based form)."""
    return sum(1 for handle in admitted if items[handle][1] is None)


async def _lock_wallets(
    conn: Conn,
    items: list[tuple[_Call[Any], Many[Any] | None]],
    admitted: list[int],
    *,
    steps: int,
) -> None:
    """Lock the wallets of the group's cards in shopper order, before any step runs.

    Each set-based step locks its own shoppers' wallets in shopper order, but the steps run one
    after another: a group whose earn step holds shopper 5 and whose burn step wants 3, beside
    a group holding 3 and wanting 5, is a deadlock. With every wallet taken first in one
    global order, the steps then re-take locks already held. One step alone needs nothing.
    """
    if steps < 2:
        return
    cards = sorted(
        {m.card_number for h in admitted if (m := items[h][1]) is not None and m.card_number}
    )
    refs = sorted(
        {(c.partner_id, c.locks_ref) for h in admitted if (c := items[h][0]).locks_ref is not None}
    )
    if len(cards) + len(refs) > 1:
        await conn.execute(
            queries.LOCK_WALLETS,
            cards,
            [partner_id for partner_id, _ in refs],
            [ref for _, ref in refs],
        )


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
