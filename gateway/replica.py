"""Reads off the primary: a pool on a streaming replica and how far behind it is.

The lag is measured against the primary, not from the replica's last replayed commit time
(which grows while the primary is idle): every SAMPLE_INTERVAL_S the primary's WAL position is
noted with the time; the lag is the age of the oldest noted position the replica has not
replayed yet (0 when it has replayed them all). It overstates the lag by at most one interval.
Past `lag_max_s`, or while the replica cannot be reached, reads go to the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import asyncpg

from gateway import metrics

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.5
APPLICATION_NAME = "coalition-reads"  # how the replica's connections show in pg_stat_activity
PRIMARY_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
REPLAYED_LSN = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"


class ReadReplica:
    def __init__(self, pool: asyncpg.Pool, *, lag_max_s: float) -> None:
        self.pool = pool
        self.lag_max_s = lag_max_s
        self.lag_s: float | None = None  # None: not measured yet, or the replica is unreachable
        self._noted: deque[tuple[float, int]] = deque()
        self._task: asyncio.Task[None] | None = None

    def fresh(self) -> bool:
        """Whether reads may go to the replica now."""
        return self.lag_s is not None and self.lag_s <= self.lag_max_s

    async def measure(self, primary: asyncpg.Pool) -> None:
        """Note the primary's position, read the replica's, update the lag and the metrics."""
        now = time.monotonic()
        try:
            async with primary.acquire() as conn:
                position = await conn.fetchval(PRIMARY_LSN)
            if not self._noted or self._noted[-1][1] != position:  # an idle primary adds none
                self._noted.append((now, position))
            async with self.pool.acquire() as conn:
                replayed = await conn.fetchval(REPLAYED_LSN)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("replica unreachable", extra={"error": str(exc)})
            self.lag_s = None
        else:
            if replayed is None:  # not a standby: never read there
                log.error("COALITION_REPLICA_URL names a server that is not a replica")
                self.lag_s = None
                self._noted.clear()
                return self._export()
            while self._noted and self._noted[0][1] <= replayed:
                self._noted.popleft()
            self.lag_s = now - self._noted[0][0] if self._noted else 0.0
        self._export()

    def _export(self) -> None:
        metrics.READ_REPLICA_LAG_SECONDS.set(-1 if self.lag_s is None else self.lag_s)
        metrics.READ_REPLICA_IN_USE.set(1 if self.fresh() else 0)

    def start(self, primary: asyncpg.Pool) -> None:
        assert self._task is None, "measured by one task"
        self._task = asyncio.create_task(self._loop(primary), name="replica.measure")

    async def _loop(self, primary: asyncpg.Pool) -> None:
        while True:
            await self.measure(primary)
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pool.close()
