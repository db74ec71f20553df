"""The asyncpg pool: created once per process, closed on shutdown."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
STATEMENT_CACHE_SIZE = 1_024
# asyncpg.create_pool's own defaults, for the pool built here without it (BoundedPool).
MAX_QUERIES = 50_000
MAX_INACTIVE_CONNECTION_LIFETIME_S = 300.0

Pool = asyncpg.Pool
# A connection of its own or one lent by a pool: every query function accepts either.
Conn = asyncpg.Connection | PoolConnectionProxy


class DatabaseUnreachable(Exception):
    """The database could not be reached; the message says where and why."""


class BoundedPool(asyncpg.Pool):
    """A pool whose `acquire()` waits at most `acquire_timeout_s` unless told otherwise.

    asyncpg waits for a free connection forever by default: with every connection busy (a
    stuck statement, a burst) a request would hang instead of answering 503. The bound is set
    here once rather than at each of the many `pool.acquire()` calls.
    """

    acquire_timeout_s: float | None = None

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


async def create_pool(
    dsn: str,
    *,
    size_min: int,
    size_max: int,
    reset_session: bool,
    statement_timeout_ms: int = 0,
    lock_timeout_ms: int = 0,
    acquire_timeout_s: float | None = None,
    application_name: str | None = None,
) -> asyncpg.Pool:
    """Open a pool or raise DatabaseUnreachable with one readable line.

    reset_session: on release, run asyncpg's reset (`pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`, one round trip per checkout). The service passes False: its code
    never leaves session state behind (no SET, LISTEN, WITH HOLD cursor or session advisory
    lock: only transaction-scoped ones; migrations run on a connection of their own), and
    asyncpg rolls back an open transaction on release either way.
    statement_timeout_ms, lock_timeout_ms: PostgreSQL's bounds for every connection of the
    pool (0: none), sent in the startup packet (no extra round trip; RESET ALL keeps them).
    acquire_timeout_s: how long `acquire()` waits for a free connection (None: forever).
    application_name: shown in pg_stat_activity (the replica test finds the app's sessions).
    """
    assert 0 < size_min <= size_max, (size_min, size_max)
    assert statement_timeout_ms >= 0, statement_timeout_ms
    assert lock_timeout_ms >= 0, lock_timeout_ms
    pool = BoundedPool(
        dsn,
        min_size=size_min,
        max_size=size_max,
        max_queries=MAX_QUERIES,
        max_inactive_connection_lifetime=MAX_INACTIVE_CONNECTION_LIFETIME_S,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S,
        statement_cache_size=STATEMENT_CACHE_SIZE,
        reset=None if reset_session else _keep_session,
        server_settings=_bounds(statement_timeout_ms, lock_timeout_ms)
        | ({"application_name": application_name} if application_name else {}),
    )
    pool.acquire_timeout_s = acquire_timeout_s
    try:
        await pool
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnreachable(describe(exc)) from exc
    return pool


def _bounds(statement_timeout_ms: int, lock_timeout_ms: int) -> dict[str, str]:
    bounds = {"statement_timeout": statement_timeout_ms, "lock_timeout": lock_timeout_ms}
    return {name: str(value) for name, value in bounds.items() if value > 0}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset when the session has nothing to reset (see create_pool)."""


async def check_reachable(dsn: str) -> None:
    """Connect once and disconnect; raise DatabaseUnreachable when that fails."""
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnreachable(describe(exc)) from exc
    await conn.close()


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
