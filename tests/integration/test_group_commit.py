"""Group commit (gateway/group_commit.py) on a real PostgreSQL: calls share a transaction and
keep their own outcomes; a neighbour's failure never fails a call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from gateway.errors import ApiError
from gateway.group_commit import AfterCommit, GroupCommit, Job, Together
from infra.db import Conn


@pytest.fixture(scope="module")
async def table(pool: asyncpg.Pool) -> AsyncIterator[None]:
    async with pool.acquire() as conn:
        await conn.execute(
            """
            CREATE TABLE group_calls (
                call integer NOT NULL,
                what text NOT NULL,
                txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                CONSTRAINT group_calls_once UNIQUE (call, what) DEFERRABLE INITIALLY DEFERRED
            )
            """
        )
    yield
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE group_calls")


@pytest.fixture
async def clean(pool: asyncpg.Pool, table: None) -> None:
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE group_calls")


class Refused(Exception):
    """What a call's work raises when it refuses."""


@dataclass
class Call:
    """A call that writes a row; `fail` picks how its work ends."""

    pool: asyncpg.Pool
    call: int
    fail: str | None = None  # None | "refuse" | "deadlock" | "duplicate" | "terminate"
    ran_alone: bool = False

    exclusive: str | None = None

    def job(self) -> Job[str]:
        return Job(self.work, self.undone, self.alone, finish=finish, exclusive=self.exclusive)

    async def work(self, conn: Conn) -> str:
        await conn.execute("INSERT INTO group_calls (call, what) VALUES ($1, 'work')", self.call)
        if self.fail == "refuse":
            raise Refused(self.call)
        if self.fail == "deadlock":
            await conn.execute("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$")
        if self.fail == "duplicate":  # refused only at COMMIT: the constraint is deferred
            await conn.execute(
                "INSERT INTO group_calls (call, what) VALUES ($1, 'work')", self.call
            )
        if self.fail == "terminate":
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return f"worked {self.call}"

    async def undone(self, conn: Conn, failure: Exception) -> str:
        assert isinstance(failure, Refused), failure
        await conn.execute("INSERT INTO group_calls (call, what) VALUES ($1, 'undone')", self.call)
        return f"refused {self.call}"

    async def alone(self) -> str:
        self.ran_alone = True
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.work(conn)


async def finish(conn: Conn, results: list[str]) -> None:
    """What a group writes once for its calls that worked (as the idempotency records are)."""
    if "worked 13" in results:
        raise asyncpg.UniqueViolationError("a finisher refused")
    calls = [int(result.split()[1]) for result in results]
    await conn.executemany(
        "INSERT INTO group_calls (call, what) VALUES ($1, 'finish')", [(c,) for c in calls]
    )


async def rows(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    async with pool.acquire() as conn:
        found = await conn.fetch(
            "SELECT call, what FROM group_calls WHERE what <> 'finish' ORDER BY call, what"
        )
    return [(r["call"], r["what"]) for r in found]


async def finished(pool: asyncpg.Pool) -> list[int]:
    async with pool.acquire() as conn:
        found = await conn.fetch("SELECT call FROM group_calls WHERE what = 'finish' ORDER BY call")
    return [r["call"] for r in found]


async def commits(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        txids = await conn.fetchval("SELECT count(DISTINCT txid) FROM group_calls")
    assert isinstance(txids, int)
    return txids


async def run_all(committer: GroupCommit, calls: list[Call]) -> list[str | BaseException]:
    return await asyncio.gather(
        *(committer.run(call.job()) for call in calls), return_exceptions=True
    )


async def test_concurrent_calls_share_one_commit(pool: asyncpg.Pool, clean: None) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n) for n in range(10)]
    answers = await run_all(committer, calls)
    assert answers == [f"worked {n}" for n in range(10)]
    assert await rows(pool) == [(n, "work") for n in range(10)]
    assert await finished(pool) == list(range(10))
    assert await commits(pool) == 1  # ten calls queued before the lane ran: one transaction


async def test_a_group_never_exceeds_its_size(pool: asyncpg.Pool, clean: None) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=4)
    answers = await run_all(committer, [Call(pool, n) for n in range(10)])
    assert answers == [f"worked {n}" for n in range(10)]
    assert await commits(pool) == 3  # 4 + 4 + 2


