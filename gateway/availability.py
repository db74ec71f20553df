"""The database as the gateway sees it: down, overloaded or fine.

Which errors mean "the database is unreachable" (PostgreSQL stopped, restarting, the connection
lost) and which mean "it is overloaded" (no free connection in time, a statement or a lock wait
past its bound): both are answered 503 with `Retry-After` (gateway/errors.py), never 500.

An outage is logged once when it begins and once when it ends, not once per request: the first
error that means "unreachable" marks the database down and starts a probe, which marks it up
again (and has the pool replace its connections) as soon as a connection answers. /readyz
reports to the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from types import TracebackType

import asyncpg

from infra.db import describe

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 2.0
CAUSE_DEPTH_MAX = 8
RETRY_AFTER_S = 1

# SQLSTATE classes and codes that say the server is gone or going, whatever the statement.
_UNREACHABLE = (
    asyncpg.PostgresConnectionError,  # class 08 (asyncpg's ConnectionDoesNotExistError too)
    asyncpg.AdminShutdownError,  # 57P01: a fast shutdown
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed, or an immediate shutdown
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.TooManyConnectionsError,  # 53300: no connection slot left
)
# A bound this service sets (db_statement_timeout_ms, db_lock_timeout_ms) was reached.
_BUSY = (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)
# asyncpg's own words for a connection or pool that is no longer usable.
# ("released back to the pool": the pool detaches a connection the server closed from the
# proxy its user still holds, whose every later call then raises that.)
_CLOSED_WORDS = (
    "connection is closed",
    "pool is closing",
    "pool is closed",
    "released back to the pool",
)


class Kind(enum.Enum):
    UNREACHABLE = "unreachable"
    BUSY = "busy"


def classify(exc: BaseException) -> Kind | None:
    """What `exc` (or what it was raised from) says about the database; None: nothing."""
    seen: BaseException | None = exc
    for _ in range(CAUSE_DEPTH_MAX):
        if seen is None:
            return None
        kind = _kind_of(seen)
        if kind is not None:
            return kind
        seen = seen.__cause__
    return None


def _kind_of(exc: BaseException) -> Kind | None:
    if isinstance(exc, _UNREACHABLE):
        return Kind.UNREACHABLE
    if isinstance(exc, _BUSY):
        return Kind.BUSY
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc)
        return Kind.UNREACHABLE if any(w in text for w in _CLOSED_WORDS) else None
    if isinstance(exc, OSError) and _raised_in_asyncpg(exc.__traceback__):
        # A timeout is the pool's wait or asyncpg's command bound; any other OSError is the
        # socket to the server (refused, reset, no such socket file).
        return Kind.BUSY if isinstance(exc, TimeoutError) else Kind.UNREACHABLE
    return None


def _raised_in_asyncpg(trace: TracebackType | None) -> bool:
    """Whether asyncpg is on the way of the error (an OSError from elsewhere is not ours)."""
    while trace is not None:
        module = trace.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith("asyncpg"):
            return True
        trace = trace.tb_next
    return False


class Availability:
    """Down or up, with one log line per change. One per process (`STATE`)."""

    def __init__(self) -> None:
        self.down_since_s: float | None = None
        self._pool: asyncpg.Pool | None = None
        self._probe: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        return self.down_since_s is not None

    def watch(self, pool: asyncpg.Pool) -> None:
        """The pool the probe uses, and whose connections are replaced after an outage."""
        self._pool = pool

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        self._probe = None
        self._pool = None

    def outage(self, exc: BaseException) -> bool:
        """True when `exc` means the database is unreachable: the state is noted (and logged
        if it changed), so the caller logs nothing more."""
        if classify(exc) is not Kind.UNREACHABLE:
            return False
        self.mark_down(exc)
        return True

    def mark_down(self, exc: BaseException) -> None:
        if self.down_since_s is not None:
            return
        self.down_since_s = time.monotonic()
        log.error(
            "database unreachable: answering 503 until it is back",
            extra={"error": describe(exc)},
        )
        if self._pool is not None and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(self._wait_until_up(self._pool))

    async def mark_up(self) -> None:
        if self.down_since_s is None:
            return
        down_s = round(time.monotonic() - self.down_since_s, 1)
        self.down_since_s = None
        log.warning("database reachable again", extra={"down_s": down_s})
        if self._pool is not None:
            # Connections opened before the outage may be dead: open fresh ones on next use.
            await self._pool.expire_connections()

    async def _wait_until_up(self, pool: asyncpg.Pool) -> None:
        while self.down:
            try:
                async with pool.acquire(timeout=PROBE_TIMEOUT_S) as conn:
                    await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_S)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(PROBE_INTERVAL_S)
                continue
            await self.mark_up()


STATE = Availability()


class _OutageFilter(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reopen its minimum of
    connections (every second or so while the database is gone): note the outage instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or classify(error) is not Kind.UNREACHABLE


logging.getLogger("asyncpg.pool").addFilter(_OutageFilter())
