"""Group commit: concurrent partner calls share one transaction, and so one commit.

A call hands its work to `GroupCommit.run` and waits. A lane (a task holding one pooled
connection for the length of one group) takes up to `size_max` queued calls, runs them one after
another in one transaction, each after its own savepoint, commits once, then answers them all.
Nothing waits for a group to fill: a lane starts as soon as a call is queued and a lane is free,
so under light load a group is one call, and under load the calls that queued while the lanes
were busy share the next commit (one WAL flush, one BEGIN/COMMIT, one pool checkout per group).

Each call keeps its own semantics (see `Job`):
- its work is isolated by a savepoint: when it raises, everything it did is rolled back and its
  `undone` step runs in the group's transaction (the gateway re-admits the call there, so its
  nonce and rate-limit count still commit, and answers the failure);
- a deadlock or serialization failure rolls the call back and runs it again `alone`, in its
  own transaction after the group committed (a neighbour's locks are never its fault);
- when COMMIT itself is refused by the server (a deferred check), nothing of the group was
  committed: every call runs again `alone`, so a failing call never fails its neighbours;
- when the connection breaks, whether the group committed is unknown: its calls fail with
  the error, as a single call's would.

Groups are bounded: at most `size_max` calls, each one subtransaction, kept below PostgreSQL's
64 cached subtransaction ids per backend, past which every other backend's snapshots get slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from contracts.errors import ErrorCode
from gateway import availability, metrics
from gateway.errors import ApiError
from infra.db import Conn
from infra.settings import GROUP_COMMIT_LANES_MAX, GROUP_COMMIT_SIZE_MAX

log = logging.getLogger(__name__)

R = TypeVar("R")

QUEUED_MAX = 10_000  # calls waiting for a lane; beyond, a call is refused (503)
BUSY_RETRY_AFTER_S = 1

BEGIN = "BEGIN; SAVEPOINT group_call"
NEXT_CALL = "RELEASE SAVEPOINT group_call; SAVEPOINT group_call"
UNDO_CALL = "ROLLBACK TO SAVEPOINT group_call"
# With set-based steps first (see `Together`): each in a savepoint of its own.
BEGIN_TOGETHER = "BEGIN; SAVEPOINT group_together"
TOGETHER = "SAVEPOINT group_together"
FIRST_CALL = "SAVEPOINT group_call"
# A step that worked keeps its savepoint open (COMMIT releases it): one round trip less.
UNDO_TOGETHER = "ROLLBACK TO SAVEPOINT group_together; RELEASE SAVEPOINT group_together"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

# Failures caused by a neighbour's locks rather than by the call itself.
_RETRY_ALONE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass(frozen=True)
class AfterCommit(Generic[R]):
    """What a set-based step answers for a call that lost a lock conflict to a neighbour
    after its admission was made: the rest of the call, run in a transaction of its own once
    the group has committed; its result is the call's answer."""

    run: Callable[[], Awaitable[R]]


@dataclass(frozen=True)
class Together(Generic[R]):
    """A call that can run with the group's other calls of its `kind` in one set-based step.

    run: the same for every call of a kind; takes their items in call order and answers each
        call, every write of theirs made in the group's transaction. Raising rolls back all it
        did, and those calls then run one by one as any other.
    """

    kind: Hashable
    run: Callable[[Conn, list[Any]], Awaitable[list[R]]]
    item: Any


@dataclass(frozen=True)
class Job(Generic[R]):
    """One call's part in a group.

    work: runs in the group's transaction after a savepoint; its result is answered after the
        group commits. Raising rolls back everything it did.
    undone: runs after `work` raised and was rolled back, still in the group's transaction;
        returns the call's answer (e.g. the error to raise once committed).
    alone: runs the whole call in a transaction of its own (after a neighbour's lock conflict,
        or when the group's commit was refused).
    finish: called once per group, just before COMMIT, with the results of the group's calls
        that share this very function and whose work succeeded: writes that can be made for
        the whole group in one round trip instead of one per call. Raising fails the
        group (nothing committed: every call runs alone).
    exclusive: calls with equal values never share a group (the later one waits for the next),
        e.g. an idempotency key whose record `finish` writes: a neighbour in the same group
        would not see it yet.
    together: the call's set-based form, tried before the calls run one by one.
    """

    work: Callable[[Conn], Awaitable[R]]
    undone: Callable[[Conn, Exception], Awaitable[R]]
    alone: Callable[[], Awaitable[R]]
    finish: Callable[[Conn, list[R]], Awaitable[None]] | None = None
    exclusive: Hashable | None = None
    together: Together[R] | None = None