async def test_a_refused_call_is_rolled_back_alone_and_its_neighbours_commit(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n, fail="refuse" if n == 3 else None) for n in range(6)]
    answers = await run_all(committer, calls)
    assert answers == ["refused 3" if n == 3 else f"worked {n}" for n in range(6)]
    # The refused call's work is gone; what its undone step wrote committed with the group.
    expected = [(n, "undone" if n == 3 else "work") for n in range(6)]
    assert await rows(pool) == expected
    assert await commits(pool) == 1


async def test_a_call_that_lost_a_lock_conflict_runs_again_alone(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n) for n in range(5)]
    calls[2].fail = "deadlock"
    group = asyncio.gather(*(committer.run(call.job()) for call in calls), return_exceptions=True)
    answers = await group
    assert answers[:2] == ["worked 0", "worked 1"]
    assert answers[3:] == ["worked 3", "worked 4"]
    assert calls[2].ran_alone
    assert not any(c.ran_alone for c in calls if c.call != 2)
    assert isinstance(answers[2], asyncpg.DeadlockDetectedError)  # alone, it fails the same way
    assert await rows(pool) == [(n, "work") for n in range(5) if n != 2]


async def test_a_refused_commit_runs_every_call_alone_so_only_the_culprit_fails(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n, fail="duplicate" if n == 1 else None) for n in range(4)]
    answers = await run_all(committer, calls)
    assert all(call.ran_alone for call in calls)
    assert answers[0] == "worked 0"
    assert answers[2:] == ["worked 2", "worked 3"]
    assert isinstance(answers[1], asyncpg.UniqueViolationError)
    assert await rows(pool) == [(0, "work"), (2, "work"), (3, "work")]


async def test_a_lost_connection_fails_the_group_without_guessing(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n, fail="terminate" if n == 2 else None) for n in range(4)]
    answers = await run_all(committer, calls)
    # Whether a broken connection committed is unknown: nobody is told "done", nothing reruns.
    assert all(isinstance(answer, Exception) for answer in answers), answers
    assert not any(call.ran_alone for call in calls)
    assert await rows(pool) == []  # the backend died before COMMIT: nothing was committed


async def test_lanes_run_groups_side_by_side(pool: asyncpg.Pool, clean: None) -> None:
    committer = GroupCommit(pool, lanes=3, size_max=2)
    answers = await run_all(committer, [Call(pool, n) for n in range(12)])
    assert answers == [f"worked {n}" for n in range(12)]
    assert await commits(pool) == 6
    await committer.drain()
    assert committer._lanes_busy == 0


async def test_calls_beyond_the_queue_bound_are_refused_and_change_nothing(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16, queued_max=2)
    answers = await run_all(committer, [Call(pool, n) for n in range(5)])
    assert answers[:2] == ["worked 0", "worked 1"]
    for refused in answers[2:]:
        assert isinstance(refused, ApiError)
        assert refused.status_code == 503
        assert refused.headers == {"Retry-After": "1"}
    assert await rows(pool) == [(0, "work"), (1, "work")]


async def test_a_group_finishes_once_for_the_calls_that_worked(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n, fail="refuse" if n == 3 else None) for n in range(6)]
    await run_all(committer, calls)
    assert await finished(pool) == [0, 1, 2, 4, 5]
    assert await commits(pool) == 1


async def test_a_refused_finish_runs_every_call_alone(pool: asyncpg.Pool, clean: None) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n) for n in (11, 12, 13)]  # the finisher refuses call 13's result
    answers = await run_all(committer, calls)
    assert answers == ["worked 11", "worked 12", "worked 13"]
    assert all(call.ran_alone for call in calls)
    assert await rows(pool) == [(11, "work"), (12, "work"), (13, "work")]
    assert await finished(pool) == []  # the group committed nothing


