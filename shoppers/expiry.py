"""Points lifetime and the `points.expiring` notices recorded ahead of expiry.

The lifetime is a network setting (`network_settings.points_lifetime_months`, default 24) that
the purchase path reads at each earn, in its one read statement (`PURCHASE_CONTEXT` in
partners/queries.py, the same expression as `earned_points_expire_at`). The expiry run itself
is `ledger.service.expire_lots`.

Notices go out at several distances (`COALITION_EXPIRY_NOTICE_DAYS`, default 30 and 7 days
before): one `points.expiring` event per lot and distance, keyed by the root lot and the
distance (migration 0111). A lot first seen already inside a nearer distance gets only that
nearer notice (a notice at 7 days makes the 30-day one moot).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from contracts.errors import DomainError, ErrorCode
from contracts.partners import (
    POINTS_LIFETIME_MONTHS_MAX,
    POINTS_LIFETIME_MONTHS_MIN,
    PointsLifetime,
    PointsLifetimeUpdate,
)
from infra import outbox
from infra.db import Conn, Pool
from infra.settings import EXPIRY_NOTICE_DAYS_DEFAULT
from shoppers import queries

__all__ = [
    "EXPIRY_NOTICE_AHEAD_S",
    "PointsLifetimeInvalid",
    "change_points_lifetime",
    "configure_notice_days",
    "earned_points_expire_at",
    "points_lifetime",
    "points_lifetime_months",
    "record_expiry_notices",
    "set_points_lifetime_months",
]

EXPIRY_NOTICE_AHEAD_S = 30 * 24 * 3600
DAY_S = 24 * 3600
NOTICE_LOCK_KEY = 0x4E4F_5449  # "NOTI": one notice run at a time (see record_expiry_notices)
# A process-wide setting like the rest of Settings; tests pass `days_before` explicitly.
_notice_days: tuple[int, ...] = EXPIRY_NOTICE_DAYS_DEFAULT
NOTICE_BATCH_MAX = 500  # lots noticed per transaction
NOTICE_BATCHES_MAX = 100  # transactions per run; the next run picks up the rest
LIFETIME_MONTHS_MIN = POINTS_LIFETIME_MONTHS_MIN
LIFETIME_MONTHS_MAX = POINTS_LIFETIME_MONTHS_MAX

# The change history (infra/migrations/0071): kept beside the code while shoppers/queries.py
# belongs to another change in flight.
_LAST_CHANGE = """
SELECT changed_at, changed_by FROM points_lifetime_change ORDER BY change_id DESC LIMIT 1
"""
_INSERT_CHANGE = """
INSERT INTO points_lifetime_change (months, previous_months, changed_by) VALUES ($1, $2, $3)
"""
_LOCK_SETTINGS = "SELECT points_lifetime_months FROM network_settings FOR UPDATE"

# Lots within $2 of expiry not noticed at this distance ($4 days) or a nearer one (0111).
_LOTS_TO_NOTICE_AT = """
SELECT l.shopper_id, l.lot_id, l.root_lot_id, l.partner_id, l.expires_at,
       l.remaining - l.reserved AS points
FROM ledger.lot l
JOIN shoppers s ON s.id = l.shopper_id
WHERE l.remaining > l.reserved
  AND l.expires_at > $1 AND l.expires_at <= $2
  AND s.erased_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM lot_expiry_notices n
      WHERE n.root_lot_id = l.root_lot_id AND n.days_before <= $4
  )
