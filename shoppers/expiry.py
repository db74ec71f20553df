"""Points lifetime and the `points.expiring` notices recorded ahead of expiry.

The lifetime is a network setting (`network_settings.points_lifetime_months`, default 24) that
the purchase path reads at each earn through `earned_points_expire_at`. The expiry run itself is
`ledger.service.expire_lots`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from infra import outbox
from infra.db import Conn, Pool
from shoppers import queries

__all__ = [
    "EXPIRY_NOTICE_AHEAD_S",
    "earned_points_expire_at",
    "points_lifetime_months",
    "record_expiry_notices",
    "set_points_lifetime_months",
]

EXPIRY_NOTICE_AHEAD_S = 30 * 24 * 3600
NOTICE_BATCH_MAX = 500  # lots noticed per transaction
NOTICE_BATCHES_MAX = 100  # transactions per run; the next run picks up the rest
LIFETIME_MONTHS_MIN = 1
LIFETIME_MONTHS_MAX = 120


async def points_lifetime_months(conn: Conn) -> int:
    months: int = await conn.fetchval(queries.POINTS_LIFETIME_MONTHS)
    return months


async def set_points_lifetime_months(conn: Conn, months: int) -> int:
    """Change the lifetime of points earned from now on (lots already issued keep theirs)."""
    assert LIFETIME_MONTHS_MIN <= months <= LIFETIME_MONTHS_MAX, months
    value: int = await conn.fetchval(queries.SET_POINTS_LIFETIME_MONTHS, months)
    return value


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