async def test_calls_with_the_same_exclusive_value_never_share_a_group(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n, exclusive="key" if n in (0, 2) else None) for n in range(4)]
    answers = await run_all(committer, calls)
    assert answers == [f"worked {n}" for n in range(4)]
    async with pool.acquire() as conn:
        found = await conn.fetch("SELECT call, txid::text AS txid FROM group_calls")
    txid_of: dict[int, str] = {r["call"]: r["txid"] for r in found}
    assert txid_of[0] == txid_of[1] == txid_of[3]
    assert txid_of[2] != txid_of[0]  # held back, in the next group


# ---- set-based steps (`Together`) -------------------------------------------------------------

STEPS: list[list[int]] = []  # the calls each `together_step` run was given


async def together_step(conn: Conn, calls: list[Call]) -> list[Any]:
    """The set-based form of `Call.work`: one statement for all; a call numbered 9 makes the
    whole step raise after writing; a call numbered 8 answers `AfterCommit`."""
    STEPS.append([call.call for call in calls])
    await conn.execute(
        "INSERT INTO group_calls (call, what) SELECT c, 'together' FROM unnest($1::int[]) c",
        [call.call for call in calls],
    )
    if any(call.call == 9 for call in calls):
        raise Refused(9)
    return [
        AfterCommit(call.alone) if call.call == 8 else f"together {call.call}" for call in calls
    ]


def together_job(call: Call) -> Job[Any]:
    job = call.job()
    return Job(
        job.work,
        job.undone,
        job.alone,
        finish=job.finish,
        together=Together("calls", together_step, call),
    )


async def run_together(committer: GroupCommit, calls: list[Call], plain: set[int]) -> list[Any]:
    """Run the calls, all with the set-based form but those numbered in `plain`."""
    jobs = [call.job() if call.call in plain else together_job(call) for call in calls]
    return await asyncio.gather(*(committer.run(job) for job in jobs), return_exceptions=True)


async def test_calls_of_one_kind_run_in_one_step_and_the_others_one_by_one(
    pool: asyncpg.Pool, clean: None
) -> None:
    STEPS.clear()
    committer = GroupCommit(pool, lanes=1, size_max=16)
    answers = await run_together(committer, [Call(pool, n) for n in range(6)], plain={2, 4})
    assert answers == [f"worked {n}" if n in (2, 4) else f"together {n}" for n in range(6)]
    assert STEPS == [[0, 1, 3, 5]]
    assert await rows(pool) == [(n, "work" if n in (2, 4) else "together") for n in range(6)]
    assert await commits(pool) == 1
    assert await finished(pool) == list(range(6))  # `finish` had every call's result


async def test_a_step_that_raises_is_rolled_back_and_its_calls_run_one_by_one(
    pool: asyncpg.Pool, clean: None
) -> None:
    STEPS.clear()
    committer = GroupCommit(pool, lanes=1, size_max=16)
    answers = await run_together(committer, [Call(pool, n) for n in (0, 9, 1)], plain=set())
    assert answers == ["worked 0", "worked 9", "worked 1"]
    assert STEPS == [[0, 9, 1]]
    assert await rows(pool) == [(0, "work"), (1, "work"), (9, "work")]  # no 'together' row
    assert await commits(pool) == 1


async def test_a_call_answered_after_commit_runs_alone_once_the_group_committed(
    pool: asyncpg.Pool, clean: None
) -> None:
    committer = GroupCommit(pool, lanes=1, size_max=16)
    calls = [Call(pool, n) for n in (0, 8, 1)]
    answers = await run_together(committer, calls, plain=set())
    assert answers == ["together 0", "worked 8", "together 1"]
    assert calls[1].ran_alone
    assert await rows(pool) == [(0, "together"), (1, "together"), (8, "together"), (8, "work")]
    assert await commits(pool) == 2  # the group, then call 8's own transaction
    assert await finished(pool) == [0, 1]  # call 8's answer came after the group's finish


async def test_a_kind_with_one_call_runs_it_one_by_one(pool: asyncpg.Pool, clean: None) -> None:
    STEPS.clear()
    committer = GroupCommit(pool, lanes=1, size_max=16)
    answers = await run_together(committer, [Call(pool, n) for n in range(3)], plain={0, 1})
    assert answers == ["worked 0", "worked 1", "worked 2"]
    assert STEPS == []