ORDER BY l.expires_at, l.lot_id
LIMIT $3
"""
_INSERT_NOTICE_AT = """
INSERT INTO lot_expiry_notices (root_lot_id, shopper_id, lot_id, expires_at, days_before)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (root_lot_id, days_before) DO NOTHING
RETURNING root_lot_id
"""
_SET_NOTICE_EVENT_AT = """
UPDATE lot_expiry_notices SET event_id = $3 WHERE root_lot_id = $1 AND days_before = $2
"""
_LOCK_NOTICES = "SELECT pg_advisory_xact_lock($1)"


class PointsLifetimeInvalid(DomainError):
    code = ErrorCode.POINTS_LIFETIME_INVALID

    def __init__(self, months: int) -> None:
        super().__init__(
            f"months must be between {LIFETIME_MONTHS_MIN} and {LIFETIME_MONTHS_MAX}, got {months}"
        )


async def points_lifetime_months(conn: Conn) -> int:
    months: int = await conn.fetchval(queries.POINTS_LIFETIME_MONTHS)
    return months


async def set_points_lifetime_months(conn: Conn, months: int) -> int:
    """Change the lifetime of points earned from now on (lots already issued keep theirs)."""
    assert LIFETIME_MONTHS_MIN <= months <= LIFETIME_MONTHS_MAX, months
    value: int = await conn.fetchval(queries.SET_POINTS_LIFETIME_MONTHS, months)
    return value


async def points_lifetime(conn: Conn) -> PointsLifetime:
    """The lifetime in force, with who changed it last (None: the default was never changed)."""
    months = await points_lifetime_months(conn)
    last = await conn.fetchrow(_LAST_CHANGE)
    return PointsLifetime(
        months=months,
        updated_at=None if last is None else last["changed_at"],
        updated_by=None if last is None else last["changed_by"],
    )


async def change_points_lifetime(
    conn: Conn, req: PointsLifetimeUpdate, *, actor: str
) -> PointsLifetime:
    """The operator's change: validated, applied to points earned from now on, and kept in
    the change history. Purchases read the lifetime at each earn, so the next one uses it."""
    if not LIFETIME_MONTHS_MIN <= req.months <= LIFETIME_MONTHS_MAX:
        raise PointsLifetimeInvalid(req.months)
    async with conn.transaction():
        previous: int = await conn.fetchval(_LOCK_SETTINGS)
        await set_points_lifetime_months(conn, req.months)
        await conn.execute(_INSERT_CHANGE, req.months, previous, actor)
        return await points_lifetime(conn)


async def earned_points_expire_at(conn: Conn, *, earned_at: datetime) -> datetime:
    """When points earned at `earned_at` expire, under the network's configured lifetime."""
    expires_at: datetime = await conn.fetchval(queries.EXPIRES_AT, earned_at)
    return expires_at


def configure_notice_days(days_before: Sequence[int]) -> None:
    """The distances the worker's runs use (`Settings.expiry_notice_days`, set at startup)."""
    assert days_before, "at least one notice distance"
    assert all(day >= 1 for day in days_before), days_before
    global _notice_days
    _notice_days = tuple(days_before)


async def record_expiry_notices(
    pool: Pool, *, now: datetime, days_before: Sequence[int] | None = None
) -> int:
    """Record one `points.expiring` event per lot and distance in `days_before` (None: the
    configured ones, `COALITION_EXPIRY_NOTICE_DAYS`, default 30 and 7) whose free points
    expire within that many days of `now`, exactly once each; returns how many were recorded. Nearer
    distances go first, so a lot already inside one is not noticed at the farther ones. Safe
    in several processes: the notice row's key lets one of two racing runs record each, and
    a transaction-scoped advisory lock keeps a run's distances from crossing another run's."""
    distances = _notice_days if days_before is None else tuple(days_before)
    assert distances, "at least one notice distance"
    recorded = 0
    for days in sorted(set(distances)):
        recorded += await _record_notices_at(pool, now=now, days=days)
    return recorded


async def _record_notices_at(pool: Pool, *, now: datetime, days: int) -> int:
    until = now + timedelta(days=days)
    recorded = 0
    for _ in range(NOTICE_BATCHES_MAX):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_NOTICES, NOTICE_LOCK_KEY)
            lots = await conn.fetch(_LOTS_TO_NOTICE_AT, now, until, NOTICE_BATCH_MAX, days)
            for lot in lots:
                claimed = await conn.fetchval(
                    _INSERT_NOTICE_AT,
                    lot["root_lot_id"],
                    lot["shopper_id"],
                    lot["lot_id"],
                    lot["expires_at"],
                    days,
                )
                if claimed is None:
                    continue
                event_id = await outbox.record(
                    conn,
                    "points.expiring",
                    shopper_id=lot["shopper_id"],
                    payload={
                        "shopper_id": lot["shopper_id"],
                        "lot_id": lot["lot_id"],
                        "root_lot_id": lot["root_lot_id"],
                        "points": lot["points"],
                        "expires_at": lot["expires_at"].isoformat(),
                        "days_before": days,
                        "issued_by_partner_id": lot["partner_id"],
                    },
                )
                await conn.execute(_SET_NOTICE_EVENT_AT, lot["root_lot_id"], days, event_id)
                recorded += 1
        if len(lots) < NOTICE_BATCH_MAX:
            break
    return recorded
