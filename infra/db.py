"""The asyncpg pool: created once per process, closed on shutdown."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
STATEMENT_CACHE_SIZE = 1_024

Pool = asyncpg.Pool
# A connection of its own or one lent by a pool: every query function accepts either.
Conn = asyncpg.Connection | PoolConnectionProxy


class DatabaseUnreachable(Exception):
    """The database could not be reached; the message says where and why."""


async def create_pool(
    dsn: str,
    *,
    size_min: int,
    size_max: int,
    reset_session: bool,
    application_name: str | None = None,
) -> asyncpg.Pool:
    """Open a pool or raise DatabaseUnreachable with one readable line.

    reset_session: on release, run asyncpg's reset (`pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`, one round trip per checkout). The service passes False: its code
    never leaves session state behind (no SET, LISTEN, WITH HOLD cursor or session advisory
    lock: only transaction-scoped ones; migrations run on a connection of their own), and
    asyncpg rolls back an open transaction on release either way.
    """
    assert 0 < size_min <= size_max, (size_min, size_max)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=size_min,
            max_size=size_max,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=COMMAND_TIMEOUT_S,
            statement_cache_size=STATEMENT_CACHE_SIZE,
            reset=None if reset_session else _keep_session,
            server_settings={"application_name": application_name} if application_name else None,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnreachable(describe(exc)) from exc
    assert pool is not None
    return pool


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
