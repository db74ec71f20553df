"""Points lifetime and the `points.expiring` notices recorded ahead of expiry.

The lifetime is a network setting (`network_settings.points_lifetime_months`, default 24) that
the purchase path reads at each earn, in its one read statement (`PURCHASE_CONTEXT` in
partners/queries.py, the same expression as `earned_points_expire_at`). The expiry run itself
is `ledger.service.expire_lots`.
"""

from __future__ import annotations

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
from shoppers import queries

__all__ = [
    "EXPIRY_NOTICE_AHEAD_S",
    "PointsLifetimeInvalid",
    "change_points_lifetime",
    "earned_points_expire_at",
    "points_lifetime",
    "points_lifetime_months",
    "record_expiry_notices",
    "set_points_lifetime_months",
]

EXPIRY_NOTICE_AHEAD_S = 30 * 24 * 3600
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


async def record_expiry_notices(pool: Pool, *, now: datetime) -> int:
    """Record one `points.expiring` event per lot whose free points expire within 30 days of
    `now`, exactly once per lot; returns how many were recorded. Safe in several processes:
    the notice row's primary key lets one of two racing runs record each lot."""
    until = now + timedelta(seconds=EXPIRY_NOTICE_AHEAD_S)
    recorded = 0
    for _ in range(NOTICE_BATCHES_MAX):
        async with pool.acquire() as conn, conn.transaction():
            lots = await conn.fetch(queries.LOTS_TO_NOTICE, now, until, NOTICE_BATCH_MAX)
            for lot in lots:
                claimed = await conn.fetchval(
                    queries.INSERT_NOTICE,
                    lot["root_lot_id"],
                    lot["shopper_id"],
                    lot["lot_id"],
                    lot["expires_at"],
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
                        "points": lot["points"],
                        "expires_at": lot["expires_at"].isoformat(),
                        "issued_by_partner_id": lot["partner_id"],
                    },
                )
                await conn.execute(queries.SET_NOTICE_EVENT, lot["root_lot_id"], event_id)
                recorded += 1
        if len(lots) < NOTICE_BATCH_MAX:
            break
    return recorded
