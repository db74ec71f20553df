"""Background workers: periodic jobs run inside `coalition serve`.

Jobs coordinate through PostgreSQL (SKIP LOCKED, advisory locks), so any number of processes
may run the same jobs side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

JobFn = Callable[[asyncpg.Pool], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: JobFn  # returns how many items it processed; a full batch re-runs at once


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, jobs: list[Job]) -> None:
        self._pool = pool
        self._jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        assert not self._tasks, "the scheduler starts once"
        self._tasks = [asyncio.create_task(self._loop(job), name=job.name) for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self, job: Job) -> None:
        while True:
            try:
                processed = await job.run(self._pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The database may be restarting: log, wait, try again.
                log.warning("job failed", extra={"job": job.name, "error": str(exc)})
                processed = 0
            if processed == 0:
                await asyncio.sleep(job.interval_s)
            else:
                await asyncio.sleep(0)


def default_jobs() -> list[Job]:
    """The jobs every server process runs; filled in as capabilities land."""
    return []