@dataclass
class _Queued(Generic[R]):
    job: Job[R]
    answer: asyncio.Future[R]


@dataclass
class _Done:
    queued: _Queued[Any]
    result: Any
    worked: bool  # False: the call's work raised, `result` is what its undone step answered


@dataclass
class GroupCommit:
    """The lanes of one server process. `run` is safe to call from any request task."""

    pool: asyncpg.Pool
    lanes: int
    size_max: int
    queued_max: int = QUEUED_MAX
    _queue: deque[_Queued[Any]] = field(default_factory=deque)
    _lanes_busy: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        assert 1 <= self.lanes <= GROUP_COMMIT_LANES_MAX, self.lanes
        assert 1 <= self.size_max <= GROUP_COMMIT_SIZE_MAX, self.size_max
        assert 1 <= self.queued_max <= QUEUED_MAX, self.queued_max

    async def run(self, job: Job[R]) -> R:
        if len(self._queue) >= self.queued_max:
            # Refused before anything ran or was admitted: the call changed nothing, its
            # signed request may be sent again as is.
            raise ApiError(
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{len(self._queue)} partner calls are waiting for a commit; retry shortly",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieve)  # a caller gone before the answer logs no warning
        self._queue.append(_Queued(job, answer))
        if self._lanes_busy < self.lanes:
            self._lanes_busy += 1
            task = asyncio.create_task(self._lane())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A cancelled caller (client gone) does not cancel its call: the group answers nobody.
        return await asyncio.shield(answer)

    async def drain(self) -> None:
        """Wait until every queued call is answered (shutdown, before the pool closes)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _lane(self) -> None:
        try:
            while self._queue:
                await self._run_group(self._next_group())
        finally:
            self._lanes_busy -= 1

    def _next_group(self) -> list[_Queued[Any]]:
        """Up to `size_max` queued calls in order; one whose `exclusive` value is already in
        the group stays queued, at its place, for a later group."""
        group: list[_Queued[Any]] = []
        held: list[_Queued[Any]] = []
        taken: set[Hashable] = set()
        while self._queue and len(group) < self.size_max:
            queued = self._queue.popleft()
            exclusive = queued.job.exclusive
            if exclusive is not None and exclusive in taken:
                held.append(queued)
                continue
            if exclusive is not None:
                taken.add(exclusive)
            group.append(queued)
        self._queue.extendleft(reversed(held))
        assert group, "a lane only forms a group from a non-empty queue"
        return group

    async def _run_group(self, group: list[_Queued[Any]]) -> None:
        metrics.GROUP_COMMIT_CALLS.observe(len(group))
        done: list[_Done] = []
        alone: list[_Queued[Any]] = []
        try:
            async with self.pool.acquire() as conn:
                await _in_one_transaction(conn, group, done, alone)
        except asyncpg.PostgresError as exc:  # the server refused: nothing was committed
            if availability.classify(exc) is availability.Kind.UNREACHABLE:
                # Not a refusal: the server went away (perhaps during COMMIT), so whether the
                # group committed is unknown, as with a lost connection below.
                for queued in group:
                    _fail(queued.answer, exc)
                return
            log.warning("a group's transaction was refused; its calls run alone", exc_info=exc)
            metrics.GROUP_COMMIT_REFUSED.inc()
            done, alone = [], list(group)
        except Exception as exc:  # connection lost: whether it committed is unknown
            for queued in group:
                _fail(queued.answer, exc)
            return
        later: list[tuple[_Queued[Any], Callable[[], Awaitable[Any]]]] = []
        for d in done:
            if isinstance(d.result, AfterCommit):
                later.append((d.queued, d.result.run))
            elif not d.queued.answer.done():
                d.queued.answer.set_result(d.result)
        later.extend((queued, queued.job.alone) for queued in alone)
        for queued, run in later:
            metrics.GROUP_COMMIT_ALONE.inc()
            try:
                result = await run()
            except Exception as exc:
                _fail(queued.answer, exc)
            else:
                if not queued.answer.done():
                    queued.answer.set_result(result)


async def _in_one_transaction(
    conn: Conn, group: list[_Queued[Any]], done: list[_Done], alone: list[_Queued[Any]]
) -> None:
    """Run the group's calls in one transaction and commit it; fill `done` and `alone`."""
    kinds = _kinds(group)
    await conn.execute(BEGIN_TOGETHER if kinds else BEGIN)
    try:
        one_by_one = await _together(conn, group, kinds, done) if kinds else group
        for index, queued in enumerate(one_by_one):
            if index > 0:
                await conn.execute(NEXT_CALL)
            elif kinds:
                await conn.execute(FIRST_CALL)
            try:
                result = await queued.job.work(conn)
            except _RETRY_ALONE:
                await conn.execute(UNDO_CALL)
                alone.append(queued)
                continue
            except asyncpg.InterfaceError:
                raise
            except Exception as exc:
                await conn.execute(UNDO_CALL)
                done.append(_Done(queued, await queued.job.undone(conn, exc), worked=False))
                continue
            done.append(_Done(queued, result, worked=True))
        await _finish(conn, done)
        await conn.execute(COMMIT)
    except BaseException:
        # A connection lost mid-group may already be detached from its proxy, which then
        # refuses every call (InterfaceError): the original error is the one to raise.
        with contextlib.suppress(asyncpg.InterfaceError):
            if not conn.is_closed() and conn.is_in_transaction():
                await conn.execute(ROLLBACK)
        raise


def _kinds(group: list[_Queued[Any]]) -> list[list[tuple[_Queued[Any], Together[Any]]]]:
    """The group's `Together` calls by kind, for the kinds with two calls or more (a call
    alone of its kind gains nothing from a set-based step)."""
    kinds: dict[Hashable, list[tuple[_Queued[Any], Together[Any]]]] = {}
    for queued in group:
        together = queued.job.together
        if together is not None:
            kinds.setdefault(together.kind, []).append((queued, together))
    return [of_kind for of_kind in kinds.values() if len(of_kind) > 1]


def _log_step_failed(exc: Exception) -> None:
    """One line for a refusal PostgreSQL explains (a deadlock victim, a serialization failure:
    handled by running the calls one by one, counted by a metric); a traceback for the rest."""
    message = "a set-based step failed; its calls run one by one"
    if isinstance(exc, asyncpg.PostgresError):
        log.warning(message, extra={"sqlstate": exc.sqlstate, "error": str(exc)[:500]})
    else:
        log.warning(message, exc_info=exc)


async def _together(
    conn: Conn,
    group: list[_Queued[Any]],
    kinds: list[list[tuple[_Queued[Any], Together[Any]]]],
    done: list[_Done],
) -> list[_Queued[Any]]:
    """Run each kind's calls in one step, each step after its savepoint (the first one taken
    with BEGIN); answer the calls left to run one by one (those without a set-based form, and
    those whose step raised), in group order."""
    for number, of_kind in enumerate(kinds):
        members = [queued for queued, _ in of_kind]
        run = of_kind[0][1].run
        if number > 0:
            await conn.execute(TOGETHER)
        try:
            results = await run(conn, [together.item for _, together in of_kind])
        except asyncpg.InterfaceError:
            raise
        except Exception as exc:
            if availability.classify(exc) is availability.Kind.UNREACHABLE:
                raise  # the connection is gone: the group fails (see _run_group)
            _log_step_failed(exc)
            metrics.GROUP_COMMIT_TOGETHER_FAILED.inc()
            await conn.execute(UNDO_TOGETHER)
            continue
        assert len(results) == len(members), "a set-based step answers every call"
        metrics.GROUP_COMMIT_TOGETHER.inc(len(members))
        done.extend(_Done(m, r, worked=True) for m, r in zip(members, results, strict=True))
    answered = {id(d.queued) for d in done}
    return [queued for queued in group if id(queued) not in answered]


async def _finish(conn: Conn, done: list[_Done]) -> None:
    """Each finisher once, with the results of the calls that named it, in call order."""
    results_by_finish: dict[Callable[[Conn, list[Any]], Awaitable[None]], list[Any]] = {}
    for d in done:
        finish = d.queued.job.finish
        if finish is not None and d.worked and not isinstance(d.result, AfterCommit):
            results_by_finish.setdefault(finish, []).append(d.result)
    for finish, results in results_by_finish.items():
        await finish(conn, results)


def _fail(answer: asyncio.Future[Any], exc: Exception) -> None:
    if not answer.done():
        answer.set_exception(exc)


def _retrieve(answer: asyncio.Future[Any]) -> None:
    if not answer.cancelled():
        answer.exception()
